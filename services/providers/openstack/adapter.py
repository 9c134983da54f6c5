"""OpenStack provider: Nova servers from image/flavor in a network, Neutron floating IPs.

Bound to one OpenStackCredential; the connection (and its Keystone token) is reused
across calls. A server carries the Machine uid in its metadata (``ccloud-machine-uid``)
and its wanted floating network (``ccloud-floating-network``), so ``find`` and
``addresses`` need nothing but the server itself. Every SDK call runs in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from typing import Any, ClassVar

import openstack

from services.providers.contract import (
    MACHINE_UID_TAG,
    BlockingProvider,
    Inspection,
    NodeRef,
    NodeRequest,
    NodeStatus,
)
from services.providers.errors import InvalidSpecError, NotFoundError, ProviderError
from services.providers.openstack.session import PROVIDER, connect, guarded
from shared.models import OpenStackCredential, OpenStackMachineSpec
from shared.models.kinds import ProviderName

FLOATING_NETWORK_TAG = "ccloud-floating-network"

_PHASES = {
    "BUILD": "Provisioning",
    "REBUILD": "Provisioning",
    "ACTIVE": "Running",
    "REBOOT": "Running",
    "HARD_REBOOT": "Running",
    "SHUTOFF": "Stopped",
    "STOPPED": "Stopped",
    "SUSPENDED": "Stopped",
    "PAUSED": "Stopped",
    "ERROR": "Failed",
    "DELETED": "Deleting",
    "SOFT_DELETED": "Deleting",
}


class OpenStackProvider(BlockingProvider):
    name: ClassVar[ProviderName] = "openstack"

    def __init__(self, credential: OpenStackCredential, *, timeout: float = 30.0) -> None:
        self.credential = credential
        self.timeout = timeout
        a = credential.spec.auth
        self._secrets = (a.password, a.application_credential_secret)
        self._conn: openstack.connection.Connection | None = None
        self._lock = threading.Lock()

    # --- blocking helpers -----------------------------------------------------------------

    def _call(self, what: str, fn):  # noqa: ANN001, ANN202 - thin typed-through wrapper
        return guarded(what, fn, self._secrets)

    @property
    def conn(self) -> openstack.connection.Connection:
        with self._lock:
            if self._conn is None:
                self._conn = self._call(
                    "connect", lambda: connect(self.credential, timeout=self.timeout)
                )
            return self._conn

    def _ref(self, server: Any) -> NodeRef:
        return NodeRef(
            provider=self.name,
            id=server.id,
            name=server.name,
            machine_uid=(server.metadata or {}).get(MACHINE_UID_TAG, ""),
            provider_id=f"openstack:///{server.id}",
        )

    def _find(self, req: NodeRequest) -> NodeRef | None:
        pattern = f"^{re.escape(req.node_name)}$"
        servers = self._call(
            "list servers", lambda: list(self.conn.compute.servers(details=True, name=pattern))
        )
        for s in servers:
            if (s.metadata or {}).get(MACHINE_UID_TAG) == req.machine_uid and s.status != "DELETED":
                return self._ref(s)
        return None

    def _create(self, req: NodeRequest) -> NodeRef:
        if not isinstance(req.spec, OpenStackMachineSpec):
            raise InvalidSpecError("machine has no spec.openstack", provider=PROVIDER)
        found = self._find(req)
        if found:
            return found
        spec = req.spec
        c = self.conn
        image = self._lookup("image", c.image.find_image, spec.image)
        flavor = self._lookup("flavor", c.compute.find_flavor, spec.flavor)
        network = self._lookup("network", c.network.find_network, spec.network)
        if spec.floating_network:
            self._lookup("floating network", c.network.find_network, spec.floating_network)
        metadata = {MACHINE_UID_TAG: req.machine_uid, "ccloud-cluster": req.cluster}
        if spec.floating_network:
            metadata[FLOATING_NETWORK_TAG] = spec.floating_network
        attrs: dict[str, Any] = {
            "name": req.node_name,
            "image_id": image.id,
            "flavor_id": flavor.id,
            "networks": [{"uuid": network.id}],
            "metadata": metadata,
        }
        if spec.key_name:
            attrs["key_name"] = spec.key_name
        if req.user_data:
            attrs["user_data"] = base64.b64encode(req.user_data.encode()).decode()
        server = self._call("create server", lambda: c.compute.create_server(**attrs))
        return NodeRef(
            provider=self.name,
            id=server.id,
            name=req.node_name,
            machine_uid=req.machine_uid,
            provider_id=f"openstack:///{server.id}",
        )

    def _lookup(self, what: str, finder, name: str):  # noqa: ANN001, ANN202
        try:
            found = self._call(f"find {what}", lambda: finder(name, ignore_missing=False))
        except NotFoundError:
            found = None
        if found is None:
            raise InvalidSpecError(f"{what} not found", code=404, provider=PROVIDER)
        return found

    def _server(self, ref: NodeRef) -> Any:
        return self._call("get server", lambda: self.conn.compute.get_server(ref.id))

    def _ports(self, server_id: str) -> list[Any]:
        return self._call(
            "list ports", lambda: list(self.conn.network.ports(device_id=server_id))
        )

    def _inspect(self, ref: NodeRef) -> Inspection:
        server = self._server(ref)
        flavor = server.flavor
        vcpus = getattr(flavor, "vcpus", None)
        ram = getattr(flavor, "ram", None)
        if vcpus is None and getattr(flavor, "id", None):
            full = self._call("get flavor", lambda: self.conn.compute.get_flavor(flavor.id))
            vcpus, ram = full.vcpus, full.ram
        macs = [p.mac_address.lower() for p in self._ports(server.id) if p.mac_address]
        return Inspection(
            cpus=int(vcpus or 0),
            memory_mib=int(ram or 0),
            nics=macs,
            system_uuid=server.id,
            details={"flavor": str(getattr(flavor, "name", "") or getattr(flavor, "id", ""))},
        )

    def _power(self, ref: NodeRef, on: bool, graceful: bool = False) -> None:
        """Nova's stop is graceful already (ACPI, then off after its shutdown_timeout)."""
        server = self._server(ref)
        if on and server.status in ("SHUTOFF", "STOPPED"):
            self._call("start server", lambda: self.conn.compute.start_server(server.id))
        elif not on and server.status == "ACTIVE":
            self._call("stop server", lambda: self.conn.compute.stop_server(server.id))

    @staticmethod
    def _server_addresses(server: Any) -> list[str]:
        fixed: list[str] = []
        floating: list[str] = []
        for entries in (server.addresses or {}).values():
            for e in entries:
                kind = e.get("OS-EXT-IPS:type", "fixed")
                (floating if kind == "floating" else fixed).append(e["addr"])
        return fixed + [a for a in floating if a not in fixed]

    def _status(self, ref: NodeRef) -> NodeStatus:
        server = self._server(ref)
        phase = _PHASES.get(server.status, "Provisioning")
        if server.task_state == "deleting":
            phase = "Deleting"
        power = {1: "On", 4: "Off"}.get(server.power_state or 0, "Unknown")
        if phase == "Running" and power == "Unknown":
            power = "On"
        message = ""
        if phase == "Failed":
            message = (server.fault or {}).get("message", "") or "server is in ERROR"
        return NodeStatus(
            ref=ref,
            phase=phase,  # type: ignore[arg-type]
            power_state=power,  # type: ignore[arg-type]
            addresses=self._server_addresses(server),
            message=message,
        )

    def _addresses(self, ref: NodeRef) -> list[str]:
        server = self._server(ref)
        if server.status != "ACTIVE":
            return []
        fixed = self._server_addresses(server)
        net_name = (server.metadata or {}).get(FLOATING_NETWORK_TAG, "")
        if not net_name:
            return fixed
        ports = self._ports(server.id)
        if not ports:
            return []
        port = ports[0]
        c = self.conn
        fips = self._call("list floating ips", lambda: list(c.network.ips(port_id=port.id)))
        if not fips:
            fnet = self._lookup("floating network", c.network.find_network, net_name)
            fip = self._call(
                "create floating ip",
                lambda: c.network.create_ip(floating_network_id=fnet.id, port_id=port.id),
            )
            fips = [fip]
        fixed_ips = [ip["ip_address"] for ip in port.fixed_ips or []]
        floating = [f.floating_ip_address for f in fips]
        return [a for a in fixed or fixed_ips] + [a for a in floating if a not in fixed]

    def _delete(self, ref: NodeRef) -> bool:
        try:
            server = self._server(ref)
        except NotFoundError:
            return True
        c = self.conn
        for port in self._ports(server.id):
            fips = self._call(
                "list floating ips", lambda p=port: list(c.network.ips(port_id=p.id))
            )
            for fip in fips:
                self._call(
                    "delete floating ip",
                    lambda f=fip: c.network.delete_ip(f, ignore_missing=True),
                )
        if server.task_state != "deleting":
            self._call(
                "delete server", lambda: c.compute.delete_server(server.id, ignore_missing=True)
            )
        try:
            self._server(ref)
        except NotFoundError:
            return True
        return False

    # --- contract (the rest comes from BlockingProvider) ----------------------------------

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    async def check_credentials(self) -> None:
        """Authenticate once (a token issue); raises CredentialsError when refused.

        Through keystoneauth's session, not ``Connection.authorize()``: that wraps every
        failure in a plain SDKException, so a refusal could not be told from an outage.
        """

        def auth() -> None:
            self._call("authenticate", lambda: self.conn.session.get_token())

        await asyncio.to_thread(auth)


__all__ = ["FLOATING_NETWORK_TAG", "OpenStackProvider", "ProviderError"]
