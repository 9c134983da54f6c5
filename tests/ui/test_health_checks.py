"""A cluster's MachineHealthChecks on its page, in a real headless Chromium against a real
gateway, store and bus.

The test plays the region's LCM: it writes the check's status with the controller's own
summary (``HealthCheckReconciler._summarize`` over an ``Assessment`` of verdicts, so the
conditions and messages are the ones LCM writes) and the Machines' ``HealthCheckSucceeded``
with the controller's wording (``_want``), and checks that the open page follows without
a reload. Colours are checked as computed: warning (``--warn``) and error (``--bad``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from services.lcm.health import HEALTHY, UNHEALTHY_CONDITION, Assessment, Verdict
from services.lcm.healthcheck import HEALTH_CHECK, HealthCheckReconciler
from shared.models import HealthCheckTarget, Machine, MachineHealthCheck, convert, now
from shared.runtime import conditions as cond
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page
from tests.ui.test_maintenance import add_machine, play_lcm

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

WARN = "rgb(178, 106, 0)"  # --warn
BAD = "rgb(198, 40, 40)"  # --bad
HINT = "ccctl apply -f examples/health-check/"
HUNG = "Ready False for more than 300s (reason HeartbeatMissing)"
DOWN = Verdict("unhealthy", UNHEALTHY_CONDITION, HUNG)
PENDING = Verdict("pending", recheck=120.0)


async def add_check(console: Console, name: str, cluster: str, ns: str = "team-a",
                    **spec: Any) -> None:
    await console.store.create(convert(MachineHealthCheck, {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"cluster": cluster, "region": "local", **spec},
    }))


async def add_cluster(console: Console, name: str, workers: int, ns: str = "team-a") -> None:
    await console.store.create(cluster_obj(name, ns))
    await add_machine(console, name, f"{name}-cp-0", ns, role="control-plane")
    for i in range(workers):
        await add_machine(console, name, f"{name}-w{i}", ns)


async def play_check(console: Console, name: str, verdicts: dict[str, Verdict], limit: int,
                     targets: list[HealthCheckTarget] | None = None, ns: str = "team-a",
                     ) -> MachineHealthCheck:
    """Write the check's status as LCM's pass does: targets, counts and conditions."""
    mhc = await console.store.get(MachineHealthCheck, name, ns)
    mhc.status.observed_generation = mhc.metadata.generation
    mhc.status.targets = targets or []
    healthy = sum(v.state == "healthy" for v in verdicts.values())
    HealthCheckReconciler._summarize(mhc, Assessment(
        verdicts=verdicts, expected=len(verdicts), healthy=healthy, limit=limit))
    await console.store.update_status(mhc)
    return mhc


async def play_machine(console: Console, mhc: MachineHealthCheck, entry: HealthCheckTarget | None,
                       machine: str, ns: str = "team-a") -> None:
    """The Machine's HealthCheckSucceeded as the check writes it (None: taken off)."""
    want = None if entry is None else HealthCheckReconciler._want(mhc, entry)
    await play_lcm(console, Machine, machine, lambda st: cond.remove(st, HEALTH_CHECK)
                   if want is None else cond.mark_false(st, HEALTH_CHECK, *want), ns=ns)


def target(machine: str, state: str, attempts: int) -> HealthCheckTarget:
    return HealthCheckTarget(machine=machine, state=state,  # type: ignore[arg-type]
                             attempts=attempts, last_attempt_time=now(),
                             request_id=f"req-{attempts}", reason=UNHEALTHY_CONDITION,
                             message=HUNG)


def check_card(page: Page, name: str) -> Locator:
    return page.locator(f".health-checks [data-health-check='{name}']")


