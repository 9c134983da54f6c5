"""A cluster's MachinePools on its page, in a real headless Chromium against a real
gateway, store and bus.

The test plays the region's LCM pool controller (services/lcm/pool.py): it makes the
pool's Machines (named ``<pool>-<n>``, with the machine-pool label) and writes the pool's
status (replicas, Ready and up-to-date counts, phase, the Ready condition with the
controller's reasons, wording and severities) through the store, and checks that the open
page follows without a reload. Scaling writes ``spec.replicas`` as a JSON merge patch
through the gateway, whose refusal (a 422 for a count over the model's 1000) is shown by
the pool and changes nothing; marking a pool machine to go first writes the delete-machine
annotation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from shared.models import (
    CLUSTER_LABEL,
    DELETE_MACHINE_ANNOTATION,
    POOL_LABEL,
    Cluster,
    Machine,
    MachinePool,
    convert,
)
from shared.runtime import conditions as cond
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page, set_status
from tests.ui.test_maintenance import add_machine, confirm

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

HINT = "ccctl apply -f examples/machine-pool/"
MUTED = "rgb(102, 112, 133)"  # --muted
WARN = "rgb(178, 106, 0)"  # --warn
BAD = "rgb(198, 40, 40)"  # --bad
PATCH_TYPE = "application/merge-patch+json"


async def add_pool(console: Console, name: str, cluster: str, ns: str = "team-a",
                   **spec: Any) -> None:
    await console.store.create(convert(MachinePool, {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"cluster": cluster, "region": "local",
                 "template": {"spec": {"simulated": {"flavor": "small"}}}, **spec},
    }))


async def add_pool_machine(console: Console, pool: str, cluster: str, index: int,
                           ns: str = "team-a") -> str:
    """A Machine as the pool controller makes it: ``<pool>-<n>``, labelled with the pool."""
    name = f"{pool}-{index}"
    await console.store.create(convert(Machine, {
        "metadata": {"name": name, "namespace": ns,
                     "labels": {CLUSTER_LABEL: cluster, POOL_LABEL: pool}},
        "spec": {"cluster": cluster, "role": "worker", "region": "local",
                 "simulated": {"flavor": "small"}},
    }))
    return name


async def play_pool(console: Console, name: str, *, replicas: int, ready: int, updated: int,
                    phase: str, why: tuple[str, str] | None = None, severity: str = "Info",
                    ns: str = "team-a") -> None:
    """The pool's status as its controller writes it: counts, phase and Ready (False with
    ``why`` = (reason, message), else True)."""
    pool = await console.store.get(MachinePool, name, ns)
    st = pool.status
    st.observed_generation = pool.metadata.generation
    st.replicas, st.ready_replicas, st.updated_replicas = replicas, ready, updated
    st.phase = phase
    st.selector = f"{POOL_LABEL}={name}"
    if why is None:
        cond.mark_true(st, cond.READY, "Ready", f"{ready} of {replicas} machines Ready")
        assert ready == replicas
    else:
        cond.mark_false(st, cond.READY, *why, severity)  # type: ignore[arg-type]
    await console.store.update_status(pool)


def pool_card(page: Page, name: str) -> Locator:
    return page.locator(f".machine-pools [data-machine-pool='{name}']")


async def expect_counts(card: Locator, wanted: str, current: str, ready: str, updated: str,
                        ) -> None:
    await expect(card.locator(".replicas")).to_have_text(wanted)
    await expect(card.locator(".current-replicas")).to_have_text(current)
    await expect(card.locator(".ready-replicas")).to_have_text(ready)
    await expect(card.locator(".updated-replicas")).to_have_text(updated)


async def test_no_pools_shows_the_hint_then_a_pool_appears_and_follows_its_controller(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("mp"))
    await add_machine(console, "mp", "mp-cp-0", role="control-plane")
    await add_machine(console, "mp", "mp-worker-0")
    # Pools of another cluster, and of a cluster of the same name in another project.
    await console.store.create(cluster_obj("other"))
    await add_pool(console, "other-workers", "other")
    await console.store.create(cluster_obj("mp", "team-b"))
    await add_pool(console, "mp-in-b", "mp", "team-b")
    await sign_in(page, console)
    await page.goto(console.url + "/ui/#/clusters/team-a/mp")

    section = page.locator(".machine-pools")
    hint = section.locator(".pool-hint")
    await expect(hint).to_contain_text("No machine pools")
    await expect(hint.locator("code").first).to_have_text(HINT)
    await expect(hint).to_contain_text("metadata.namespace: team-a")
    await expect(hint).to_contain_text("spec.cluster: mp")
    await expect(hint).to_contain_text("spec.region: local")
    await expect(hint).to_contain_text("in its workers.yaml (and its template's baremetal "
                                       "section made a simulated one)")
    await expect(section.locator("[data-machine-pool]")).to_have_count(0)
    await expect(page.locator("[data-machine]")).to_have_count(2)
    await expect(page.locator("[data-machine] td.pool")).to_have_text(["", ""])
    await screenshot(page, "machine-pools-none")
    await mark_page(page)

    # Written while the page is open: it replaces the hint; nothing observed yet, so no counts.
    await add_pool(console, "mp-workers", "mp", replicas=3)
    card = pool_card(page, "mp-workers")
    await expect(card).to_be_visible()
    await expect(hint).to_have_count(0)
    await expect(card.locator("[data-phase]")).to_have_text("Not observed yet")
    await expect_counts(card, "3", "—", "—", "—")
    await expect(card.locator(".delete-policy")).to_have_text("Newest")
    await expect(card.locator(".members")).to_have_text("none yet")
    await expect(card.locator("input[name=replicas]")).to_have_value("3")

    # The controller makes three machines and says it is waiting for them (Info: muted).
    made = [await add_pool_machine(console, "mp-workers", "mp", i) for i in range(3)]
    waiting = ("1 of 3 machines Ready; waiting for mp-workers-1 (Provisioning), "
               "mp-workers-2 (Provisioning)")
    await play_pool(console, "mp-workers", replicas=3, ready=1, updated=3, phase="ScalingUp",
                    why=("WaitingForMachines", waiting))
    await expect_counts(card, "3", "3", "1", "3")
    await expect(card.locator("[data-phase]")).to_have_text("ScalingUp")
    why = card.locator(".ready-message")
    await expect(why).to_have_attribute("data-reason", "WaitingForMachines")
    await expect(why).to_have_text(f"WaitingForMachines: {waiting}")
    await expect(why).to_have_css("color", MUTED)
    await expect(card.locator("[data-pool-machine]")).to_have_text(made)
    # The machines table says which machines are the pool's (its label), and only those.
    for machine in made:
        await expect(page.locator(f"[data-machine='{machine}'] td.pool .tag")).to_have_text(
            "mp-workers")
    for machine in ("mp-cp-0", "mp-worker-0"):
        await expect(page.locator(f"[data-machine='{machine}'] td.pool")).to_have_text("")
    await screenshot(page, "machine-pools-scaling-up")

    # All Ready: Running, and the reason goes.
    await play_pool(console, "mp-workers", replicas=3, ready=3, updated=3, phase="Running")
    await expect_counts(card, "3", "3", "3", "3")
    phase = card.locator("[data-phase]")
    await expect(phase).to_have_text("Running")
    await expect(phase).to_have_class(re.compile(r"\bok\b"))
    await expect(why).to_have_count(0)

    # Blocked (phase Pending): a Warning in the warning colour, an Error in the error colour.
    await play_pool(console, "mp-workers", replicas=3, ready=3, updated=3, phase="Pending",
                    why=("ClusterNotFound", "cluster 'mp' does not exist"), severity="Warning")
    await expect(phase).to_have_text("Pending")
    await expect(why).to_have_text("ClusterNotFound: cluster 'mp' does not exist")
    await expect(why).to_have_css("color", WARN)
    await play_pool(console, "mp-workers", replicas=3, ready=3, updated=3, phase="Pending",
                    why=("RegionMismatch", "cluster 'mp' is in region local, not other"),
                    severity="Error")
    await expect(why).to_have_text("RegionMismatch: cluster 'mp' is in region local, not other")
    await expect(why).to_have_css("color", BAD)

    # Another cluster's new pool stays off this page (the stream is ordered: once the later
    # write to this cluster's pool shows, the other one was seen and dropped).
    await add_pool(console, "other-more", "other")
    await play_pool(console, "mp-workers", replicas=3, ready=2, updated=2, phase="ScalingUp",
                    why=("WaitingForMachines", "2 of 3 machines Ready; waiting for mp-workers-0"))
    await expect_counts(card, "3", "3", "2", "2")
    await expect(section.locator("[data-machine-pool]")).to_have_count(1)
    # Its Ready transitions are among the cluster's events.
    await expect(page.locator(".events [data-event-object='MachinePool/mp-workers']"
                              "[data-event='Ready=False (WaitingForMachines)']")).to_have_count(1)
    await assert_not_reloaded(page)

    # Control: the other cluster's page does show its pools.
    await page.goto(console.url + "/ui/#/clusters/team-a/other")
    await expect(page.locator(".machine-pools [data-machine-pool]")).to_have_count(2)
    await expect(pool_card(page, "other-workers")).to_be_visible()
    await expect(pool_card(page, "mp-workers")).to_have_count(0)
    await expect(page.locator(".pool-hint")).to_have_count(0)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_scaling_writes_spec_replicas_and_a_refusal_shows_the_reason(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("sc"))
    await set_status(console, Cluster, "sc", phase="Ready", release="mke-3-7-0")
    await add_machine(console, "sc", "sc-cp-0", role="control-plane")
    await add_pool(console, "sc-workers", "sc", replicas=2)
    for i in range(2):
        await add_pool_machine(console, "sc-workers", "sc", i)
    await play_pool(console, "sc-workers", replicas=2, ready=2, updated=2, phase="Running")
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/sc")
    card = pool_card(page, "sc-workers")
    field = card.locator("input[name=replicas]")
    scale = card.locator("button[name=scale]")
    error = card.locator(".scale-error")
    notice = page.locator(".notice")
    await expect_counts(card, "2", "2", "2", "2")
    await expect(field).to_have_value("2")
    await expect(scale).to_be_enabled()
    await mark_page(page)

    # Up to 4: a merge patch of spec.replicas alone, no confirmation.
    await field.fill("4")
    async with page.expect_request(lambda r: r.method == "PATCH") as sent:
        await scale.click()
    request = await sent.value
    assert request.url.endswith("/namespaces/team-a/machinepools/sc-workers")
    assert request.headers["content-type"] == PATCH_TYPE
    assert request.post_data_json == {"spec": {"replicas": 4}}
    await expect(notice).to_have_text("Machine pool sc-workers is scaling to 4 machines.")
    await expect(card.locator(".replicas")).to_have_text("4")
    assert (await console.store.get(MachinePool, "sc-workers", "team-a")).spec.replicas == 4
    await expect(error).to_have_text("")

    # A count being typed survives the updates the controller keeps writing meanwhile.
    await field.fill("7")
    await add_pool_machine(console, "sc-workers", "sc", 2)
    await play_pool(console, "sc-workers", replicas=3, ready=2, updated=3, phase="ScalingUp",
                    why=("ScalingUp", "3 machines, 4 wanted"))
    await expect_counts(card, "4", "3", "2", "3")
    await expect(card.locator("[data-phase]")).to_have_text("ScalingUp")
    await expect(field).to_have_value("7")

    # Over the model's maximum: the gateway's 422, shown by the pool; nothing changes.
    await field.fill("5000")
    async with page.expect_response(lambda r: r.request.method == "PATCH") as answered:
        await scale.click()
    response = await answered.value
    assert response.status == 422
    refusal = (await response.json())["message"]
    assert "spec.replicas" in refusal
    await expect(error).to_have_text(refusal)
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(notice).to_have_text(f"Scaling machine pool sc-workers failed: {refusal}")
    await expect(notice).to_have_class(re.compile(r"\bfailed\b"))
    await expect(card.locator(".replicas")).to_have_text("4")
    await expect(field).to_have_value("5000")
    stored = await console.store.get(MachinePool, "sc-workers", "team-a")
    assert stored.spec.replicas == 4
    await screenshot(page, "machine-pools-refused")
    # Typing again takes the error off.
    await field.fill("4")
    await expect(error).to_have_text("")
    await expect(field).not_to_have_attribute("aria-invalid", "true")

    # An empty field is no count: nothing is sent.
    await field.fill("")
    await scale.click()
    await expect(error).to_have_text("Enter the number of machines the pool should keep.")
    assert (await console.store.get(MachinePool, "sc-workers", "team-a")).metadata \
        .resource_version == stored.metadata.resource_version

    # Mark a machine to be removed first: the delete-machine annotation, by a merge patch.
    row = page.locator("[data-machine='sc-workers-1']")
    mark = row.locator("button[name=remove-first]")
    await expect(mark).to_have_text("Remove first")
    await expect(page.locator("[data-machine='sc-cp-0'] button[name=remove-first]")
                 ).to_have_count(0)
    async with page.expect_request(lambda r: r.method == "PATCH") as sent:
        await mark.click()
    request = await sent.value
    assert request.url.endswith("/namespaces/team-a/machines/sc-workers-1")
    assert request.headers["content-type"] == PATCH_TYPE
    assert request.post_data_json == {
        "metadata": {"annotations": {DELETE_MACHINE_ANNOTATION: "true"}}}
    await expect(row.locator("[data-marked]")).to_have_text("removed first on scale-down")
    await expect(mark).to_have_text("Unmark")
    await expect(card.locator("[data-pool-machine='sc-workers-1'] .badge")).to_have_text(
        "removed first")
    marked = await console.store.get(Machine, "sc-workers-1", "team-a")
    assert marked.metadata.annotations[DELETE_MACHINE_ANNOTATION] == "true"

    # Down to 1: the confirmation says how many go and which first; cancelling writes nothing.
    await field.fill("1")
    await scale.click()
    dialog = page.locator("dialog.confirm")
    await expect(dialog).to_contain_text("2 of its 3 machines are deleted")
    await expect(dialog).to_contain_text("sc-workers-1 (marked)")
    await expect(dialog).to_contain_text("then the newest")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    assert (await console.store.get(MachinePool, "sc-workers", "team-a")).spec.replicas == 4
    await scale.click()
    await confirm(page, "Scale down")
    await expect(notice).to_have_text("Machine pool sc-workers is scaling to 1 machine.")
    await expect(card.locator(".replicas")).to_have_text("1")
    assert (await console.store.get(MachinePool, "sc-workers", "team-a")).spec.replicas == 1

    # Taking the mark off removes the annotation.
    await mark.click()
    await expect(mark).to_have_text("Remove first")
    await expect(row.locator("[data-marked]")).to_have_count(0)
    unmarked = await console.store.get(Machine, "sc-workers-1", "team-a")
    assert DELETE_MACHINE_ANNOTATION not in unmarked.metadata.annotations
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_a_reader_sees_pools_but_cannot_scale_and_a_worker_added_is_no_pools(
    console: Console, page: Page
):
    # wally writes in team-a but only reads team-b.
    await console.store.create(cluster_obj("rd", "team-b"))
    await add_pool(console, "rd-workers", "rd", "team-b", replicas=1)
    await add_pool_machine(console, "rd-workers", "rd", 0, "team-b")
    await play_pool(console, "rd-workers", replicas=1, ready=1, updated=1, phase="Running",
                    ns="team-b")
    await console.store.create(cluster_obj("wr"))
    await add_machine(console, "wr", "wr-cp-0", role="control-plane")
    await add_pool(console, "wr-workers", "wr")
    await add_pool_machine(console, "wr-workers", "wr", 0)
    await sign_in(page, console, "wally")

    await page.goto(console.url + "/ui/#/clusters/team-b/rd")
    card = pool_card(page, "rd-workers")
    await expect_counts(card, "1", "1", "1", "1")
    read_only = re.compile(r"^Read-only: your role in project team-b")
    await expect(card.locator("input[name=replicas]")).to_be_disabled()
    await expect(card.locator("button[name=scale]")).to_be_disabled()
    await expect(card.locator("button[name=scale]")).to_have_attribute("title", read_only)
    mark = page.locator("[data-machine='rd-workers-0'] button[name=remove-first]")
    await expect(mark).to_be_disabled()
    await expect(mark).to_have_attribute("title", read_only)

    # "Add worker" makes a machine like the newest worker, here a pool's: not one of the
    # pool's (no pool label), which the pool would count as its own.
    await page.goto(console.url + "/ui/#/clusters/team-a/wr")
    await expect(pool_card(page, "wr-workers").locator(".replicas")).to_have_text("1")
    await expect(pool_card(page, "wr-workers").locator("input[name=replicas]")).to_be_enabled()
    await expect(page.locator("[data-machine]")).to_have_count(2)
    await page.select_option("select[name=machine-role]", "worker")
    await page.click("button[name=add-machine]")
    await expect(page.locator(".notice")).to_have_text("Machine wr-worker-0 (worker) requested.")
    added = page.locator("[data-machine='wr-worker-0']")
    await expect(added).to_be_visible()
    await expect(added.locator("td.pool")).to_have_text("")
    machine = await console.store.get(Machine, "wr-worker-0", "team-a")
    assert POOL_LABEL not in machine.metadata.labels
    assert machine.metadata.labels[CLUSTER_LABEL] == "wr"
    await expect(pool_card(page, "wr-workers").locator("[data-pool-machine]")).to_have_text(
        ["wr-workers-0"])
    assert page.js_errors == []  # type: ignore[attr-defined]
