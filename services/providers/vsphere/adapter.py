"""vSphere provider: clone a VM from a template, power it on, read its IP from guest info.

Bound to one VsphereCredential. The clone lands in the Machine's datacenter, cluster (its
root resource pool, or a named pool), datastore and folder. The VM carries the Machine uid
in ``extraConfig`` (``guestinfo.ccloud-machine-uid``) and its name includes the uid prefix,
so a re-run finds it instead of cloning twice; a concurrent clone that lost the race
(``DuplicateName``) also resolves to the existing VM. The node id is the VM's instance
uuid; the providerID is ``vsphere://<BIOS uuid>``, as the vSphere cloud provider writes it.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, ClassVar

from pyVmomi import vim

from services.providers.contract import (
    MACHINE_UID_TAG,
    BlockingProvider,
    Inspection,
    NodeRef,
    NodeRequest,
    NodeStatus,
)
from services.providers.errors import InvalidSpecError, NotFoundError
from services.providers.vsphere.session import PROVIDER, Session
from shared.models import VsphereCredential, VsphereMachineSpec
from shared.models.kinds import ProviderName

UID_KEY = f"guestinfo.{MACHINE_UID_TAG}"


def _child(parent: Any, name: str, kind: type) -> Any | None:
    for entity in getattr(parent, "childEntity", None) or []:
        if isinstance(entity, kind) and entity.name == name:
            return entity
    return None


def _walk_vms(folder: Any) -> list[Any]:
    out: list[Any] = []
    for entity in folder.childEntity or []:
        if isinstance(entity, vim.VirtualMachine):
            out.append(entity)
        elif isinstance(entity, vim.Folder):
            out.extend(_walk_vms(entity))
    return out


class VsphereProvider(BlockingProvider):
    name: ClassVar[ProviderName] = "vsphere"

    def __init__(
        self, credential: VsphereCredential, *, timeout: float = 60.0, clone_timeout: float = 600.0
    ) -> None:
        self.session = Session(credential, timeout=timeout)
        self.clone_timeout = clone_timeout

    # --- placement (blocking) ---------------------------------------------------------------

    def _datacenter(self, name: str) -> Any:
        dc = self.session.call(
            "find datacenter", lambda: _child(self.session.content.rootFolder, name, vim.Datacenter)
        )
        if dc is None:
            raise InvalidSpecError(f"datacenter {name!r} not found", provider=PROVIDER)
        return dc

    def _folder(self, dc: Any, path: str) -> Any:
        folder = dc.vmFolder
        for part in [p for p in path.strip("/").split("/") if p]:
            nxt = self.session.call(
                "find folder", lambda f=folder, p=part: _child(f, p, vim.Folder)
            )
            if nxt is None:
                raise InvalidSpecError(f"folder {path!r} not found", provider=PROVIDER)
            folder = nxt
        return folder

    def _pool(self, dc: Any, spec: VsphereMachineSpec) -> Any:
        def find() -> Any:
            clusters = [
                c for c in dc.hostFolder.childEntity or [] if isinstance(c, vim.ComputeResource)
            ]
            if spec.cluster:
                clusters = [c for c in clusters if c.name == spec.cluster]
                if not clusters:
                    raise InvalidSpecError(f"cluster {spec.cluster!r} not found", provider=PROVIDER)
            if not clusters:
                raise InvalidSpecError("datacenter has no compute resource", provider=PROVIDER)
            pool = clusters[0].resourcePool
            if spec.resource_pool:
                pool = next(
                    (p for p in pool.resourcePool or [] if p.name == spec.resource_pool), None
                )
                if pool is None:
                    raise InvalidSpecError(
                        f"resource pool {spec.resource_pool!r} not found", provider=PROVIDER
                    )
            return pool

        return self.session.call("find resource pool", find)

    def _datastore(self, dc: Any, name: str) -> Any | None:
        if not name:
            return None
        ds = self.session.call(
            "find datastore", lambda: next((d for d in dc.datastore if d.name == name), None)
        )
        if ds is None:
            raise InvalidSpecError(f"datastore {name!r} not found", provider=PROVIDER)
        return ds

    def _template(self, dc: Any, name: str) -> Any:
        vm = self.session.call(
            "find template",
            lambda: next((v for v in _walk_vms(dc.vmFolder) if v.name == name), None),
        )
        if vm is None:
            raise InvalidSpecError(f"template {name!r} not found", provider=PROVIDER)
        return vm

    # --- nodes (blocking) -------------------------------------------------------------------

    @staticmethod
    def _uid_of(vm: Any) -> str:
        for opt in vm.config.extraConfig or []:
            if opt.key == UID_KEY:
                return str(opt.value)
        return ""

    def _ref(self, vm: Any) -> NodeRef:
        def build() -> NodeRef:
            cfg = vm.config
            return NodeRef(
                provider=self.name,
                id=cfg.instanceUuid,
                name=vm.name,
                machine_uid=self._uid_of(vm),
                provider_id=f"vsphere://{cfg.uuid}",
            )

        return self.session.call("read vm", build)

    def _vm(self, ref: NodeRef) -> Any:
        vm = self.session.call(
            "find vm",
            lambda: self.session.content.searchIndex.FindByUuid(
                None, ref.id, True, True
            ),
        )
        if vm is None:
            raise NotFoundError(f"vm {ref.name} not found", provider=PROVIDER)
        return vm

    def _find(self, req: NodeRequest) -> NodeRef | None:
        if not isinstance(req.spec, VsphereMachineSpec):
            raise InvalidSpecError("machine has no spec.vsphere", provider=PROVIDER)
        dc = self._datacenter(req.spec.datacenter)
        folder = self._folder(dc, req.spec.folder)
        vm = self.session.call("find vm", lambda: _child(folder, req.node_name, vim.VirtualMachine))
        if vm is None or self._uid_of(vm) != req.machine_uid:
            return None
        return self._ref(vm)

    def _create(self, req: NodeRequest) -> NodeRef:
        found = self._find(req)
        if found:
            return found
        spec = req.spec
        assert isinstance(spec, VsphereMachineSpec)
        dc = self._datacenter(spec.datacenter)
        folder = self._folder(dc, spec.folder)
        template = self._template(dc, spec.template)
        relocate = vim.vm.RelocateSpec(pool=self._pool(dc, spec))
        ds = self._datastore(dc, spec.datastore)
        if ds is not None:
            relocate.datastore = ds
        extra = [vim.option.OptionValue(key=UID_KEY, value=req.machine_uid)]
        if req.user_data:
            extra += [
                vim.option.OptionValue(
                    key="guestinfo.userdata",
                    value=base64.b64encode(req.user_data.encode()).decode(),
                ),
                vim.option.OptionValue(key="guestinfo.userdata.encoding", value="base64"),
            ]
        config = vim.vm.ConfigSpec(
            numCPUs=spec.num_cpus, memoryMB=spec.memory_mib, extraConfig=extra
        )
        clone = vim.vm.CloneSpec(location=relocate, powerOn=False, template=False, config=config)
        task = self.session.call(
            "clone", lambda: template.CloneVM_Task(folder=folder, name=req.node_name, spec=clone)
        )
        try:
            vm = self.session.wait(task, "clone", timeout=self.clone_timeout)
        except InvalidSpecError as e:
            if e.code == "DuplicateName":  # another run cloned it first
                again = self._find(req)
                if again:
                    return again
            raise
        # Some vCenters (and the simulator) keep the template's size on clone: resize.
        hw = self.session.call("read vm", lambda: vm.config.hardware)
        if hw.numCPU != spec.num_cpus or hw.memoryMB != spec.memory_mib:
            resize = vim.vm.ConfigSpec(numCPUs=spec.num_cpus, memoryMB=spec.memory_mib)
            task = self.session.call("resize", lambda: vm.ReconfigVM_Task(resize))
            self.session.wait(task, "resize")
        return self._ref(vm)

    def _inspect(self, ref: NodeRef) -> Inspection:
        vm = self._vm(ref)

        def facts() -> Inspection:
            hw = vm.config.hardware
            macs = [
                d.macAddress.lower()
                for d in hw.device
                if isinstance(d, vim.vm.device.VirtualEthernetCard) and d.macAddress
            ]
            return Inspection(
                cpus=hw.numCPU,
                memory_mib=hw.memoryMB,
                nics=macs,
                system_uuid=vm.config.uuid,
                details={"guestId": vm.config.guestId or ""},
            )

        return self.session.call("inspect", facts)

    def _power(self, ref: NodeRef, on: bool, graceful: bool = False) -> None:
        """A graceful off asks the guest to shut down through VMware Tools (no task: the
        caller polls the power state); without running Tools the VM is powered off."""
        vm = self._vm(ref)
        state = self.session.call("read power", lambda: vm.runtime.powerState)
        if on and state != vim.VirtualMachinePowerState.poweredOn:
            self.session.wait(self.session.call("power on", vm.PowerOnVM_Task), "power on")
        elif not on and state == vim.VirtualMachinePowerState.poweredOn:
            tools = self.session.call("read tools", lambda: vm.guest.toolsRunningStatus)
            if graceful and tools == "guestToolsRunning":
                self.session.call("shut down guest", vm.ShutdownGuest)
                return
            self.session.wait(self.session.call("power off", vm.PowerOffVM_Task), "power off")

    @staticmethod
    def _guest_ips(vm: Any) -> list[str]:
        ips: list[str] = []
        for nic in vm.guest.net or []:
            for ip in nic.ipAddress or []:
                if ":" not in ip and ip not in ips:
                    ips.append(ip)
        if vm.guest.ipAddress and ":" not in vm.guest.ipAddress and vm.guest.ipAddress not in ips:
            ips.insert(0, vm.guest.ipAddress)
        return ips

    def _status(self, ref: NodeRef) -> NodeStatus:
        vm = self._vm(ref)

        def read() -> NodeStatus:
            on = vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn
            return NodeStatus(
                ref=ref,
                phase="Running" if on else "Stopped",
                power_state="On" if on else "Off",
                addresses=self._guest_ips(vm) if on else [],
            )

        return self.session.call("read status", read)

    def _delete(self, ref: NodeRef) -> bool:
        try:
            vm = self._vm(ref)
        except NotFoundError:
            return True
        self._power(ref, False)
        self.session.wait(self.session.call("destroy", vm.Destroy_Task), "destroy")
        try:
            self._vm(ref)
        except NotFoundError:
            return True
        return False

    # --- contract (the rest comes from BlockingProvider) ------------------------------------

    async def close(self) -> None:
        await asyncio.to_thread(self.session.close)

    async def check_credentials(self) -> None:
        """Log in (and read the service content); raises CredentialsError when refused."""
        await asyncio.to_thread(lambda: self.session.content)
