"""Maintenance mode from the cluster page, in a real headless Chromium against a real
gateway, store and bus.

The page writes ``spec.maintenance`` (a JSON merge patch through the gateway, whose
admission judges the order: 409s naming ``spec.maintenance``); the test plays LCM and
writes the ``Maintenance`` conditions and phases it would, with LCM's own condition
helpers, and checks that the open page follows without a reload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from shared.models import CLUSTER_LABEL, Cluster, Machine, convert
from shared.runtime import conditions as cond
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page, set_status

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

PDB = "Cannot evict pod as it would violate the pod's disruption budget."
DRAINED = "the node is cordoned and drained; LCM applies nothing new to it"
MAINT = re.compile(r"\bmaint\b")


async def add_machine(console: Console, cluster: str, name: str, ns: str = "team-a",
                      role: str = "worker", maintenance: bool = False) -> None:
    await console.store.create(convert(Machine, {
        "metadata": {"name": name, "namespace": ns, "labels": {CLUSTER_LABEL: cluster}},
        "spec": {"cluster": cluster, "role": role, "region": "local",
                 "simulated": {"flavor": "small"}, "maintenance": maintenance},
    }))


async def play_lcm(console: Console, cls: type, name: str, mark: Callable, ns: str = "team-a",
                   ) -> None:
    """Write a status as LCM would: ``mark(status)`` with the condition helpers, then the
    Machine's derived phase and Ready (``summarize_machine``, as every writer derives it)."""
    obj = await console.store.get(cls, name, ns)
    mark(obj.status)
    if cls is Machine:
        cond.summarize_machine(obj.status)
    await console.store.update_status(obj)


async def confirm(page: Page, action: str, *, says: tuple[str, ...] = ()) -> None:
    """Click ``action`` in the open confirmation after checking what it says."""
    dialog = page.locator("dialog.confirm")
    await expect(dialog).to_be_visible()
    for text in says:
        await expect(dialog).to_contain_text(text)
    await dialog.get_by_role("button", name=action).click()
    await expect(dialog).to_have_count(0)


def machine_button(page: Page, machine: str) -> Locator:
    return page.locator(f"[data-machine='{machine}'] button[name=machine-maintenance]")


