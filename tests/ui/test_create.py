"""The create-cluster flow per provider, in a real headless Chromium against a real gateway.

Credential providers (OpenStack, vSphere) offer only the credentials of the chosen project
and region, each with what its provider found logging in with it; bare metal takes a host
profile (a label selector) and says how many free hosts it matches; a gateway error about
one machine's field lands beside that field.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from shared.models import (
    BareMetalHost,
    Cluster,
    Condition,
    Machine,
    OpenStackCredential,
    Region,
    RegionSpec,
    VsphereCredential,
    convert,
)
from shared.models.meta import ObjectMeta
from tests.ui.conftest import Console, needs_chromium, screenshot, sign_in
from tests.ui.test_console import set_status, wizard_next

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium


async def add_region(console: Console, name: str, providers: list[str]) -> None:
    await console.store.create(Region(metadata=ObjectMeta(name=name),
                                      spec=RegionSpec(providers=providers)))  # type: ignore[arg-type]


async def openstack_credential(console: Console, name: str, ns: str, region: str) -> None:
    await console.store.create(convert(OpenStackCredential, {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"region": region, "auth": {"authUrl": "http://keystone.test:5000/v3",
                                            "username": "u", "password": "pw"}},
    }))


async def vsphere_credential(console: Console, name: str, ns: str, region: str) -> None:
    await console.store.create(convert(VsphereCredential, {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"region": region, "server": "vcenter.test", "username": "u", "password": "pw"},
    }))


async def host(console: Console, name: str, ns: str, labels: dict[str, str], **spec: Any) -> None:
    await console.store.create(convert(BareMetalHost, {
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"region": "dc2", "bmc": {"address": f"redfish://bmc.test/{name}"},
                 "bootMacAddress": "52:54:00:00:00:01", **spec},
    }))


async def options(page: Page, name: str) -> list[str]:
    return await page.locator(f"select[name='{name}'] option").all_inner_texts()


async def start(page: Page, console: Console, name: str, region: str, provider: str) -> None:
    """Sign in as a team-a writer (team-b reader) and walk to the provider's credential."""
    await sign_in(page, console, "wally")
    await page.click("text=Create cluster")
    await page.fill("input[name='metadata.name']", name)
    await page.select_option("select[name='spec.region']", region)
    await wizard_next(page)
    await page.select_option("select[name='spec.provider']", provider)


async def machines_of(console: Console, cluster: str) -> dict[str, Machine]:
    items = (await console.store.list(Machine, "team-a")).items
    return {m.name: m for m in items if m.spec.cluster == cluster}


