"""A machine's node labels on its cluster's page, in a real headless Chromium against a real
gateway, store and bus.

The machines table shows each machine's ``spec.nodeLabels`` live; *Edit labels* writes them
as a JSON merge patch of ``spec.nodeLabels`` against the labels it opened with (a removed
line is a null, so the label goes; labels it did not touch are left out, so one set
meanwhile stays). The gateway's 422 (a reserved prefix, bad syntax) is shown in the editor
and changes nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from shared.models import Machine
from tests.ui.conftest import Console, cluster_obj, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page
from tests.ui.test_maintenance import add_machine

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

PATCH_TYPE = "application/merge-patch+json"


async def stored_labels(console: Console, name: str, ns: str = "team-a") -> dict[str, str]:
    return (await console.store.get(Machine, name, ns)).spec.node_labels


async def open_editor(page: Page, machine: str) -> Locator:
    await page.locator(f"[data-machine='{machine}'] button[name=edit-labels]").click()
    dialog = page.locator(f"dialog.labels-editor[data-labels-for='{machine}']")
    await expect(dialog).to_be_visible()
    return dialog


async def save(page: Page, dialog: Locator, text: str) -> dict:
    """Type ``text`` and save; the merge patch sent (after checking how it is sent)."""
    await dialog.locator("textarea[name=nodeLabels]").fill(text)
    async with page.expect_request(lambda r: r.method == "PATCH") as sent:
        await dialog.locator("button[name=save-labels]").click()
    request = await sent.value
    assert request.url.endswith("/namespaces/team-a/machines/nl-worker-0")
    assert request.headers["content-type"] == PATCH_TYPE
    return request.post_data_json


async def test_set_change_remove_a_node_label_and_a_refusal_changes_nothing(
    console: Console, page: Page
):
    await console.store.create(cluster_obj("nl"))
    await add_machine(console, "nl", "nl-cp-0", role="control-plane")
    await add_machine(console, "nl", "nl-worker-0")
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-a/nl")
    row = page.locator("[data-machine='nl-worker-0']")
    tags = row.locator(".node-labels .tag")
    notice = page.locator(".notice")
    await expect(row.locator("td.node-labels-cell")).to_contain_text("none")
    await mark_page(page)

    # Set.
    dialog = await open_editor(page, "nl-worker-0")
    await expect(dialog.locator("textarea")).to_have_value("")
    assert await save(page, dialog, "tier=db") == {"spec": {"nodeLabels": {"tier": "db"}}}
    await expect(dialog).to_have_count(0)
    await expect(notice).to_have_text("Node labels of machine nl-worker-0 saved: LCM relabels "
                                      "its node.")
    await expect(tags).to_have_text(["tier=db"])
    assert await stored_labels(console, "nl-worker-0") == {"tier": "db"}

    # Change one, add one.
    dialog = await open_editor(page, "nl-worker-0")
    await expect(dialog.locator("textarea")).to_have_value("tier=db")
    assert await save(page, dialog, "tier=web\nzone=a") == {
        "spec": {"nodeLabels": {"tier": "web", "zone": "a"}}}
    await expect(tags).to_have_text(["tier=web", "zone=a"])
    assert await stored_labels(console, "nl-worker-0") == {"tier": "web", "zone": "a"}

    # Remove one: its key goes as null, and the label is gone from the Machine.
    dialog = await open_editor(page, "nl-worker-0")
    assert await save(page, dialog, "zone=a") == {"spec": {"nodeLabels": {"tier": None}}}
    await expect(tags).to_have_text(["zone=a"])
    assert await stored_labels(console, "nl-worker-0") == {"zone": "a"}

    # Refused: a reserved prefix. The editor stays open with the gateway's reason.
    before = (await console.store.get(Machine, "nl-worker-0", "team-a")).metadata \
        .resource_version
    dialog = await open_editor(page, "nl-worker-0")
    text = dialog.locator("textarea")
    error = dialog.locator(".field-error[data-error-for='spec.nodeLabels']")
    await text.fill("zone=a\nkubernetes.io/os=linux")
    async with page.expect_response(lambda r: r.request.method == "PATCH") as answered:
        await dialog.locator("button[name=save-labels]").click()
    response = await answered.value
    assert response.status == 422
    await expect(error).to_have_text(
        "nodeLabels: key 'kubernetes.io/os': the prefix kubernetes.io is reserved (only "
        "node-role.kubernetes.io of it may be set)")
    await expect(text).to_have_attribute("aria-invalid", "true")
    await expect(notice).to_have_class(re.compile(r"\bfailed\b"))
    await expect(dialog).to_be_visible()
    await screenshot(page, "node-labels-refused")
    # Bad syntax (a space in a value), the gateway's to judge too.
    await text.fill("zone=a b")
    await expect(error).to_have_text("")
    async with page.expect_response(lambda r: r.request.method == "PATCH") as answered:
        await dialog.locator("button[name=save-labels]").click()
    assert (await answered.value).status == 422
    await expect(error).to_contain_text("value 'a b' of 'zone'")
    # A line that is no key=value is the editor's to say: nothing is sent.
    await text.fill("zone")
    await dialog.locator("button[name=save-labels]").click()
    await expect(error).to_have_text("Line 1 (zone) is not key=value.")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    stored = await console.store.get(Machine, "nl-worker-0", "team-a")
    assert stored.metadata.resource_version == before
    assert stored.spec.node_labels == {"zone": "a"}
    await expect(tags).to_have_text(["zone=a"])

    # Labels set elsewhere show live; while the editor is open, one set meanwhile stays:
    # the patch names only what the operator changed.
    dialog = await open_editor(page, "nl-worker-0")
    machine = await console.store.get(Machine, "nl-worker-0", "team-a")
    machine.spec.node_labels = {"zone": "a", "rack": "r1"}
    await console.store.update(machine)
    await expect(tags).to_have_text(["rack=r1", "zone=a"])
    assert await save(page, dialog, "zone=a\ntier=db") == {
        "spec": {"nodeLabels": {"tier": "db"}}}
    await expect(tags).to_have_text(["rack=r1", "tier=db", "zone=a"])
    assert await stored_labels(console, "nl-worker-0") == {
        "zone": "a", "rack": "r1", "tier": "db"}
    await assert_not_reloaded(page)
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_a_reader_sees_node_labels_but_cannot_edit_them(console: Console, page: Page):
    await console.store.create(cluster_obj("rl", "team-b"))
    await add_machine(console, "rl", "rl-worker-0", ns="team-b")
    machine = await console.store.get(Machine, "rl-worker-0", "team-b")
    machine.spec.node_labels = {"tier": "db"}
    await console.store.update(machine)
    await sign_in(page, console, "wally")
    await page.goto(console.url + "/ui/#/clusters/team-b/rl")
    row = page.locator("[data-machine='rl-worker-0']")
    await expect(row.locator(".node-labels .tag")).to_have_text(["tier=db"])
    edit = row.locator("button[name=edit-labels]")
    await expect(edit).to_be_disabled()
    await expect(edit).to_have_attribute("title", re.compile(r"^Read-only: your role in "
                                                             "project team-b"))
    assert page.js_errors == []  # type: ignore[attr-defined]
