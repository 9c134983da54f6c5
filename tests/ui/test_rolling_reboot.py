"""A cluster's rolling reboot on its page, in a real headless Chromium against a real gateway,
store and bus.

The button creates the GracefulRebootRequest named after the cluster through the gateway
(after a confirmation); the test then plays the region's LCM (services/lcm/gracefulreboot.py)
by writing the request's status through the store, and checks that the open page follows
without a reload: phase, count, each machine's step and message, a failure's reason. Cancel
deletes the request after its own confirmation; a finished one is cleared at once; with no
request, the last one's outcome is read from the cluster's GracefulReboot condition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared.models import Cluster, GracefulRebootRequest, ObjectMeta, RebootTarget
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page
from tests.ui.test_maintenance import add_machine, confirm
from tests.waiting import eventually

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

NS = "team-a"


async def play(console: Console, phase: str, targets: list[tuple[str, str, str]], *,
               ready: tuple[str, str, str] | None = None) -> None:
    """The request's status as LCM writes it: targets (machine, state, message), counts, phase
    and Ready (False with ``ready`` = (reason, message, severity), else True)."""
    r = await console.store.get(GracefulRebootRequest, "rb", NS)
    st = r.status
    st.targets = [RebootTarget(machine=m, state=s, message=msg)  # type: ignore[arg-type]
                  for m, s, msg in targets]
    st.total, st.rebooted = len(targets), sum(1 for _, s, _ in targets if s == "Done")
    st.phase = phase
    if ready is None:
        cond.mark_true(st, cond.READY, "Completed", f"{st.rebooted} of {st.total} rebooted")
    else:
        cond.mark_false(st, cond.READY, *ready)  # type: ignore[arg-type]
    await console.store.update_status(r)


async def gone(console: Console) -> bool:
    try:
        await console.store.get(GracefulRebootRequest, "rb", NS)
    except NotFound:
        return True
    return False


async def test_a_rolling_reboot_is_started_followed_cancelled_and_cleared(
    console: Console, page: Page,
) -> None:
    await console.store.create(cluster_obj("rb"))
    for name, role in (("rb-cp-0", "control-plane"), ("rb-worker-0", "worker")):
        await add_machine(console, "rb", name, role=role)
    await sign_in(page, console)
    await page.goto(console.url + "/ui/#/clusters/team-a/rb")

    section = page.locator(".reboot")
    await expect(section).to_have_attribute("data-reboot", "none")
    await expect(section).to_contain_text("No rolling reboot")
    await mark_page(page)

    await section.locator("button[name=reboot-button]").click()
    await confirm(page, "Reboot nodes", says=("control plane first", "drained"))
    await expect(page.locator(".notice")).to_have_text("Rolling reboot of cluster rb requested.")
    made = await console.store.get(GracefulRebootRequest, "rb", NS)
    assert (made.spec.region, made.spec.machines) == ("local", [])
    await expect(section).to_have_attribute("data-reboot", "Pending")
    await expect(section).to_contain_text("Not taken up yet")

    waiting = "rb-cp-0 draining (drain: error: cannot evict pod default/web-1); 0 of 2 rebooted"
    await play(console, "InProgress", [("rb-cp-0", "Draining", "drain: error: cannot evict pod"),
                                       ("rb-worker-0", "Waiting", "")],
               ready=("InProgress", waiting, "Info"))
    await expect(section).to_have_attribute("data-reboot", "InProgress")
    row = section.locator("[data-reboot-machine='rb-cp-0']")
    await expect(row.locator("[data-step]")).to_have_text("Draining")
    await expect(row).to_contain_text("drain: error: cannot evict pod")
    await expect(section.locator("[data-reboot-machine='rb-worker-0'] [data-step]")).to_have_text(
        "Waiting")
    await expect(section.locator(".reboot-message")).to_have_text(waiting)
    await expect(section.locator(".progress")).to_have_attribute("title", "0 of 2 rebooted")
    await screenshot(page, "rolling-reboot-draining")

    failed = "rb-cp-0: its provider did not answer reboot request 5f0c in 600s; 0 of 2 rebooted"
    await play(console, "Failed", [("rb-cp-0", "Failed", "its provider did not answer"),
                                   ("rb-worker-0", "Waiting", "")],
               ready=("RebootFailed", failed, "Error"))
    await expect(section).to_have_attribute("data-reboot", "Failed")
    await expect(section.locator(".reboot-message")).to_have_class("reboot-message error")
    await expect(section.locator(".reboot-message")).to_have_text(failed)

    # A failed request still holds a node: cancelling it asks first.
    await play(console, "Failed", [("rb-cp-0", "Rebooting", ""), ("rb-worker-0", "Waiting", "")],
               ready=("RebootFailed", failed, "Error"))
    remove = section.locator("button[name=reboot-remove]")
    await expect(remove).to_have_text("Cancel reboot")
    await remove.click()
    await page.locator("dialog.confirm").get_by_role("button", name="Cancel", exact=True).click()
    assert not await gone(console), "dismissed: nothing deleted"
    await remove.click()
    await confirm(page, "Cancel reboot", says=("let go",))
    await eventually(lambda: gone(console), what="the request deleted")
    await expect(section).to_have_attribute("data-reboot", "none")

    # A completed one is a record: cleared at once, no question.
    await console.store.create(GracefulRebootRequest(
        metadata=ObjectMeta(name="rb", namespace=NS), spec=made.spec))
    await play(console, "Completed", [("rb-cp-0", "Done", ""), ("rb-worker-0", "Done", "")])
    await expect(section).to_have_attribute("data-reboot", "Completed")
    await expect(section.locator(".reboot-message")).to_have_count(0)
    await expect(remove).to_have_text("Clear")
    await remove.click()
    await eventually(lambda: gone(console), what="the record cleared")
    await expect(page.locator(".notice")).to_have_text("Rolling reboot record of rb cleared.")
    await expect(section.locator(".reboot-last")).to_have_count(0)

    # LCM deletes a request once done; the cluster's condition tells how the last one ended.
    c = await console.store.get(Cluster, "rb", NS)
    cond.mark_true(c.status, "GracefulReboot", "Completed", "2 of 2 machines rebooted")
    await console.store.update_status(c)
    last = section.locator(".reboot-last")
    await expect(last).to_have_attribute("data-reason", "Completed")
    await expect(last).to_contain_text("Last rolling reboot: Completed — 2 of 2 machines rebooted")
    await expect(section).to_contain_text("No rolling reboot under way")
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]