async def test_openstack_offers_only_the_projects_credentials_in_the_region(
    console: Console, page: Page
):
    await add_region(console, "dc2", ["openstack", "vsphere", "baremetal"])
    await openstack_credential(console, "os-a", "team-a", "local")
    await openstack_credential(console, "os-b", "team-b", "local")  # readable, other project
    await openstack_credential(console, "os-dc2", "team-a", "dc2")  # other region
    await openstack_credential(console, "os-old", "team-a", "local")
    # What the provider found logging in with each (os-dc2 is not checked yet).
    await set_status(console, OpenStackCredential, "os-a", conditions=[
        Condition(type="Valid", status="True", reason="Authenticated")])
    await set_status(console, OpenStackCredential, "os-old", conditions=[
        Condition(type="Valid", status="False", reason="InvalidCredentials",
                  message="openstack: authenticate: Keystone rejected the credentials")])
    await start(page, console, "osc", "local", "openstack")
    assert await options(page, "spec.credential") == [
        "Choose a credential", "os-a",
        "os-old — InvalidCredentials: openstack: authenticate: Keystone rejected the credentials"]
    await wizard_next(page)
    await expect(page.locator("[data-error-for='spec.credential']")).to_have_text("Required.")
    await page.select_option("select[name='spec.credential']", "os-a")

    # Switching region forgets the credential and offers that region's instead.
    await page.get_by_role("button", name="Back").click()
    await page.select_option("select[name='spec.region']", "dc2")
    await wizard_next(page)
    await page.select_option("select[name='spec.provider']", "openstack")
    assert await options(page, "spec.credential") == [
        "Choose a credential", "os-dc2 — not checked yet"]
    await expect(page.locator("select[name='spec.credential']")).to_have_value("")
    await page.get_by_role("button", name="Back").click()
    await page.select_option("select[name='spec.region']", "local")
    await wizard_next(page)
    await page.select_option("select[name='spec.credential']", "os-a")
    await wizard_next(page)
    await wizard_next(page)  # the default release

    # The network has no default: required on every group.
    await wizard_next(page)
    for row in (0, 1):
        await expect(page.locator(f"[data-error-for='machines.{row}.network']")
                     ).to_have_text("Required.")
        await page.fill(f"input[name='machines.{row}.network']", "net-1")
    await page.fill("input[name='machines.0.flavor']", "m1.xlarge")
    await wizard_next(page)
    await expect(page.locator("dl.review")).to_contain_text("os-a")
    await page.get_by_role("button", name="Create cluster").click()
    await expect(page).to_have_url(re.compile(r"#/clusters/team-a/osc$"))

    cluster = await console.store.get(Cluster, "osc", "team-a")
    assert (cluster.spec.provider, cluster.spec.credential, cluster.spec.region) == (
        "openstack", "os-a", "local")
    machines = await machines_of(console, "osc")
    assert sorted(machines) == ["osc-cp-0", "osc-worker-0", "osc-worker-1"]
    cp = machines["osc-cp-0"].spec.openstack
    assert cp is not None and (cp.flavor, cp.image, cp.network) == (
        "m1.xlarge", "ubuntu-22.04", "net-1")
    worker = machines["osc-worker-1"].spec.openstack
    assert worker is not None and (worker.flavor, worker.network) == ("m1.large", "net-1")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_vsphere_credential_and_a_machine_error_beside_its_field(
    console: Console, page: Page
):
    await add_region(console, "dc2", ["vsphere"])
    await vsphere_credential(console, "vs-a", "team-a", "dc2")
    await vsphere_credential(console, "vs-b", "team-b", "dc2")
    await vsphere_credential(console, "vs-local", "team-a", "local")
    await start(page, console, "vs", "dc2", "vsphere")
    assert await options(page, "spec.credential") == [
        "Choose a credential", "vs-a — not checked yet"]
    await page.select_option("select[name='spec.credential']", "vs-a")
    await wizard_next(page)
    await wizard_next(page)
    for row in (0, 1):
        await page.fill(f"input[name='machines.{row}.template']", "ubuntu-tpl")
        await page.fill(f"input[name='machines.{row}.datacenter']", "DC1")
    await page.fill("input[name='machines.1.memoryMib']", "100")  # the gateway wants >= 256
    await wizard_next(page)
    await page.get_by_role("button", name="Create cluster").click()

    # The gateway's 422 names spec.vsphere.memoryMib: shown beside group 2's memory field.
    error = page.locator("[data-error-for='machines.1.memoryMib']")
    await expect(error).to_contain_text("256")
    await expect(page.locator("input[name='machines.1.memoryMib']")).to_have_attribute(
        "aria-invalid", "true")
    await expect(page.locator(".stepper li.current")).to_have_text("Machines")
    await expect(page.locator("[data-error-for='machines.0.memoryMib']")).to_have_text("")
    await screenshot(page, "create-machine-field-error")
    assert sorted(await machines_of(console, "vs")) == ["vs-cp-0"]

    await page.fill("input[name='machines.1.memoryMib']", "8192")
    await wizard_next(page)
    await expect(page.locator(".wizard")).to_contain_text("only the missing machines")
    await page.get_by_role("button", name="Create cluster").click()
    await expect(page).to_have_url(re.compile(r"#/clusters/team-a/vs$"))
    cluster = await console.store.get(Cluster, "vs", "team-a")
    assert (cluster.spec.provider, cluster.spec.credential) == ("vsphere", "vs-a")
    machines = await machines_of(console, "vs")
    assert sorted(machines) == ["vs-cp-0", "vs-worker-0", "vs-worker-1"]
    for m in machines.values():
        vs = m.spec.vsphere
        assert vs is not None and (vs.template, vs.datacenter, vs.num_cpus) == (
            "ubuntu-tpl", "DC1", 4)
    assert machines["vs-worker-0"].spec.vsphere.memory_mib == 8192  # type: ignore[union-attr]
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_bare_metal_host_profile_selects_hosts_by_label(console: Console, page: Page):
    await add_region(console, "dc2", ["baremetal"])
    await host(console, "bm-0", "team-a", {"rack": "r1"})
    await host(console, "bm-1", "team-a", {"rack": "r1"})
    await host(console, "bm-2", "team-a", {"rack": "r2"})
    await host(console, "bm-3", "team-a", {"rack": "r1"}, consumer="someone-else")
    await host(console, "bm-4", "team-b", {"rack": "r1"})  # readable, other project
    await start(page, console, "bm", "dc2", "baremetal")
    await expect(page.locator(".wizard")).to_contain_text("3 free bare metal host(s)")
    await wizard_next(page)
    await wizard_next(page)

    await expect(page.locator("[data-hosts-for='1']")).to_have_text(
        "3 free host(s) match.")  # no selector: any free host
    await page.fill("input[name='machines.0.hostSelector']", "rack=r2")
    await expect(page.locator("[data-hosts-for='0']")).to_have_text("1 free host(s) match.")
    await page.fill("input[name='machines.1.hostSelector']", "rack=r2")
    await expect(page.locator("[data-hosts-for='1']")).to_have_text(
        "1 free host(s) match; 2 wanted.")
    await page.fill("input[name='machines.1.hostSelector']", "rack")
    await wizard_next(page)
    await expect(page.locator("[data-error-for='machines.1.hostSelector']")).to_have_text(
        "Use key=value pairs separated by commas.")
    await page.fill("input[name='machines.1.hostSelector']", "rack=r1")
    await expect(page.locator("[data-hosts-for='1']")).to_have_text("2 free host(s) match.")
    await screenshot(page, "create-bare-metal-hosts")
    await wizard_next(page)
    await page.get_by_role("button", name="Create cluster").click()
    await expect(page).to_have_url(re.compile(r"#/clusters/team-a/bm$"))

    cluster = await console.store.get(Cluster, "bm", "team-a")
    assert (cluster.spec.provider, cluster.spec.credential) == ("baremetal", "")
    machines = await machines_of(console, "bm")
    assert sorted(machines) == ["bm-cp-0", "bm-worker-0", "bm-worker-1"]
    selectors = {n: m.spec.baremetal.host_selector for n, m in machines.items()  # type: ignore[union-attr]
                 if m.spec.baremetal}
    assert selectors == {"bm-cp-0": {"rack": "r2"}, "bm-worker-0": {"rack": "r1"},
                         "bm-worker-1": {"rack": "r1"}}
    assert page.js_errors == []  # type: ignore[attr-defined]