async def test_no_checks_shows_the_hint_then_a_new_check_appears_with_its_counts(
    console: Console, page: Page
):
    await add_cluster(console, "hc", workers=2)
    await add_cluster(console, "other", workers=1)
    # Checks of another cluster, and of a cluster of the same name in another project.
    await add_check(console, "other-reboot", "other")
    await console.store.create(cluster_obj("hc", "team-b"))
    await add_check(console, "hc-in-b", "hc", "team-b")
    await sign_in(page, console)
    await page.goto(console.url + "/ui/#/clusters/team-a/hc")

    section = page.locator(".health-checks")
    hint = section.locator(".health-hint")
    await expect(hint).to_contain_text("No health checks")
    await expect(hint.locator("code").first).to_have_text(HINT)
    await expect(hint).to_contain_text("spec.cluster: hc")
    await expect(hint).to_contain_text("spec.region: local")
    await expect(hint).to_contain_text("metadata.namespace: team-a")
    await expect(section.locator("[data-health-check]")).to_have_count(0)
    await expect(page.locator("[data-machine]")).to_have_count(3)
    await screenshot(page, "health-checks-none")
    await mark_page(page)

    # Written while the page is open: it replaces the hint, not judged yet.
    await add_check(console, "hc-reboot", "hc", maxUnhealthy="40%")
    card = check_card(page, "hc-reboot")
    await expect(card).to_be_visible()
    await expect(hint).to_have_count(0)
    await expect(card.locator("[data-ready]")).to_have_text("Not judged yet")
    await expect(card.locator(".max-unhealthy")).to_have_text("40%")
    await expect(card.locator(".healthy")).to_have_text("—")
    await expect(card.locator(".remediation")).to_have_text("Reboot, at most 2 times, 300s apart")
    await expect(card.locator(".covers")).to_have_text("every machine of the cluster")

    # LCM judges it: all 3 healthy, 40% of 3 is 1 reboot allowed.
    await play_check(console, "hc-reboot", {"hc-cp-0": HEALTHY, "hc-w0": HEALTHY,
                                            "hc-w1": HEALTHY}, limit=1)
    await expect(card.locator(".healthy")).to_have_text("3/3")
    await expect(card.locator(".remediations-allowed")).to_have_text("1")
    ready = card.locator("[data-ready]")
    await expect(ready).to_have_text("Healthy")
    await expect(ready).to_have_class(re.compile(r"\bok\b"))
    await expect(card.locator(".targets")).to_have_text("No machine is being remediated.")
    await expect(card.locator(".remediation-held")).to_have_count(0)

    # A machine's timeout starts running: it counts against maxUnhealthy at once.
    await play_check(console, "hc-reboot", {"hc-cp-0": HEALTHY, "hc-w0": PENDING,
                                            "hc-w1": HEALTHY}, limit=1)
    await expect(card.locator(".healthy")).to_have_text("2/3")
    await expect(card.locator(".remediations-allowed")).to_have_text("0")

    # Another cluster's new check stays off this page (the stream is ordered: once the later
    # write to this cluster's check shows, the other one was seen and dropped).
    await add_check(console, "other-second", "other")
    await play_check(console, "hc-reboot", {"hc-cp-0": HEALTHY, "hc-w0": HEALTHY,
                                            "hc-w1": HEALTHY}, limit=1)
    await expect(card.locator(".healthy")).to_have_text("3/3")
    await expect(section.locator("[data-health-check]")).to_have_count(1)
    await assert_not_reloaded(page)

    # Control: the other cluster's page does show its checks.
    await page.goto(console.url + "/ui/#/clusters/team-a/other")
    await expect(page.locator(".health-checks [data-health-check]")).to_have_count(2)
    await expect(check_card(page, "other-reboot")).to_be_visible()
    await expect(check_card(page, "hc-reboot")).to_have_count(0)
    await expect(page.locator(".health-hint")).to_have_count(0)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_too_many_unhealthy_shows_the_warning_until_enough_come_back(
    console: Console, page: Page
):
    await add_cluster(console, "tm", workers=3)
    await add_check(console, "tm-reboot", "tm", maxUnhealthy=1)
    everyone = {"tm-cp-0": HEALTHY, "tm-w0": HEALTHY, "tm-w1": HEALTHY, "tm-w2": HEALTHY}
    await play_check(console, "tm-reboot", everyone, limit=1)
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/tm")
    card = check_card(page, "tm-reboot")
    await expect(card.locator(".max-unhealthy")).to_have_text("1")
    await expect(card.locator(".healthy")).to_have_text("4/4")
    await expect(card.locator(".remediation-held")).to_have_count(0)
    await mark_page(page)

    # A partition: two workers time out at once, more than maxUnhealthy 1 allows.
    await play_check(console, "tm-reboot", {**everyone, "tm-w1": DOWN, "tm-w2": DOWN}, limit=1)
    held = card.locator(".remediation-held")
    await expect(held).to_contain_text("TooManyUnhealthy")
    await expect(held).to_contain_text(
        "2 of 4 machines are not healthy (timed out: tm-w1, tm-w2), more than maxUnhealthy 1 "
        "allows: none is remediated")
    await expect(held).to_have_attribute("data-reason", "TooManyUnhealthy")
    await expect(held.locator("strong")).to_have_css("color", WARN)
    await expect(card.locator(".healthy")).to_have_text("2/4")
    await expect(card.locator(".remediations-allowed")).to_have_text("0")
    ready = card.locator("[data-ready]")
    await expect(ready).to_have_text("TooManyUnhealthy")
    await expect(ready).to_have_class(re.compile(r"\bwarn\b"))
    await expect(card.locator(".targets")).to_have_text("No machine is being remediated.")
    # Ready says the same as RemediationAllowed: said once.
    await expect(card.locator(".ready-message")).to_have_count(0)
    await screenshot(page, "health-checks-too-many-unhealthy")

    # One comes back: remediation is allowed again, and the warning goes.
    await play_check(console, "tm-reboot", {**everyone, "tm-w2": DOWN}, limit=1)
    await expect(held).to_have_count(0)
    await expect(card.locator(".healthy")).to_have_text("3/4")
    await expect(ready).to_have_text("Healthy")
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_a_target_rebooting_then_rebooted_updates_live(console: Console, page: Page):
    await add_cluster(console, "rb", workers=2)
    await add_check(console, "rb-reboot", "rb")
    everyone = {"rb-cp-0": HEALTHY, "rb-w0": HEALTHY, "rb-w1": HEALTHY}
    await play_check(console, "rb-reboot", everyone, limit=1)
    await sign_in(page, console)
    await page.goto(console.url + "/ui/#/clusters/team-a/rb")
    card = check_card(page, "rb-reboot")
    await expect(card.locator(".healthy")).to_have_text("3/3")
    health = page.locator("[data-machine='rb-w1'] td.health")
    await expect(health).to_have_text("")
    await mark_page(page)

    # LCM records the first reboot, then marks the Machine.
    rebooting = target("rb-w1", "Rebooting", 1)
    mhc = await play_check(console, "rb-reboot", {**everyone, "rb-w1": DOWN}, limit=1,
                           targets=[rebooting])
    await play_machine(console, mhc, rebooting, "rb-w1")
    row = card.locator("[data-target='rb-w1']")
    await expect(row).to_have_attribute("data-state", "Rebooting")
    await expect(row.locator(".state .badge")).to_have_text("Rebooting")
    await expect(row.locator(".attempts")).to_have_text("1 of 2")
    await expect(row.locator(".reason")).to_have_text(UNHEALTHY_CONDITION)
    await expect(row.locator(".message")).to_have_text(HUNG)
    await expect(row.locator(".last time")).to_have_attribute("datetime",
                                                              rebooting.last_attempt_time)
    await expect(row.locator(".last")).to_contain_text("ago")
    await expect(card.locator("[data-ready]")).to_have_text("Remediating")
    await expect(card.locator(".ready-message")).to_have_text("rebooting rb-w1")
    # The machine's row says why, in the warning colour.
    await expect(health.locator(".badge")).to_have_text(UNHEALTHY_CONDITION)
    await expect(health.locator(".badge")).to_have_class(re.compile(r"\bwarn\b"))
    message = health.locator("small")
    await expect(message).to_have_text(
        f"{HUNG}; reboot 1 of 2 requested by MachineHealthCheck rb-reboot")
    await expect(message).to_have_css("color", WARN)
    await expect(page.locator("[data-machine='rb-w0'] td.health")).to_have_text("")
    await screenshot(page, "health-checks-rebooting")

    # The provider answers: Rebooted, waiting for the node to come back.
    rebooted = target("rb-w1", "Rebooted", 1)
    await play_check(console, "rb-reboot", {**everyone, "rb-w1": DOWN}, limit=1,
                     targets=[rebooted])
    await expect(row).to_have_attribute("data-state", "Rebooted")
    await expect(row.locator(".state .badge")).to_have_text("Rebooted")
    await expect(row.locator(".attempts")).to_have_text("1 of 2")
    await expect(card.locator("[data-target]")).to_have_count(1)

    # Healthy again: the target and the Machine's condition go.
    await play_check(console, "rb-reboot", everyone, limit=1)
    await play_machine(console, mhc, None, "rb-w1")
    await expect(card.locator("[data-target]")).to_have_count(0)
    await expect(card.locator(".targets")).to_have_text("No machine is being remediated.")
    await expect(health).to_have_text("")
    await expect(card.locator("[data-ready]")).to_have_text("Healthy")
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_remediation_failed_shows_in_the_machines_table_in_error_colour(
    console: Console, page: Page
):
    # rita only reads team-b: the checks are shown to readers too.
    await add_cluster(console, "rf", workers=2, ns="team-b")
    await add_check(console, "rf-reboot", "rf", "team-b",
                    remediation={"retryLimit": 3, "retryIntervalSeconds": 60})
    everyone = {"rf-cp-0": HEALTHY, "rf-w0": HEALTHY, "rf-w1": HEALTHY}
    rebooted = target("rf-w0", "Rebooted", 2)
    mhc = await play_check(console, "rf-reboot", {**everyone, "rf-w0": DOWN}, limit=1,
                           targets=[rebooted], ns="team-b")
    await play_machine(console, mhc, rebooted, "rf-w0", ns="team-b")
    await sign_in(page, console, "rita")
    await page.goto(console.url + "/ui/#/clusters/team-b/rf")
    card = check_card(page, "rf-reboot")
    await expect(card.locator(".remediation")).to_have_text("Reboot, at most 3 times, 60s apart")
    health = page.locator("[data-machine='rf-w0'] td.health")
    await expect(health.locator(".badge")).to_have_text(UNHEALTHY_CONDITION)
    await expect(health.locator("small")).to_have_css("color", WARN)
    await mark_page(page)

    # Three reboots did not bring it back: the check gives up on the machine.
    failed = target("rf-w0", "Failed", 3)
    mhc = await play_check(console, "rf-reboot", {**everyone, "rf-w0": DOWN}, limit=1,
                           targets=[failed], ns="team-b")
    await play_machine(console, mhc, failed, "rf-w0", ns="team-b")
    badge = health.locator(".badge")
    await expect(badge).to_have_text("RemediationFailed")
    await expect(badge).to_have_class(re.compile(r"\bbad\b"))
    message = health.locator("small")
    await expect(message).to_have_text(
        f"{HUNG}; 3 reboots did not bring it back: MachineHealthCheck rf-reboot gave up")
    await expect(message).to_have_css("color", BAD)
    await expect(page.locator("[data-machine='rf-w1'] td.health")).to_have_text("")
    row = card.locator("[data-target='rf-w0']")
    await expect(row).to_have_attribute("data-state", "Failed")
    await expect(row.locator(".state .badge")).to_have_class(re.compile(r"\bbad\b"))
    await expect(row.locator(".attempts")).to_have_text("3 of 3")
    ready = card.locator("[data-ready]")
    await expect(ready).to_have_text("RemediationFailed")
    await expect(ready).to_have_class(re.compile(r"\bbad\b"))
    why = card.locator(".ready-message")
    await expect(why).to_have_text("rebooting did not bring back rf-w0")
    await expect(why).to_have_css("color", BAD)
    # Its Condition transition is listed among the cluster's events too.
    await expect(page.locator(".events [data-event-object='MachineHealthCheck/rf-reboot']"
                              "[data-event='Ready=False (RemediationFailed)']")).to_have_count(1)
    await screenshot(page, "health-checks-remediation-failed")
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]
