"""The web console in a real headless Chromium against a real gateway, store and bus.

The test plays the controllers: it writes Cluster and Machine status through the store
and checks that the open page follows the watch stream without a reload (a marker set on
``window`` before the change must survive it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from shared.models import (
    CLUSTER_LABEL,
    ArtifactMirror,
    Cluster,
    Condition,
    LCMMachine,
    Machine,
    OpenStackCredential,
    OwnerReference,
    StateItemStatus,
    convert,
    now,
)
from shared.store import NotFound
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.waiting import eventually

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium


async def set_status(console: Console, cls: type, name: str, ns: str = "team-a", **fields) -> None:
    """Play a controller: write ``fields`` into the object's status."""
    obj = await console.store.get(cls, name, ns)
    for key, value in fields.items():
        setattr(obj.status, key, value)
    await console.store.update_status(obj)


def ready(status: str = "True", reason: str = "Ready") -> list[Condition]:
    return [Condition(type="Ready", status=status, reason=reason,  # type: ignore[arg-type]
                      last_transition_time=now())]


async def mark_page(page: Page) -> None:
    """A marker a reload would wipe: its survival proves updates came without one."""
    await page.evaluate("window.__noReload = 'kept'")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__noReload") == "kept"


async def test_sign_in_shows_only_projects_the_token_may_see(console: Console, page: Page):
    await page.goto(console.url + "/")
    await expect(page).to_have_url(re.compile(r"/ui/#/login$"))
    await page.fill("#token", "not-a-token")
    await page.click("button[type=submit]")
    await expect(page.locator("[data-error-for=token]")).to_have_text("Unknown or revoked token.")
    await expect(page.locator("#nav")).to_be_hidden()

    await page.fill("#token", "tok-ui-wally")
    await page.click("button[type=submit]")
    await expect(page.locator("#user")).to_have_text("wally")
    options = await page.locator("#project option").all_inner_texts()
    assert options == ["All projects", "team-a", "team-b"]
    await expect(page.locator("a", has_text="Create cluster")).to_be_visible()

    # A reader-only user gets no create button and never sees other projects' clusters.
    await console.store.create(cluster_obj("alpha", "team-a"))
    await console.store.create(cluster_obj("beta", "team-b"))
    await page.click("#logout")
    await sign_in(page, console, "rita")
    await expect(page.locator("[data-cluster='team-b/beta']")).to_be_visible()
    await expect(page.locator("[data-cluster='team-a/alpha']")).to_have_count(0)
    await expect(page.locator("a", has_text="Create cluster")).to_have_count(0)
    assert await page.locator("#project option").all_inner_texts() == ["All projects", "team-b"]
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_cluster_list_follows_the_watch_stream(console: Console, page: Page):
    await console.store.create(cluster_obj("c1", "team-a"))
    await console.store.create(cluster_obj("c2", "team-b", release="mke-3-7-1"))
    await sign_in(page, console)
    row = page.locator("[data-cluster='team-a/c1']")
    await expect(row.locator(".ready")).to_have_text("0/0")
    region = page.locator("[data-region=local]")
    await expect(region.locator("[data-project]")).to_have_count(2)
    await mark_page(page)

    await set_status(console, Cluster, "c1", phase="Provisioning", ready_machines=1,
                     total_machines=3, release="mke-3-7-0")
    await expect(row.locator(".ready")).to_have_text("1/3")
    await expect(row.locator(".phase")).to_have_text("Provisioning")

    await set_status(console, Cluster, "c1", phase="Ready", ready_machines=3,
                     available_upgrades=["mke-3-7-1"], conditions=ready())
    await expect(row.locator(".ready")).to_have_text("3/3")
    await expect(row.locator(".phase")).to_have_text("Ready")
    await expect(row.locator(".upgrade")).to_contain_text("mke-3-7-1")
    await expect(row.locator(".release")).to_have_text("mke-3-7-0")

    await console.store.create(cluster_obj("c3", "team-a"))
    await expect(page.locator("[data-cluster='team-a/c3']")).to_be_visible()
    await console.store.delete(Cluster, "c2", "team-b")
    await expect(page.locator("[data-cluster='team-b/c2']")).to_have_count(0)
    await assert_not_reloaded(page)

    await page.select_option("#project", "team-a")
    await expect(page.locator("[data-project]")).to_have_count(1)
    await screenshot(page, "cluster-list")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def wizard_next(page: Page) -> None:
    await page.click(".wizard button[type=submit]")


