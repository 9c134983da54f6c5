"""Bare-metal provider: provisions one claimed BareMetalHost through its BMC (Redfish).

The provider is bound to a host the service has already claimed for the Machine (the
host's ``spec.consumer`` is the Machine uid, see ``hosts.py``). Provisioning inserts the
OS image as virtual media (the CD drive), the node's cloud-init user data as a config
drive in the removable one (``configdrive.py``, served by ``media.py``), sets a one-time
boot from the CD and powers on; deprovisioning powers off, ejects both and leaves the host
free for the next claim.

Redfish reports no IP addresses on most BMCs (the emulator neither): addresses come from
the EthernetInterfaces' ``IPv4Addresses`` when present, else from the host's
``baremetal.kaas.containercloud.dev/addresses`` annotation (static IPAM, comma separated).
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import sushy
from sushy.resources.system.system import System

from services.providers.baremetal.bmc import BMC, PROVIDER
from services.providers.baremetal.media import ConfigDrives
from services.providers.contract import Inspection, NodeRef, NodeRequest, NodeStatus
from services.providers.errors import InvalidSpecError, NoCapacityError
from shared.models import BareMetalHost, BareMetalMachineSpec
from shared.models.kinds import ProviderName

ADDRESSES_ANNOTATION = "baremetal.kaas.containercloud.dev/addresses"
# Seconds before a power change still not applied is asked for again.
POWER_RESEND = 30.0
_POWER_REQUESTS: dict[tuple[str, bool], float] = {}  # (host, on) -> when it was asked
DEFAULT_IMAGE_BASE_URL = "http://127.0.0.1:8089/images"


def image_url(image: str, base_url: str) -> str:
    """An image given by name maps to ``<base>/<name>.iso``; a URL is used as is."""
    if "://" in image:
        return image
    if not image or "/" in image:
        raise InvalidSpecError(f"invalid image name {image!r}", provider=PROVIDER)
    if not base_url:  # a deployment that did not say where its images are served
        raise InvalidSpecError(
            f"image {image!r} is a name but no image server is configured: give a URL or set"
            " CCLOUD_BAREMETAL_IMAGE_BASE_URL on the bare-metal provider", provider=PROVIDER)
    return f"{base_url.rstrip('/')}/{image}.iso"


class BareMetalProvider:
    name: ClassVar[ProviderName] = "baremetal"

    def __init__(
        self,
        host: BareMetalHost,
        *,
        image_base_url: str = DEFAULT_IMAGE_BASE_URL,
        drives: ConfigDrives | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.image_base_url = image_base_url
        self.drives = drives
        self.bmc = BMC(host.spec.bmc, timeout=timeout)

    # --- helpers (blocking; run in a thread) ----------------------------------------------

    @property
    def _host_id(self) -> str:
        return f"{self.host.metadata.namespace or 'default'}/{self.host.metadata.name}"

    def _ref(self, machine_uid: str) -> NodeRef:
        return NodeRef(
            provider=self.name,
            id=self._host_id,
            name=self.host.metadata.name,
            machine_uid=machine_uid,
            provider_id=f"baremetal:///{self._host_id}",
        )

    def _media(self, system: System, types: set[str], what: str):  # noqa: ANN202 - sushy
        def pick():  # noqa: ANN202
            for media in system.virtual_media.get_members():
                if {str(t.value) for t in media.media_types or []} & types:
                    return media
            raise InvalidSpecError(f"BMC offers no {what} virtual media", provider=PROVIDER)

        return self.bmc.call("list virtual media", pick)

    def _cd(self, system: System):  # noqa: ANN202 - sushy VirtualMedia
        return self._media(system, {"CD", "DVD"}, "CD/DVD")

    def _removable(self, system: System):  # noqa: ANN202 - sushy VirtualMedia
        """Where the config drive goes: the CD drive holds the OS image."""
        return self._media(system, {"USBStick", "Floppy"}, "removable (USB stick/floppy)")

    def _insert(self, media, url: str) -> None:  # noqa: ANN001 - sushy VirtualMedia
        """``url`` in ``media``, unless it already is; a drive of ours it replaces is
        withdrawn."""
        if media.inserted and media.image == url:
            return
        if media.inserted:
            self.bmc.call("eject media", media.eject_media)
            if self.drives is not None:
                self.drives.withdraw(media.image or "")
        self.bmc.call(
            "insert media", lambda: media.insert_media(url, inserted=True, write_protected=True))

    def _eject_all(self, system: System) -> None:
        """Eject whatever is inserted (OS image, config drive) and withdraw our drives."""
        inserted = self.bmc.call("list virtual media", lambda: [
            m for m in system.virtual_media.get_members() if m.inserted])
        for media in inserted:
            self.bmc.call("eject media", media.eject_media)
            if self.drives is not None:
                self.drives.withdraw(media.image or "")

    def _claimed_by(self, uid: str) -> bool:
        return uid in (self.host.spec.consumer, self.host.status.consumer)

    def _provision(self, req: NodeRequest) -> NodeRef:
        if not self._claimed_by(req.machine_uid):
            raise NoCapacityError(
                f"host {self.host.metadata.name} is not claimed by machine {req.machine_name}",
                provider=PROVIDER,
            )
        spec = req.spec if isinstance(req.spec, BareMetalMachineSpec) else BareMetalMachineSpec()
        url = image_url(self.host.spec.image or spec.image, self.image_base_url)
        system = self.bmc.system()
        if req.user_data and self.drives is not None:
            drive = self.drives.publish(req.user_data, instance_id=req.machine_uid,
                                        hostname=req.machine_name)
            self._insert(self._removable(system), drive)
        self._insert(self._cd(system), url)
        self.bmc.call(
            "set boot device",
            lambda: system.set_system_boot_options(
                sushy.BOOT_SOURCE_TARGET_CD, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE
            ),
        )
        return self._ref(req.machine_uid)

    def _inspect(self) -> Inspection:
        system = self.bmc.system()

        def facts() -> Inspection:
            nics = [
                (e.mac_address or e.permanent_mac_address or "").lower()
                for e in system.ethernet_interfaces.get_members()
            ]
            memory = system.memory_summary.size_gib if system.memory_summary else None
            cpus = 0
            try:
                summary = system.processors.summary
                cpus = summary.count or 0 if summary else 0
            except sushy.exceptions.MissingAttributeError:
                cpus = 0
            return Inspection(
                cpus=cpus,
                memory_mib=int((memory or 0) * 1024),
                nics=[n for n in nics if n],
                system_uuid=system.uuid or "",
                details={"manufacturer": system.manufacturer or "", "model": system.model or ""},
            )

        return self.bmc.call("inspect", facts)

    def _power_state(self, system: System) -> str:
        state = system.power_state
        if state in (sushy.POWER_STATE_ON, sushy.POWER_STATE_POWERING_OFF):
            return "On"
        if state in (sushy.POWER_STATE_OFF, sushy.POWER_STATE_POWERING_ON):
            return "Off"
        return "Unknown"

    def _request_power(self, system: System, on: bool, graceful: bool = False) -> None:
        """Ask the BMC for a power change, unless the same was asked a moment ago.

        BMCs apply power changes seconds later; asking again meanwhile at best does
        nothing and at worst restarts the transition (the Redfish emulator reschedules it),
        so a host polled every few seconds might never get there.
        """
        key = (self._host_id, on)
        if time.monotonic() - _POWER_REQUESTS.get(key, -POWER_RESEND) < POWER_RESEND:
            return
        reset = sushy.RESET_ON if on else (
            sushy.RESET_GRACEFUL_SHUTDOWN if graceful else sushy.RESET_FORCE_OFF)
        self.bmc.call("power on" if on else "shut down" if graceful else "power off",
                      lambda: system.reset_system(reset))
        _POWER_REQUESTS[key] = time.monotonic()
        _POWER_REQUESTS.pop((self._host_id, not on), None)

    def _power(self, on: bool, graceful: bool = False) -> None:
        system = self.bmc.system()
        if self._power_state(system) == ("On" if on else "Off"):
            _POWER_REQUESTS.pop((self._host_id, on), None)
            return
        self._request_power(system, on, graceful)

    def _addresses(self, system: System) -> list[str]:
        found: list[str] = []

        def read() -> None:
            for nic in system.ethernet_interfaces.get_members():
                for a in nic.json.get("IPv4Addresses") or []:
                    if a.get("Address"):
                        found.append(a["Address"])

        self.bmc.call("read addresses", read)
        if not found:
            raw = self.host.metadata.annotations.get(ADDRESSES_ANNOTATION, "")
            found = [a.strip() for a in raw.split(",") if a.strip()]
        return found

    def _status(self, ref: NodeRef) -> NodeStatus:
        system = self.bmc.system()
        power = self._power_state(system)
        cd = self._cd(system)
        provisioned = bool(cd.inserted)
        if power == "On" and provisioned:
            return NodeStatus(
                ref=ref, phase="Running", power_state="On", addresses=self._addresses(system)
            )
        phase = "Provisioning" if provisioned else "Stopped"
        return NodeStatus(ref=ref, phase=phase, power_state=power)  # type: ignore[arg-type]

    def _deprovision(self) -> bool:
        system = self.bmc.system()
        if self._power_state(system) != "Off":
            self._request_power(system, False)
            return False  # the BMC applies it later; the caller asks again
        _POWER_REQUESTS.pop((self._host_id, False), None)
        self._eject_all(system)
        return True

    # --- contract -------------------------------------------------------------------------

    async def find(self, req: NodeRequest) -> NodeRef | None:
        return self._ref(req.machine_uid) if self._claimed_by(req.machine_uid) else None

    async def create(self, req: NodeRequest) -> NodeRef:
        return await asyncio.to_thread(self._provision, req)

    async def inspect(self, ref: NodeRef) -> Inspection:
        return await asyncio.to_thread(self._inspect)

    async def power(self, ref: NodeRef, *, on: bool, graceful: bool = False) -> None:
        await asyncio.to_thread(self._power, on, graceful)

    async def status(self, ref: NodeRef) -> NodeStatus:
        return await asyncio.to_thread(self._status, ref)

    async def addresses(self, ref: NodeRef) -> list[str]:
        st = await self.status(ref)
        return st.addresses if st.phase == "Running" else []

    async def delete(self, ref: NodeRef) -> bool:
        return await asyncio.to_thread(self._deprovision)

    async def close(self) -> None:
        await asyncio.to_thread(self.bmc.close)

    # --- used by the BareMetalHost reconciler ---------------------------------------------

    async def power_state(self) -> str:
        return await asyncio.to_thread(lambda: self._power_state(self.bmc.system()))

    async def power_off(self) -> None:
        await asyncio.to_thread(self._power, False)

    async def inspect_host(self) -> Inspection:
        return await asyncio.to_thread(self._inspect)
