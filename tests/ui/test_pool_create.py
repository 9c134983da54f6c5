"""Creating a MachinePool from a cluster's page, in a real headless Chromium against a real
gateway, store and bus.

The form POSTs a MachinePool through the gateway (its template's provider section made like
the newest worker, as "Add worker" makes a machine, else from the create wizard's defaults);
the gateway's 422s (a name over 240 characters, a reserved node label) are shown by the field
their cause names and create nothing; a created pool appears in the section live. Readers
are not offered the form.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from shared.models import CLUSTER_LABEL, Machine, MachinePool, convert
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page
from tests.ui.test_machine_pools import add_pool, pool_card
from tests.ui.test_maintenance import add_machine

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

GV = "kaas.containercloud.dev/v1alpha1"
RESERVED = ("nodeLabels: key 'kubernetes.io/os': the prefix kubernetes.io is reserved (only "
            "node-role.kubernetes.io of it may be set)")


async def pool_names(console: Console, ns: str = "team-a") -> list[str]:
    return sorted(p.metadata.name for p in await console.store.list_all(MachinePool, ns))


def control(form: Locator, path: str) -> Locator:
    return form.locator(f"[name='{path}']")


def error_for(form: Locator, path: str) -> Locator:
    return form.locator(f".field-error[data-error-for='{path}']")


async def submit_answered(page: Page, form: Locator) -> Any:
    """Click Create; the gateway's answer to the POST it sends."""
    async with page.expect_response(lambda r: r.request.method == "POST") as answered:
        await form.locator("button[name=create-pool-submit]").click()
    return await answered.value