async def test_create_cluster_flow_validates_and_creates_the_objects(
    console: Console, page: Page
):
    await sign_in(page, console, "wally")
    await page.click("text=Create cluster")
    form = page.locator(".wizard form")
    await expect(page.locator("select[name='spec.region']")).to_have_value("local")
    # The step checks "required" itself; formats are the gateway's to judge.
    await wizard_next(page)
    await expect(page.locator("[data-error-for='metadata.name']")).to_have_text("Required.")
    await page.fill("input[name='metadata.name']", "Bad_Name")
    await wizard_next(page)
    providers = await page.locator("select[name='spec.provider'] option").all_inner_texts()
    assert providers[1:] == ["simulated", "openstack"]  # what region "local" offers
    await page.select_option("select[name='spec.provider']", "simulated")
    await wizard_next(page)
    await page.select_option("select[name='spec.release']", "mke-3-7-0")
    await wizard_next(page)
    await expect(form.locator("fieldset.machine-row")).to_have_count(2)
    await page.select_option("select[name='machines.1.flavor']", "medium")
    await wizard_next(page)
    await expect(form.locator("dl.review")).to_contain_text("2 × worker")
    await screenshot(page, "create-review")
    await wizard_next(page)

    # The gateway's 422 lands beside the name field, back on the first step.
    name_error = page.locator("[data-error-for='metadata.name']")
    await expect(name_error).to_contain_text("match")
    await expect(page.locator("input[name='metadata.name']")).to_have_attribute(
        "aria-invalid", "true")
    await screenshot(page, "create-validation-error")
    assert (await console.store.list(Cluster, "team-a")).items == []

    await page.fill("input[name='metadata.name']", "demo")
    for _ in range(4):
        await wizard_next(page)
    await expect(page.locator(".stepper li.current")).to_have_text("Review")
    await page.get_by_role("button", name="Create cluster").click()
    await expect(page).to_have_url(re.compile(r"#/clusters/team-a/demo$"))

    cluster = await console.store.get(Cluster, "demo", "team-a")
    assert (cluster.spec.region, cluster.spec.provider, cluster.spec.release) == (
        "local", "simulated", "mke-3-7-0")
    machines = {m.name: m for m in (await console.store.list(Machine, "team-a")).items}
    assert sorted(machines) == ["demo-cp-0", "demo-worker-0", "demo-worker-1"]
    assert machines["demo-cp-0"].spec.role == "control-plane"
    assert machines["demo-cp-0"].spec.simulated.flavor == "small"
    for name in ("demo-worker-0", "demo-worker-1"):
        m = machines[name]
        assert (m.spec.role, m.spec.cluster, m.spec.region) == ("worker", "demo", "local")
        assert m.spec.simulated.flavor == "medium"
    for m in machines.values():
        assert m.metadata.owner_references == [OwnerReference(
            api_version=cluster.api_version, kind="Cluster", name="demo",
            uid=cluster.metadata.uid, controller=True, block_owner_deletion=True)]

    # Play the controllers until the cluster is Ready; the page follows live.
    await mark_page(page)
    await expect(page.locator("[data-machine]")).to_have_count(3)
    await set_status(console, Cluster, "demo", phase="Provisioning", total_machines=3)
    await expect(page.locator(".summary .ready")).to_have_text("0/3")
    for i, name in enumerate(sorted(machines), start=1):
        await set_status(console, Machine, name, phase="Ready", conditions=ready(),
                         addresses=["10.0.0.1"])
        await set_status(console, Cluster, "demo", ready_machines=i)
        await expect(page.locator(".summary .ready")).to_have_text(f"{i}/3")
    await set_status(console, Cluster, "demo", phase="Ready", release="mke-3-7-0",
                     conditions=ready())
    await expect(page.locator(".summary .phase")).to_have_text("Ready")
    await expect(page.locator("[data-machine='demo-worker-1'] .phase")).to_have_text("Ready")
    await expect(page.locator("[data-condition=Ready] .status")).to_have_text("True")
    await assert_not_reloaded(page)
    await screenshot(page, "cluster-ready")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_upgrade_offers_only_available_upgrades_and_delete_confirms(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("up1"))
    await set_status(console, Cluster, "up1", phase="Ready", release="mke-3-7-0",
                     available_upgrades=["mke-3-7-1"])
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/up1")
    choice = page.locator("select[name=upgrade]")
    await expect(choice.locator("option")).to_have_count(1)
    # Three releases exist; only the one the release service allows is offered.
    assert await choice.locator("option").all_inner_texts() == ["mke-3-7-1"]
    await page.click("button[name=upgrade-button]")
    await expect(page.locator(".notice")).to_contain_text("mke-3-7-1")
    stored = await console.store.get(Cluster, "up1", "team-a")
    assert stored.spec.release == "mke-3-7-1"
    await expect(page.locator(".summary .release")).to_contain_text("upgrading to mke-3-7-1")

    await set_status(console, Cluster, "up1", available_upgrades=[])
    await expect(page.locator("button[name=upgrade-button]")).to_be_disabled()
    assert await choice.locator("option").all_inner_texts() == ["no upgrade available"]

    # Delete asks first; cancelling keeps the cluster.
    await page.click("button[name=delete-button]")
    dialog = page.locator("dialog.confirm")
    await expect(dialog).to_be_visible()
    confirm = dialog.get_by_role("button", name="Delete")
    await expect(confirm).to_be_disabled()
    await dialog.locator("input[name=confirm]").fill("up")
    await expect(confirm).to_be_disabled()
    await screenshot(page, "delete-confirmation")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    assert (await console.store.get(Cluster, "up1", "team-a")).metadata.name == "up1"

    await page.click("button[name=delete-button]")
    await dialog.locator("input[name=confirm]").fill("up1")
    await confirm.click()
    await expect(page.locator(".summary")).to_contain_text("This cluster was deleted.")
    with pytest.raises(NotFound):
        await console.store.get(Cluster, "up1", "team-a")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_cluster_page_shows_lcm_progress_per_machine(console: Console, page: Page):
    await console.store.create(cluster_obj("lc"))
    await console.store.create(convert(Machine, {
        "metadata": {"name": "lc-cp-0", "namespace": "team-a"},
        "spec": {"cluster": "lc", "role": "control-plane", "region": "local",
                 "simulated": {"flavor": "small"}},
    }))
    items = [{"name": n, "phase": "deploy", "version": "1"} for n in ("os", "runtime", "mke")]
    await console.store.create(convert(LCMMachine, {
        "metadata": {"name": "lc-cp-0", "namespace": "team-a"},
        "spec": {"cluster": "lc", "machine": "lc-cp-0", "region": "local",
                 "role": "control-plane", "stateItems": items},
    }))
    await sign_in(page, console)
    await page.goto(console.url + "/ui/#/clusters/team-a/lc")
    cell = page.locator("[data-machine='lc-cp-0'] .lcm-cell")
    await expect(cell).to_contain_text("0/3")
    await set_status(console, LCMMachine, "lc-cp-0", state_items={
        "os": StateItemStatus(state="Done", attempts=1),
        "runtime": StateItemStatus(state="Running", attempts=1),
    })
    await expect(cell).to_contain_text("1/3")
    await expect(cell).to_contain_text("running: runtime")
    await expect(cell.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "33")


