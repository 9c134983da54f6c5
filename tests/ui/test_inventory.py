"""BareMetalHosts and AttachedClusters pages with data, in a real headless Chromium.

The test plays the bare-metal provider and the attach service by writing status through
the store; the open pages follow without a reload and never show a secret (BMC password,
kubeconfig), neither from the first list nor from the watch stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from services.attach import conditions as attach_conditions
from services.attach.probe import Observation
from shared.models import (
    AttachedCluster,
    AttachedNode,
    BareMetalHost,
    Condition,
    HardwareInfo,
    Machine,
    convert,
)
from tests.inventory import rack_with_hosts
from tests.ui.conftest import Console, needs_chromium, screenshot, sign_in
from tests.ui.test_console import assert_not_reloaded, mark_page, set_status

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

BMC_PASSWORD = "bmc-s3cret-pw"
KUBECONFIG_SECRET = "kubeconfig-t0ken-s3cret"


async def test_bare_metal_hosts_show_state_power_and_consumer(console: Console, page: Page):
    for i in range(2):
        await console.store.create(convert(BareMetalHost, {
            "metadata": {"name": f"bm-{i}", "namespace": "team-a"},
            "spec": {"region": "local", "bootMacAddress": f"52:54:00:00:00:0{i}",
                     "bmc": {"address": f"redfish+http://admin:{BMC_PASSWORD}@10.0.0.{i}/1",
                             "username": "admin", "password": BMC_PASSWORD}},
        }))
    machine = await console.store.create(convert(Machine, {
        "metadata": {"name": "c1-worker-0", "namespace": "team-a"},
        "spec": {"cluster": "c1", "region": "local", "baremetal": {}},
    }))
    await set_status(console, BareMetalHost, "bm-0", provisioning_state="available",
                     power_state="off", hardware=HardwareInfo(cpus=8, memory_mib=16384))
    await sign_in(page, console)
    await page.click("a[data-nav=hosts]")
    bm0, bm1 = page.locator("[data-name=bm-0]"), page.locator("[data-name=bm-1]")
    await expect(bm0.locator(".state")).to_have_text("available")
    await expect(bm0.locator(".power")).to_have_text("off")
    await expect(bm0).to_contain_text("8 CPU, 16384 MiB")
    await expect(bm0.locator(".bmc")).to_have_text("redfish+http://10.0.0.0/1")
    await expect(bm1.locator(".state")).to_have_text("—")
    await expect(bm0.locator(".consumer")).to_have_text("")
    # The inventory's summary: why a host cannot take a machine, the message on hover.
    await set_status(console, BareMetalHost, "bm-1", provisioning_state="registration error",
                     conditions=[Condition(type="Ready", status="False",
                                           reason="InvalidCredentials",
                                           message="baremetal: the BMC refused the login")])
    await expect(bm1.locator(".phase")).to_have_text("InvalidCredentials")
    await expect(bm1.locator(".phase span[title]")).to_have_attribute(
        "title", "baremetal: the BMC refused the login")
    await mark_page(page)

    # The provider claims bm-0 for the machine (spec.consumer = its uid) and powers it on.
    host = await console.store.get(BareMetalHost, "bm-0", "team-a")
    host.spec.consumer = machine.metadata.uid or ""
    host.spec.online = True
    await console.store.update(host)
    await set_status(console, BareMetalHost, "bm-0", provisioning_state="provisioned",
                     power_state="on", consumer=machine.metadata.uid)
    await expect(bm0.locator(".state")).to_have_text("provisioned")
    await expect(bm0.locator(".power")).to_have_text("on")
    await expect(bm0.locator(".consumer")).to_have_text("c1-worker-0 (cluster c1)")
    await expect(bm0.locator(".consumer a")).to_have_attribute("href", "#/clusters/team-a/c1")
    await assert_not_reloaded(page)
    await screenshot(page, "bare-metal-hosts")
    assert BMC_PASSWORD not in await page.content()
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_attached_clusters_show_version_nodes_and_health(console: Console, page: Page):
    await console.store.create(convert(AttachedCluster, {
        "metadata": {"name": "mke1", "namespace": "team-a"},
        "spec": {"region": "local", "endpoint": "https://mke.test:6443",
                 "kubeconfig": f"apiVersion: v1\nusers: [{{token: {KUBECONFIG_SECRET}}}]"},
    }))
    await sign_in(page, console)
    await page.click("a[data-nav=attached]")
    row = page.locator("[data-name=mke1]")
    await expect(row.locator(".health")).to_have_text("Pending")
    await expect(row).to_contain_text("https://mke.test:6443")
    await mark_page(page)

    # Play the attach service: a probe saw 3 nodes, one not ready, then all ready.
    nodes = [AttachedNode(name=f"n{i}", ready=i != 2, kubelet_version="v1.27.4") for i in range(3)]
    for seen in (nodes, [AttachedNode(name=n.name, ready=True) for n in nodes]):
        obj = await console.store.get(AttachedCluster, "mke1", "team-a")
        attach_conditions.observed(obj.status, Observation(kubernetes_version="v1.27.4",
                                                           nodes=seen))
        obj.status.kubernetes_version = "v1.27.4"
        obj.status.nodes = [n.name for n in seen]
        obj.status.ready_nodes = sum(n.ready for n in seen)
        obj.status.last_probe = "2024-01-01T00:00:00Z"
        await console.store.update_status(obj)
        if seen is nodes:
            await expect(row.locator(".nodes")).to_have_text("2/3 ready")
            await expect(row.locator(".health")).to_have_text("Unhealthy")
            await expect(row.locator(".health span[title]")).to_have_attribute(
                "title", "1 of 3 nodes not ready: n2")
    await expect(row.locator(".nodes")).to_have_text("3/3 ready")
    await expect(row.locator(".health")).to_have_text("Healthy")
    await expect(row.locator(".version")).to_have_text("v1.27.4")
    await assert_not_reloaded(page)
    await screenshot(page, "attached-clusters")
    assert KUBECONFIG_SECRET not in await page.content()
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_bmc_credentials_show_the_hosts_that_use_them(console: Console, page: Page):
    await rack_with_hosts(console.store, "team-a", password=BMC_PASSWORD)
    await set_status(console, BareMetalHost, "bm-1", conditions=[
        Condition(type="BMCReachable", status="False", reason="InvalidCredentials",
                  message="baremetal: the BMC refused the login")])
    await sign_in(page, console)
    await page.click("a[data-nav=credentials]")
    row = page.locator("[data-plural=baremetalhostcredentials] [data-name=rack-a]")
    await expect(row.locator(".hosts")).to_have_text("2 host(s), 1 unreachable: bm-1")
    await expect(row.locator(".hosts span")).to_have_attribute(
        "title", "baremetal: the BMC refused the login")
    assert BMC_PASSWORD not in await page.content()
    assert page.js_errors == []  # type: ignore[attr-defined]