async def test_create_a_pool_like_the_newest_worker_refusals_shown_and_nothing_made(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("pc"))
    await add_machine(console, "pc", "pc-cp-0", role="control-plane")
    # The newest worker: its provider section (flavor large) is the pool's.
    await console.store.create(convert(Machine, {
        "metadata": {"name": "pc-worker-0", "namespace": "team-a",
                     "labels": {CLUSTER_LABEL: "pc"}},
        "spec": {"cluster": "pc", "role": "worker", "region": "local",
                 "simulated": {"flavor": "large"}},
    }))
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/pc")
    section = page.locator(".machine-pools")
    await expect(section.locator(".pool-hint")).to_contain_text("No machine pools")
    form = section.locator("form.pool-create")
    await expect(form).to_be_hidden()
    await mark_page(page)

    await section.locator("button[name=create-pool]").click()
    await expect(form).to_be_visible()
    await expect(form.locator(".pool-source")).to_have_text("As machine pc-worker-0.")
    await expect(control(form, "spec.template.spec.simulated.flavor")).to_have_value("large")
    await expect(control(form, "spec.replicas")).to_have_value("1")
    await expect(control(form, "spec.deletePolicy")).to_have_value("Newest")
    await expect(control(form, "spec.strategy")).to_have_value("OnDelete")

    # Only "required" is the form's own check: nothing is sent without a name.
    await form.locator("button[name=create-pool-submit]").click()
    await expect(error_for(form, "metadata.name")).to_have_text("Required.")
    await expect(control(form, "metadata.name")).to_have_attribute("aria-invalid", "true")
    assert await pool_names(console) == []

    # A name over 240 characters: the gateway's 422 names metadata.name; nothing is made.
    await control(form, "metadata.name").fill("p" * 241)
    await expect(error_for(form, "metadata.name")).to_have_text("")
    response = await submit_answered(page, form)
    assert response.status == 422
    causes = (await response.json())["details"]["causes"]
    assert [c["field"] for c in causes] == ["metadata.name"]
    await expect(error_for(form, "metadata.name")).to_have_text(causes[0]["message"])
    await expect(error_for(form, "metadata.name")).to_contain_text("at most 240 characters")
    await expect(page.locator(".notice")).to_have_class(re.compile(r"\bfailed\b"))
    assert await pool_names(console) == []

    # A reserved node label: the 422 names the template; the form shows it by the labels.
    await control(form, "metadata.name").fill("pc-workers")
    await control(form, "spec.replicas").fill("2")
    await control(form, "spec.deletePolicy").select_option("Oldest")
    await control(form, "spec.strategy").select_option("RollingUpdate")
    labels = control(form, "spec.template.spec.nodeLabels")
    await labels.fill("tier=db\nkubernetes.io/os=x")
    response = await submit_answered(page, form)
    assert response.status == 422
    await expect(error_for(form, "spec.template.spec.nodeLabels")).to_have_text(RESERVED)
    await expect(labels).to_have_attribute("aria-invalid", "true")
    await expect(error_for(form, "metadata.name")).to_have_text("")
    await screenshot(page, "machine-pool-create-refused")
    assert await pool_names(console) == []

    # A line that is no key=value is the form's to say; nothing is sent.
    await labels.fill("tier=db\njust-a-key")
    await form.locator("button[name=create-pool-submit]").click()
    await expect(error_for(form, "spec.template.spec.nodeLabels")).to_have_text(
        "Line 2 (just-a-key) is not key=value.")
    assert await pool_names(console) == []

    # Fixed: created through the gateway, and the pool shows up in the section live.
    await labels.fill("tier=db\n\nnode-role.kubernetes.io/storage=\n")
    async with page.expect_request(lambda r: r.method == "POST") as sent:
        await form.locator("button[name=create-pool-submit]").click()
    request = await sent.value
    assert request.url.endswith(f"/apis/{GV}/namespaces/team-a/machinepools")
    assert request.post_data_json == {
        "apiVersion": GV, "kind": "MachinePool",
        "metadata": {"name": "pc-workers", "namespace": "team-a"},
        "spec": {"cluster": "pc", "region": "local", "replicas": 2, "deletePolicy": "Oldest",
                 "strategy": {"type": "RollingUpdate"},
                 "template": {"spec": {"simulated": {"flavor": "large"},
                                       "nodeLabels": {"tier": "db",
                                                      "node-role.kubernetes.io/storage": ""}}}},
    }
    await expect(page.locator(".notice")).to_have_text(
        "Machine pool pc-workers created: LCM makes its 2 machines.")
    card = pool_card(page, "pc-workers")
    await expect(card).to_be_visible()
    await expect(card.locator("[data-phase]")).to_have_text("Not observed yet")
    await expect(card.locator(".replicas")).to_have_text("2")
    await expect(card.locator(".delete-policy")).to_have_text("Oldest")
    await expect(section.locator(".pool-hint")).to_have_count(0)
    await expect(form).to_be_hidden()
    stored = await console.store.get(MachinePool, "pc-workers", "team-a")
    assert (stored.spec.cluster, stored.spec.region, stored.spec.replicas) == ("pc", "local", 2)
    assert stored.spec.strategy.type == "RollingUpdate"
    assert stored.spec.template.spec.simulated.flavor == "large"
    assert stored.spec.template.spec.node_labels == {
        "tier": "db", "node-role.kubernetes.io/storage": ""}

    # Opened again, the form starts afresh.
    await section.locator("button[name=create-pool]").click()
    await expect(control(form, "metadata.name")).to_have_value("")
    await expect(control(form, "spec.template.spec.nodeLabels")).to_have_value("")
    await form.locator("button[name=cancel-pool]").click()
    await expect(form).to_be_hidden()
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_a_cluster_without_machines_gets_the_wizard_defaults_and_readers_no_form(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("os", provider="openstack", credential="os-cred"))
    await console.store.create(cluster_obj("rd", "team-b"))
    await add_pool(console, "rd-workers", "rd", "team-b")
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/os")
    section = page.locator(".machine-pools")
    form = section.locator("form.pool-create")
    await section.locator("button[name=create-pool]").click()
    await expect(form.locator("legend")).to_have_text("Machines (openstack)")
    await expect(form.locator(".pool-source")).to_have_text("The create wizard's defaults.")
    await expect(control(form, "spec.template.spec.openstack.flavor")).to_have_value("m1.large")
    await expect(control(form, "spec.template.spec.openstack.image")).to_have_value(
        "ubuntu-22.04")
    network = control(form, "spec.template.spec.openstack.network")
    await expect(network).to_have_value("")

    # The wizard's required fields are required here too.
    await control(form, "metadata.name").fill("os-pool")
    await form.locator("button[name=create-pool-submit]").click()
    await expect(error_for(form, "spec.template.spec.openstack.network")).to_have_text(
        "Required.")
    assert await pool_names(console) == []
    await network.fill("private")
    response = await submit_answered(page, form)
    assert response.status == 201
    await expect(pool_card(page, "os-pool")).to_be_visible()
    await expect(pool_card(page, "os-pool").locator(".replicas")).to_have_text("1")
    stored = await console.store.get(MachinePool, "os-pool", "team-a")
    section_ = stored.spec.template.spec.openstack
    assert (section_.flavor, section_.image, section_.network) == (
        "m1.large", "ubuntu-22.04", "private")
    assert stored.spec.template.spec.node_labels == {}

    # A reader sees the pools but is not offered the form.
    await page.goto(console.url + "/ui/#/clusters/team-b/rd")
    await expect(pool_card(page, "rd-workers").locator(".replicas")).to_have_text("1")
    await expect(page.locator(".machine-pools button[name=create-pool]")).to_be_hidden()
    await expect(page.locator(".machine-pools form.pool-create")).to_be_hidden()
    assert page.js_errors == []  # type: ignore[attr-defined]
