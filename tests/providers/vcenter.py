"""Helpers for tests against the govmomi vCenter simulator: the credential, a request,
and what the vSphere admin or the guest's VMware tools would do."""

from __future__ import annotations

from typing import Any

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from services.providers.contract import NodeRequest
from shared.models import VsphereCredential, VsphereMachineSpec, convert
from tests.providers.peers import Vcsim

TEMPLATE = "DC0_C0_RP0_VM0"
REGION = "region-one"


def credential(host: str, port: int, password: str, name: str = "vc") -> VsphereCredential:
    return convert(
        VsphereCredential,
        {"metadata": {"name": name, "namespace": "default"},
         "spec": {"region": REGION, "server": host, "port": port, "protocol": "http",
                  "username": "admin", "password": password}},
    )


def spec_fields(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"template": TEMPLATE, "datacenter": "DC0", "cluster": "DC0_C0",
                              "datastore": "LocalDS_1", "num_cpus": 4, "memory_mib": 8192}
    fields.update(over)
    return fields


def request(uid: str = "5e1f0000-aaaa-4000-8000-000000000001", **over: Any) -> NodeRequest:
    return NodeRequest(machine_uid=uid, machine_name="cp-0", namespace="default", cluster="demo",
                       region=REGION, spec=VsphereMachineSpec(**spec_fields(**over)),
                       user_data="#cloud-config\n")


def admin_login(vcsim: Vcsim) -> Any:
    """A direct pyVmomi session playing the vSphere admin; the template is made a template."""
    si = SmartConnect(host=vcsim.host, port=vcsim.port, user="admin", pwd=vcsim.password,
                      protocol="http")
    content = si.RetrieveContent()
    [vm] = vms_named(content, TEMPLATE)
    if not vm.config.template:
        if vm.runtime.powerState == "poweredOn":
            WaitForTask(vm.PowerOffVM_Task())
        vm.MarkAsTemplate()
    return si


def admin_logout(si: Any) -> None:
    Disconnect(si)


def vms_named(content: Any, name: str) -> list[Any]:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    return [v for v in view.view if v.name == name]


def report_guest(vm: Any, field: str, value: str) -> None:
    """What VMware tools in the guest do; vcsim takes it as a SET.guest.* extraConfig."""
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=f"SET.guest.{field}",
                                                                 value=value)])
    WaitForTask(vm.ReconfigVM_Task(spec))


def report_guest_ip(vm: Any, ip: str) -> None:
    report_guest(vm, "ipAddress", ip)