async def test_cluster_then_machine_into_maintenance_and_the_gateway_refusal_shown(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("mm"))
    await set_status(console, Cluster, "mm", phase="Ready", release="mke-3-7-0")
    await add_machine(console, "mm", "mm-cp-0", role="control-plane")
    await add_machine(console, "mm", "mm-worker-0")
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/mm")

    state = page.locator(".summary .maintenance")
    cluster_button = page.locator("button[name=maintenance-button]")
    worker = page.locator("[data-machine='mm-worker-0']")
    await expect(state).to_have_attribute("data-state", "off")
    await expect(cluster_button).to_have_text("Enter maintenance")
    await expect(cluster_button).to_be_enabled()
    # Machines may enter maintenance only once the cluster is in it: the page says so.
    await expect(machine_button(page, "mm-worker-0")).to_be_disabled()
    await expect(machine_button(page, "mm-worker-0")).to_have_attribute(
        "title", re.compile(r"^Put cluster mm into maintenance first"))
    await mark_page(page)

    # The confirmation says what entering does; cancelling writes nothing.
    await cluster_button.click()
    dialog = page.locator("dialog.confirm")
    await expect(dialog).to_contain_text("Upgrades are held")
    await expect(dialog).to_contain_text("one by one")
    await screenshot(page, "maintenance-confirmation")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await expect(page.locator(".notice")).to_have_text("")
    assert (await console.store.get(Cluster, "mm", "team-a")).spec.maintenance is False

    await cluster_button.click()
    async with page.expect_request(lambda r: r.method == "PATCH") as sent:
        await confirm(page, "Enter maintenance")
    request = await sent.value
    assert request.url.endswith("/namespaces/team-a/clusters/mm")
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert request.post_data_json == {"spec": {"maintenance": True}}
    await expect(page.locator(".notice")).to_contain_text("Cluster mm is entering maintenance")
    assert (await console.store.get(Cluster, "mm", "team-a")).spec.maintenance is True
    await expect(state).to_have_attribute("data-state", "entering")
    await expect(cluster_button).to_have_text("Leave maintenance")
    await expect(machine_button(page, "mm-worker-0")).to_be_enabled()
    await expect(machine_button(page, "mm-worker-0")).to_have_text("Enter maintenance")

    # LCM holds the cluster: phase and condition Maintenance, a badge that is no error.
    await play_lcm(console, Cluster, "mm", lambda st: (
        cond.mark_true(st, cond.MAINTENANCE, "InMaintenance", "0 of 2 machines in maintenance"),
        setattr(st, "phase", "Maintenance")))
    phase = page.locator(".summary .phase .badge")
    await expect(phase).to_have_text("Maintenance")
    await expect(phase).to_have_class(MAINT)
    await expect(phase).not_to_have_class(re.compile(r"\b(bad|warn)\b"))
    await expect(state).to_have_attribute("data-state", "on")
    await expect(state).to_contain_text("In maintenance")
    await expect(state).to_contain_text("0 of 2 machines in maintenance")

    # A machine into maintenance from its row.
    await machine_button(page, "mm-worker-0").click()
    await confirm(page, "Enter maintenance", says=("cordoned and drained",))
    await expect(page.locator(".notice")).to_contain_text(
        "Machine mm-worker-0 is entering maintenance")
    assert (await console.store.get(Machine, "mm-worker-0", "team-a")).spec.maintenance is True
    assert (await console.store.get(Machine, "mm-cp-0", "team-a")).spec.maintenance is False
    await expect(worker.locator(".maintenance")).to_contain_text("requested")
    await expect(machine_button(page, "mm-worker-0")).to_have_text("Leave maintenance")
    await expect(machine_button(page, "mm-cp-0")).to_have_text("Enter maintenance")

    # LCM: the drain is refused (Draining, the agent's error), then goes through (Drained).
    await play_lcm(console, Machine, "mm-worker-0", lambda st: cond.mark_false(
        st, cond.MAINTENANCE, "Draining", f"cordon and drain failed: {PDB}", "Error"))
    cell = worker.locator(".maintenance")
    await expect(cell.locator("[data-state]")).to_have_attribute("data-state", "Draining")
    await expect(cell.locator(".badge")).to_have_text("Draining")
    await expect(cell.locator(".error")).to_have_text(f"cordon and drain failed: {PDB}")
    await expect(worker.locator(".phase")).to_have_text("Maintenance")
    await screenshot(page, "maintenance-draining")

    await play_lcm(console, Machine, "mm-worker-0", lambda st: cond.mark_true(
        st, cond.MAINTENANCE, "Drained", DRAINED))
    await expect(cell.locator(".badge")).to_have_text("Drained")
    await expect(cell.locator(".badge")).to_have_class(MAINT)
    await expect(cell).to_contain_text(DRAINED)
    await expect(cell.locator(".error")).to_have_count(0)

    # Leaving the cluster's maintenance with a machine still in it: the gateway's 409.
    await cluster_button.click()
    await confirm(page, "Leave maintenance", says=("Every machine must leave maintenance first",))
    notice = page.locator(".notice")
    await expect(notice).to_have_text(
        "Leaving maintenance failed: Cluster 'mm' cannot leave maintenance while its machines "
        "are in maintenance (mm-worker-0): clear their spec.maintenance first")
    await expect(notice).to_have_class(re.compile(r"\bfailed\b"))
    assert (await console.store.get(Cluster, "mm", "team-a")).spec.maintenance is True
    await expect(cluster_button).to_have_text("Leave maintenance")
    await screenshot(page, "maintenance-refused")

    # The right order: the machine first, then the cluster.
    await machine_button(page, "mm-worker-0").click()
    await confirm(page, "Leave maintenance")
    await expect(notice).to_have_text("Machine mm-worker-0 is leaving maintenance.")
    await expect(notice).not_to_have_class(re.compile(r"\bfailed\b"))
    assert (await console.store.get(Machine, "mm-worker-0", "team-a")).spec.maintenance is False
    await expect(cell).to_contain_text("leaving maintenance")
    await cluster_button.click()
    await confirm(page, "Leave maintenance")
    await expect(notice).to_have_text("Cluster mm is leaving maintenance.")
    assert (await console.store.get(Cluster, "mm", "team-a")).spec.maintenance is False
    await expect(cluster_button).to_have_text("Enter maintenance")
    await expect(machine_button(page, "mm-worker-0")).to_be_disabled()
    await expect(machine_button(page, "mm-worker-0")).to_have_text("Enter maintenance")
    # Until LCM lets go, the page says the cluster is on its way out.
    await expect(state).to_have_attribute("data-state", "leaving")
    await play_lcm(console, Machine, "mm-worker-0",
                   lambda st: cond.remove(st, cond.MAINTENANCE))
    await play_lcm(console, Cluster, "mm", lambda st: (
        cond.remove(st, cond.MAINTENANCE), setattr(st, "phase", "Ready")))
    await expect(state).to_have_attribute("data-state", "off")
    await expect(cell).to_have_text("")
    await expect(phase).to_have_text("Ready")
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_entering_maintenance_during_an_upgrade_shows_the_gateway_refusal(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("up", release="mke-3-7-1"))
    await set_status(console, Cluster, "up", phase="Upgrading", release="mke-3-7-0")
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/up")
    await page.click("button[name=maintenance-button]")
    await confirm(page, "Enter maintenance")
    notice = page.locator(".notice")
    await expect(notice).to_have_text(
        "Entering maintenance failed: Cluster 'up' cannot enter maintenance while the upgrade "
        "to mke-3-7-1 is in progress: wait for it to finish")
    await expect(notice).to_have_class(re.compile(r"\bfailed\b"))
    assert (await console.store.get(Cluster, "up", "team-a")).spec.maintenance is False
    await expect(page.locator(".summary .maintenance")).to_have_attribute("data-state", "off")
    await expect(page.locator("button[name=maintenance-button]")).to_have_text(
        "Enter maintenance")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_a_reader_sees_maintenance_but_no_action_enabled(console: Console, page: Page):
    # wally writes in team-a but only reads team-b: the role is per project.
    await console.store.create(cluster_obj("rb", "team-b", maintenance=True))
    await play_lcm(console, Cluster, "rb", lambda st: (
        cond.mark_true(st, cond.MAINTENANCE, "InMaintenance",
                       "1 of 2 machines in maintenance: rb-worker-0 (drained)"),
        setattr(st, "phase", "Maintenance")), ns="team-b")
    await add_machine(console, "rb", "rb-cp-0", "team-b", role="control-plane")
    await add_machine(console, "rb", "rb-worker-0", "team-b", maintenance=True)
    await play_lcm(console, Machine, "rb-worker-0", lambda st: cond.mark_true(
        st, cond.MAINTENANCE, "Drained", DRAINED), ns="team-b")
    await console.store.create(cluster_obj("wa", "team-a", maintenance=True))
    await add_machine(console, "wa", "wa-worker-0", "team-a")
    await sign_in(page, console, "wally")

    # The list shows the phase with the maintenance colour too.
    listed = page.locator("[data-cluster='team-b/rb'] .phase .badge")
    await expect(listed).to_have_text("Maintenance")
    await expect(listed).to_have_class(MAINT)

    # Control: in team-a, where wally writes, the same state leaves the actions enabled.
    await page.goto(console.url + "/ui/#/clusters/team-a/wa")
    await expect(page.locator("button[name=maintenance-button]")).to_be_enabled()
    await expect(machine_button(page, "wa-worker-0")).to_be_enabled()

    await page.goto(console.url + "/ui/#/clusters/team-b/rb")
    await expect(page.locator(".summary .maintenance")).to_have_attribute("data-state", "on")
    await expect(page.locator("[data-machine='rb-worker-0'] .maintenance .badge")).to_have_text(
        "Drained")
    read_only = re.compile(r"^Read-only: your role in project team-b")
    cluster_button = page.locator("button[name=maintenance-button]")
    await expect(cluster_button).to_have_text("Leave maintenance")
    await expect(cluster_button).to_be_disabled()
    await expect(cluster_button).to_have_attribute("title", read_only)
    for machine, label in (("rb-cp-0", "Enter maintenance"), ("rb-worker-0", "Leave maintenance")):
        button = machine_button(page, machine)
        await expect(button).to_have_text(label)
        await expect(button).to_be_disabled()
        await expect(button).to_have_attribute("title", read_only)
    await screenshot(page, "maintenance-reader")
    assert page.js_errors == []  # type: ignore[attr-defined]