async def test_two_tabs_of_a_cluster_page_both_follow_changes(console: Console, page: Page):
    """A cluster page follows six collections. As chunked HTTP streams each held one of the
    six connections a browser keeps per host, so a second tab of it never followed a
    change; over websockets both tabs load and follow every change."""
    await console.store.create(cluster_obj("two"))
    await console.store.create(convert(Machine, {
        "metadata": {"name": "two-cp-0", "namespace": "team-a"},
        "spec": {"cluster": "two", "role": "control-plane", "region": "local",
                 "simulated": {"flavor": "small"}},
    }))
    items = [{"name": n, "phase": "deploy", "version": "1"} for n in ("os", "runtime")]
    await console.store.create(convert(LCMMachine, {
        "metadata": {"name": "two-cp-0", "namespace": "team-a"},
        "spec": {"cluster": "two", "machine": "two-cp-0", "region": "local",
                 "role": "control-plane", "stateItems": items},
    }))
    watches: list[str] = []  # websockets opened
    streams: list[str] = []  # HTTP watch requests (none expected)
    tabs = [page, await page.context.new_page()]
    for tab in tabs:
        tab.on("websocket", lambda ws: watches.append(ws.url))
        tab.on("request", lambda r: streams.append(r.url) if "watch=true" in r.url
               and r.resource_type != "websocket" else None)
        await sign_in(tab, console)  # the token is kept per tab (sessionStorage)
        await tab.goto(console.url + "/ui/#/clusters/team-a/two")
    cells = [tab.locator("[data-machine='two-cp-0'] .lcm-cell") for tab in tabs]
    for cell in cells:
        await expect(cell).to_contain_text("0/2")
    await set_status(console, LCMMachine, "two-cp-0", state_items={
        "os": StateItemStatus(state="Done", attempts=1)})
    for cell in cells:
        await expect(cell).to_contain_text("1/2")
    # Six per cluster page (and the cluster list each tab signed in to); a collection opens
    # its socket once its first list is in, so the last may open after the cells changed.
    await eventually(lambda: sum("watch=true" in url for url in watches) >= 12,
                     what="six watch sockets per tab")
    assert streams == []
    await tabs[1].close()


async def test_inventory_pages_are_live_and_never_show_secrets(console: Console, page: Page):
    await console.store.create(convert(ArtifactMirror, {
        "metadata": {"name": "m1", "namespace": "team-a"},
        "spec": {"region": "local", "release": "mke-3-7-0"},
    }))
    await set_status(console, ArtifactMirror, "m1", phase="Mirroring", items_total=10,
                     items_done=3, bytes_total=4096, bytes_done=1024)
    await console.store.create(convert(OpenStackCredential, {
        "metadata": {"name": "os1", "namespace": "team-a"},
        "spec": {"region": "local", "auth": {"authUrl": "http://keystone.test:5000/v3",
                                             "username": "demo", "password": "s3cr3t-pw"}},
    }))
    await sign_in(page, console)
    await page.click("a[data-nav=mirrors]")
    bars = page.locator("[data-name=m1] [role=progressbar]")
    await expect(bars.first).to_have_attribute("aria-valuenow", "30")
    await expect(bars.nth(1)).to_have_attribute("aria-valuenow", "25")
    await mark_page(page)
    await set_status(console, ArtifactMirror, "m1", phase="Ready", items_done=10,
                     bytes_done=4096)
    await expect(bars.first).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("[data-name=m1] .phase")).to_have_text("Ready")
    await assert_not_reloaded(page)
    await screenshot(page, "mirrors")

    await page.click("a[data-nav=credentials]")
    await expect(page.locator("[data-name=os1]")).to_contain_text("keystone.test")
    assert "s3cr3t-pw" not in await page.content()

    await page.click("a[data-nav=releases]")
    await expect(page.locator("[data-plural=clusterreleases] [data-name]")).to_have_count(3)
    await expect(page.locator("[data-name=mke-3-7-0]")).to_contain_text("mke-3-7-1")
    for section in ("hosts", "attached"):
        await page.click(f"a[data-nav={section}]")
        await expect(page.locator(".slot .empty")).to_be_visible()
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_cluster_page_events_follow_changes_to_the_clusters_objects(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("ev"))
    await console.store.create(cluster_obj("other"))
    for cluster in ("ev", "other"):
        await console.store.create(convert(Machine, {
            "metadata": {"name": f"{cluster}-cp-0", "namespace": "team-a",
                         "labels": {CLUSTER_LABEL: cluster}},
            "spec": {"cluster": cluster, "role": "control-plane", "region": "local",
                     "simulated": {"flavor": "small"}},
        }))
    await sign_in(page, console)
    await page.goto(console.url + "/ui/#/clusters/team-a/ev")
    events = page.locator(".events")
    await expect(events.locator(".empty")).to_have_text("No events yet.")
    # Changes before the socket is subscribed are not streamed; wait for it to be live.
    await expect(events).to_have_attribute("data-feed", "live")
    await mark_page(page)

    await set_status(console, Machine, "ev-cp-0", phase="Provisioning")
    row = events.locator("[data-event-object='Machine/ev-cp-0'][data-event=MODIFIED]")
    await expect(row).to_have_count(1)
    await set_status(console, Cluster, "ev", phase="Provisioning")
    await expect(events.locator("[data-event-object='Cluster/ev'][data-event=MODIFIED]")
                 ).to_have_count(1)
    # A condition transition of one of its machines is listed too.
    await set_status(console, Machine, "ev-cp-0", conditions=ready())
    await expect(events.locator("[data-event-object='Machine/ev-cp-0']"
                                "[data-event='Ready=True (Ready)']")).to_have_count(1)
    # Another cluster's machine changing leaves this page's events alone (the stream is
    # ordered: once the later delete shows, the other machine's change was seen and dropped).
    await set_status(console, Machine, "other-cp-0", phase="Provisioning")
    await console.store.delete(Machine, "ev-cp-0", "team-a")
    await expect(events.locator("[data-event-object='Machine/ev-cp-0'][data-event=DELETED]")
                 ).to_have_count(1)
    await expect(events.locator("[data-event-object='Machine/other-cp-0']")).to_have_count(0)
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_cluster_page_adds_a_machine_like_its_peers_and_deletes_one(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("sc"))
    for name, role, flavor in (("sc-cp-0", "control-plane", "large"),
                               ("sc-worker-0", "worker", "small")):
        await console.store.create(convert(Machine, {
            "metadata": {"name": name, "namespace": "team-a", "labels": {CLUSTER_LABEL: "sc"}},
            "spec": {"cluster": "sc", "role": role, "region": "local",
                     "simulated": {"flavor": flavor}},
        }))
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/sc")
    await expect(page.locator("[data-machine]")).to_have_count(2)

    # A worker like the existing one: its provider section, the next free name.
    await page.click("button[name=add-machine]")
    await expect(page.locator(".notice")).to_contain_text("sc-worker-1 (worker) requested")
    await expect(page.locator("[data-machine='sc-worker-1']")).to_be_visible()
    added = await console.store.get(Machine, "sc-worker-1", "team-a")
    assert (added.spec.role, added.spec.cluster, added.spec.region) == ("worker", "sc", "local")
    assert added.spec.simulated is not None and added.spec.simulated.flavor == "small"
    assert added.metadata.labels[CLUSTER_LABEL] == "sc"
    await page.select_option("select[name=machine-role]", "control-plane")
    await page.click("button[name=add-machine]")
    await expect(page.locator(".notice")).to_contain_text("sc-cp-1 (control-plane) requested")
    cp = await console.store.get(Machine, "sc-cp-1", "team-a")
    assert cp.spec.simulated is not None and cp.spec.simulated.flavor == "large"
    await screenshot(page, "cluster-machines")

    async def delete_machine(name: str) -> None:
        await page.locator(f"[data-machine='{name}'] button[name=delete-machine]").click()
        dialog = page.locator("dialog.confirm")
        await dialog.locator("input[name=confirm]").fill(name)
        await dialog.get_by_role("button", name="Delete").click()

    await delete_machine("sc-worker-0")
    await expect(page.locator("[data-machine='sc-worker-0']")).to_have_count(0)
    with pytest.raises(NotFound):
        await console.store.get(Machine, "sc-worker-0", "team-a")
    # The gateway refuses taking the last control-plane node; the page says why.
    await delete_machine("sc-cp-0")
    await expect(page.locator("[data-machine='sc-cp-0']")).to_have_count(0)
    await delete_machine("sc-cp-1")
    await expect(page.locator(".notice")).to_contain_text(
        "Delete failed: Machine 'sc-cp-1' is the last control-plane node of cluster 'sc'")
    await console.store.get(Machine, "sc-cp-1", "team-a")
    assert page.js_errors == []  # type: ignore[attr-defined]
