"""A faithful fake of the OpenStack endpoints openstacksdk calls: Keystone v3, Nova, Neutron,
Glance, on one loopback port, for the OpenStack provider tests (no OpenStack runs here).

Faithful means: the SDK does its real version discovery, token issue and microversion
negotiation against it, and every answer has the shape and status the real service
gives, errors included (Keystone's 401 ``{"error": ...}``, Nova's 403 ``{"forbidden": ...}``
or 413 ``{"overLimit": ...}`` quota bodies, ``{"itemNotFound": ...}``, Neutron's
``{"NeutronError": {"type": "OverQuota", ...}}``). Behaviour is stateful: servers go
BUILD -> ACTIVE after ``build_seconds``, a delete passes through task_state ``deleting``
before the server 404s, creating a server creates its Neutron port, quotas count what
exists, tokens expire and are checked on every request. Anything the fake does not
implement answers 404 and is recorded in ``unhandled`` so tests can assert none happened.

It runs an aiohttp server on its own thread and event loop, so blocking SDK calls from
any thread (or from ``asyncio.to_thread``) work.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REGION = "RegionOne"
NOVA_MIN, NOVA_MAX = "2.1", "2.90"
JSON = "application/json"
TOKEN: web.RequestKey[Token] = web.RequestKey("token", "Token")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_us(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _err(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def keystone_401() -> web.Response:
    return _err(
        401,
        {
            "error": {
                "code": 401,
                "message": "The request you have made requires authentication.",
                "title": "Unauthorized",
            }
        },
        {"WWW-Authenticate": 'Keystone uri="/identity"'},
    )


def nova_404(kind: str, ident: str) -> web.Response:
    message = f"{kind} {ident} could not be found."
    return _err(404, {"itemNotFound": {"code": 404, "message": message}})


def neutron_error(status: int, type_: str, message: str) -> web.Response:
    return _err(status, {"NeutronError": {"type": type_, "message": message, "detail": ""}})


@dataclass
class User:
    id: str
    name: str
    password: str
    domain: str = "Default"
    enabled: bool = True


@dataclass
class Project:
    id: str
    name: str
    domain: str = "Default"


@dataclass
class Token:
    user: User
    project: Project
    expires: float
    methods: list[str]


@dataclass
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str
    flavor_id: str
    network_id: str
    metadata: dict[str, str]
    key_name: str | None
    created: float
    build_until: float
    status: str = "BUILD"
    power_state: int = 0
    task_state: str | None = "spawning"
    deleted_at: float | None = None
    user_data: str = ""  # decoded; what cloud-init on the node would read
    fail_build: bool = False
    updated: float = field(default_factory=time.time)


class FakeOpenStack:
    """The fake cloud; configure it with the ``add_*`` methods and knobs, then ``start()``."""

    def __init__(
        self,
        *,
        build_seconds: float = 0.3,
        delete_seconds: float = 0.3,
        token_ttl: float = 3600.0,
        instance_quota: int = 10,
        floatingip_quota: int = 10,
        quota_status: int = 403,
    ) -> None:
        self.build_seconds = build_seconds
        self.delete_seconds = delete_seconds
        self.token_ttl = token_ttl
        self.instance_quota = instance_quota
        self.floatingip_quota = floatingip_quota
        self.quota_status = quota_status
        self.stall_seconds = 0.0  # every service answer waits this long (timeouts)
        self.fail_next_builds = 0  # that many next servers end in ERROR "No valid host"
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.tokens_issued = 0
        self.users: dict[str, User] = {}
        self.projects: dict[str, Project] = {}
        self.app_creds: dict[str, tuple[str, User, Project]] = {}
        self.tokens: dict[str, Token] = {}
        self.images: dict[str, dict[str, Any]] = {}
        self.flavors: dict[str, dict[str, Any]] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        self.subnets: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, dict[str, Any]] = {}
        self.floating_ips: dict[str, dict[str, Any]] = {}
        self.servers: dict[str, Server] = {}
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._ip_counter = 10

    # --- set-up -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def add_user(self, name: str, password: str, project: str, *, domain: str = "Default") -> User:
        with self._lock:
            user = User(id=uuid.uuid4().hex, name=name, password=password, domain=domain)
            self.users[user.id] = user
            if not any(p.name == project for p in self.projects.values()):
                p = Project(id=uuid.uuid4().hex, name=project, domain=domain)
                self.projects[p.id] = p
            return user

    def add_app_credential(self, user: str, project: str) -> tuple[str, str]:
        with self._lock:
            u = next(x for x in self.users.values() if x.name == user)
            p = next(x for x in self.projects.values() if x.name == project)
            cid, secret = uuid.uuid4().hex, secrets.token_urlsafe(16)
            self.app_creds[cid] = (secret, u, p)
            return cid, secret

    def add_image(self, name: str) -> str:
        iid = str(uuid.uuid4())
        now = _iso(time.time())
        self.images[iid] = {
            "id": iid, "name": name, "status": "active", "visibility": "public",
            "disk_format": "qcow2", "container_format": "bare", "size": 1073741824,
            "min_disk": 0, "min_ram": 0, "protected": False, "tags": [], "checksum": "0" * 32,
            "owner": None, "created_at": now, "updated_at": now, "os_hidden": False,
            "self": f"/v2/images/{iid}", "file": f"/v2/images/{iid}/file",
            "schema": "/v2/schemas/image",
        }
        return iid

    def add_flavor(self, name: str, *, vcpus: int, ram: int, disk: int = 20) -> str:
        fid = str(len(self.flavors) + 1)
        self.flavors[fid] = {
            "id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
            "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0, "rxtx_factor": 1.0,
            "OS-FLV-DISABLED:disabled": False, "os-flavor-access:is_public": True,
            "description": None, "extra_specs": {},
        }
        return fid

    def add_network(self, name: str, *, cidr: str, external: bool = False) -> str:
        nid, sid = str(uuid.uuid4()), str(uuid.uuid4())
        project = next(iter(self.projects.values())).id if self.projects else ""
        self.networks[nid] = {
            "id": nid, "name": name, "status": "ACTIVE", "admin_state_up": True,
            "router:external": external, "shared": external, "subnets": [sid],
            "tenant_id": project, "project_id": project, "mtu": 1450, "tags": [],
            "availability_zones": ["nova"], "description": "", "port_security_enabled": True,
            "revision_number": 1,
        }
        self.subnets[sid] = {"id": sid, "network_id": nid, "cidr": cidr, "ip_version": 4}
        return nid

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def set_password(self, name: str, password: str) -> None:
        with self._lock:
            for u in self.users.values():
                if u.name == name:
                    u.password = password

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOpenStack:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._runner = web.AppRunner(self._app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openstack", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenStack did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        # Keystone
        r.add_get("/identity", self.k_versions)
        r.add_get("/identity/", self.k_versions)
        r.add_get("/identity/v3", self.k_version)
        r.add_get("/identity/v3/", self.k_version)
        r.add_post("/identity/v3/auth/tokens", self.k_issue)
        r.add_get("/identity/v3/auth/tokens", self.k_validate)
        # Nova
        r.add_get("/compute", self.n_versions)
        r.add_get("/compute/", self.n_versions)
        r.add_get("/compute/v2.1", self.n_version)
        r.add_get("/compute/v2.1/", self.n_version)
        r.add_get("/compute/v2.1/flavors", self.n_flavors)
        r.add_get("/compute/v2.1/flavors/detail", self.n_flavors)
        r.add_get("/compute/v2.1/flavors/{id}", self.n_flavor)
        r.add_get("/compute/v2.1/flavors/{id}/os-extra_specs", self.n_extra_specs)
        r.add_get("/compute/v2.1/servers", self.n_servers)
        r.add_get("/compute/v2.1/servers/detail", self.n_servers)
        r.add_post("/compute/v2.1/servers", self.n_create)
        r.add_get("/compute/v2.1/servers/{id}", self.n_server)
        r.add_delete("/compute/v2.1/servers/{id}", self.n_delete)
        r.add_post("/compute/v2.1/servers/{id}/action", self.n_action)
        # Glance
        r.add_get("/image", self.g_versions)
        r.add_get("/image/", self.g_versions)
        r.add_get("/image/v2/images", self.g_images)
        r.add_get("/image/v2/images/{id}", self.g_image)
        # Neutron
        r.add_get("/network", self.q_versions)
        r.add_get("/network/", self.q_versions)
        r.add_get("/network/v2.0/networks", self.q_networks)
        r.add_get("/network/v2.0/networks/{id}", self.q_network)
        r.add_get("/network/v2.0/ports", self.q_ports)
        r.add_get("/network/v2.0/floatingips", self.q_fips)
        r.add_post("/network/v2.0/floatingips", self.q_create_fip)
        r.add_delete("/network/v2.0/floatingips/{id}", self.q_delete_fip)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.match_info.http_exception is not None:
            self.unhandled.append((request.method, request.path_qs))
            return web.json_response(
                {"error": {"code": 404, "message": f"fake has no {request.method} {request.path}"}},
                status=404,
            )
        service = request.path.split("/")[1]
        is_discovery = request.path.rstrip("/") in (
            "/identity", "/identity/v3", "/compute", "/compute/v2.1", "/image", "/network",
        )
        if service != "identity" and not is_discovery:
            if self.stall_seconds:
                await asyncio.sleep(self.stall_seconds)
            token = self._token(request.headers.get("X-Auth-Token", ""))
            if token is None:
                return keystone_401()
            request[TOKEN] = token
        with self._lock:
            return await handler(request)

    def _token(self, value: str) -> Token | None:
        tok = self.tokens.get(value)
        if tok is None or tok.expires < time.time() or not tok.user.enabled:
            return None
        return tok

    # --- Keystone v3 -----------------------------------------------------------------------------

    def _k_version_doc(self) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.url}/identity/v3/"}],
            "media-types": [
                {"base": JSON, "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    async def k_versions(self, request: web.Request) -> web.Response:
        return web.json_response({"versions": {"values": [self._k_version_doc()]}}, status=300)

    async def k_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self._k_version_doc()})

    def _catalog(self) -> list[dict[str, Any]]:
        def entry(type_: str, name: str, url: str) -> dict[str, Any]:
            return {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, type_).hex,
                "type": type_,
                "name": name,
                "endpoints": [
                    {
                        "id": uuid.uuid5(uuid.NAMESPACE_URL, type_ + iface).hex,
                        "interface": iface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    }
                    for iface in ("public", "internal")
                ],
            }

        return [
            entry("identity", "keystone", f"{self.url}/identity"),
            entry("compute", "nova", f"{self.url}/compute/v2.1"),
            entry("network", "neutron", f"{self.url}/network"),
            entry("image", "glance", f"{self.url}/image"),
        ]

    async def k_issue(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            identity = body["auth"]["identity"]
            methods = identity["methods"]
        except (ValueError, KeyError, TypeError):
            return _err(
                400,
                {"error": {"code": 400, "title": "Bad Request",
                           "message": "Expecting to find auth in request body."}},
            )
        user: User | None = None
        project: Project | None = None
        if "password" in methods:
            u = identity["password"]["user"]
            domain = (u.get("domain") or {}).get("name", "Default")
            user = next(
                (x for x in self.users.values()
                 if x.name == u.get("name") and x.domain == domain
                 and x.password == u.get("password") and x.enabled),
                None,
            )
            scope = ((body["auth"].get("scope") or {}).get("project")) or {}
            if user is not None:
                pdomain = (scope.get("domain") or {}).get("name", "Default")
                project = next(
                    (p for p in self.projects.values()
                     if p.name == scope.get("name") and p.domain == pdomain),
                    None,
                )
                if project is None:
                    return _err(401, {"error": {
                        "code": 401, "title": "Unauthorized",
                        "message": "The request you have made requires authentication."}})
        elif "application_credential" in methods:
            ac = identity["application_credential"]
            entry = self.app_creds.get(ac.get("id", ""))
            if entry and entry[0] == ac.get("secret") and entry[1].enabled:
                user, project = entry[1], entry[2]
        if user is None or project is None:
            return keystone_401()
        now = time.time()
        token_id = "gAAAA" + secrets.token_urlsafe(32)
        tok = Token(user=user, project=project, expires=now + self.token_ttl, methods=methods)
        self.tokens[token_id] = tok
        self.tokens_issued += 1
        return web.json_response(self._token_body(tok, now), status=201,
                                 headers={"X-Subject-Token": token_id})

    def _token_body(self, tok: Token, now: float) -> dict[str, Any]:
        domain = {"id": "default", "name": tok.user.domain}
        return {
            "token": {
                "methods": tok.methods,
                "user": {"id": tok.user.id, "name": tok.user.name, "domain": domain,
                         "password_expires_at": None},
                "project": {"id": tok.project.id, "name": tok.project.name,
                            "domain": {"id": "default", "name": tok.project.domain}},
                "roles": [{"id": "r-member", "name": "member"},
                          {"id": "r-reader", "name": "reader"}],
                "is_domain": False,
                "catalog": self._catalog(),
                "expires_at": _iso_us(tok.expires),
                "issued_at": _iso_us(now),
                "audit_ids": [secrets.token_urlsafe(16)],
            }
        }

    async def k_validate(self, request: web.Request) -> web.Response:
        if self._token(request.headers.get("X-Auth-Token", "")) is None:
            return keystone_401()
        tok = self._token(request.headers.get("X-Subject-Token", ""))
        if tok is None:
            return _err(404, {"error": {"code": 404, "title": "Not Found",
                                        "message": "Could not find token."}})
        return web.json_response(self._token_body(tok, time.time()))

    # --- Nova ---------------------------------------------------------------------------------

    def _n_version_doc(self) -> dict[str, Any]:
        return {
            "id": "v2.1", "status": "CURRENT", "version": NOVA_MAX, "min_version": NOVA_MIN,
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/"}],
            "media-types": [{"base": JSON,
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }

    async def n_versions(self, request: web.Request) -> web.Response:
        v20 = {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
               "updated": "2011-01-21T11:33:21Z",
               "links": [{"rel": "self", "href": f"{self.url}/compute/v2/"}]}
        return web.json_response({"versions": [v20, self._n_version_doc()]})

    async def n_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self._n_version_doc()})

    @staticmethod
    def _microversion(request: web.Request) -> tuple[int, int]:
        raw = request.headers.get("OpenStack-API-Version", "")
        m = re.match(r"compute\s+(\d+)\.(\d+)", raw)
        if not m:
            raw = request.headers.get("X-OpenStack-Nova-API-Version", NOVA_MIN)
            m = re.match(r"(\d+)\.(\d+)", raw)
        if not m:
            return (2, 1)
        return (int(m.group(1)), int(m.group(2)))

    def _n_response(self, request: web.Request, body: Any, status: int = 200) -> web.Response:
        mv = self._microversion(request)
        mvs = f"{mv[0]}.{mv[1]}"
        return web.json_response(
            body, status=status,
            headers={"OpenStack-API-Version": f"compute {mvs}",
                     "X-OpenStack-Nova-API-Version": mvs, "Vary": "OpenStack-API-Version"},
        )

    def _flavor_view(self, f: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in f.items() if k != "extra_specs"}
        out["links"] = [{"rel": "self", "href": f"{self.url}/compute/v2.1/flavors/{f['id']}"}]
        return out

    async def n_flavors(self, request: web.Request) -> web.Response:
        flavors = [self._flavor_view(f) for f in self.flavors.values()]
        if not request.path.endswith("/detail"):
            flavors = [{"id": f["id"], "name": f["name"], "links": f["links"]} for f in flavors]
        return self._n_response(request, {"flavors": flavors})

    async def n_flavor(self, request: web.Request) -> web.Response:
        f = self.flavors.get(request.match_info["id"])
        if f is None:
            return nova_404("Flavor", request.match_info["id"])
        return self._n_response(request, {"flavor": self._flavor_view(f)})

    async def n_extra_specs(self, request: web.Request) -> web.Response:
        f = self.flavors.get(request.match_info["id"])
        if f is None:
            return nova_404("Flavor", request.match_info["id"])
        return self._n_response(request, {"extra_specs": f["extra_specs"]})

    def _settle(self, s: Server) -> Server | None:
        """Advance time-driven state; None once a deleted server is gone."""
        now = time.time()
        if s.deleted_at is not None and now >= s.deleted_at:
            for pid in [p for p, port in self.ports.items() if port["device_id"] == s.id]:
                for fip in self.floating_ips.values():
                    if fip["port_id"] == pid:
                        fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
                del self.ports[pid]
            del self.servers[s.id]
            return None
        if s.status == "BUILD" and now >= s.build_until:
            if s.fail_build:
                s.status, s.task_state, s.power_state = "ERROR", None, 0
            else:
                s.status, s.task_state, s.power_state = "ACTIVE", None, 1
            s.updated = now
        return s

    def _server_view(self, request: web.Request, s: Server) -> dict[str, Any]:
        mv = self._microversion(request)
        addresses: dict[str, list[dict[str, Any]]] = {}
        if s.status != "BUILD":
            for port in self.ports.values():
                if port["device_id"] != s.id:
                    continue
                net = self.networks[port["network_id"]]["name"]
                entries = addresses.setdefault(net, [])
                for ip in port["fixed_ips"]:
                    entries.append({"version": 4, "addr": ip["ip_address"],
                                    "OS-EXT-IPS:type": "fixed",
                                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
                for fip in self.floating_ips.values():
                    if fip["port_id"] == port["id"]:
                        entries.append({"version": 4, "addr": fip["floating_ip_address"],
                                        "OS-EXT-IPS:type": "floating",
                                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        flavor = self.flavors[s.flavor_id]
        if mv >= (2, 47):
            flavor_view: dict[str, Any] = {
                "original_name": flavor["name"], "vcpus": flavor["vcpus"], "ram": flavor["ram"],
                "disk": flavor["disk"], "ephemeral": 0, "swap": 0, "extra_specs": {},
            }
        else:
            flavor_view = {"id": s.flavor_id, "links": [
                {"rel": "bookmark", "href": f"{self.url}/compute/flavors/{s.flavor_id}"}]}
        vm_state = {"BUILD": "building", "ACTIVE": "active", "SHUTOFF": "stopped",
                    "ERROR": "error"}.get(s.status, "active")
        view: dict[str, Any] = {
            "id": s.id, "name": s.name, "status": s.status, "tenant_id": s.project_id,
            "user_id": s.user_id, "metadata": dict(s.metadata), "hostId": "" if s.status ==
            "BUILD" else uuid.uuid5(uuid.NAMESPACE_DNS, s.project_id).hex,
            "image": {"id": s.image_id, "links": [
                {"rel": "bookmark", "href": f"{self.url}/compute/images/{s.image_id}"}]},
            "flavor": flavor_view, "created": _iso(s.created), "updated": _iso(s.updated),
            "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
            "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/servers/{s.id}"},
                      {"rel": "bookmark", "href": f"{self.url}/compute/servers/{s.id}"}],
            "OS-DCF:diskConfig": "MANUAL", "progress": 0,
            "OS-EXT-AZ:availability_zone": "nova", "config_drive": "",
            "key_name": s.key_name, "OS-SRV-USG:launched_at": None,
            "OS-SRV-USG:terminated_at": None, "OS-EXT-STS:task_state": s.task_state,
            "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:power_state": s.power_state,
            "os-extended-volumes:volumes_attached": [],
            "security_groups": [{"name": "default"}],
        }
        if mv >= (2, 26):
            view["tags"] = []
        if s.status == "ERROR":
            view["fault"] = {"code": 500, "created": _iso(s.updated),
                             "message": "No valid host was found. There are not enough hosts "
                                        "available."}
        return view

    def _visible(self, request: web.Request) -> list[Server]:
        project = request[TOKEN].project.id
        out = []
        for s in list(self.servers.values()):
            settled = self._settle(s)
            if settled is not None and settled.project_id == project:
                out.append(settled)
        return out

    async def n_servers(self, request: web.Request) -> web.Response:
        servers = self._visible(request)
        name = request.query.get("name")
        if name:
            rx = re.compile(name)
            servers = [s for s in servers if rx.search(s.name)]
        if request.path.endswith("/detail"):
            body = [self._server_view(request, s) for s in servers]
        else:
            body = [{"id": s.id, "name": s.name,
                     "links": self._server_view(request, s)["links"]} for s in servers]
        return self._n_response(request, {"servers": body})

    async def n_server(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        s = next((x for x in self._visible(request) if x.id == sid), None)
        if s is None:
            return nova_404("Instance", sid)
        return self._n_response(request, {"server": self._server_view(request, s)})

    def _next_ip(self, network_id: str) -> str:
        subnet = next(x for x in self.subnets.values() if x["network_id"] == network_id)
        base = subnet["cidr"].split("/")[0].rsplit(".", 1)[0]
        self._ip_counter += 1
        return f"{base}.{self._ip_counter}"

    def _new_port(self, network_id: str, device_id: str, owner: str, project: str) -> dict:
        pid = str(uuid.uuid4())
        subnet = next(x for x in self.subnets.values() if x["network_id"] == network_id)
        mac = "fa:16:3e:" + ":".join(secrets.token_hex(1) for _ in range(3))
        port = {
            "id": pid, "name": "", "network_id": network_id, "device_id": device_id,
            "device_owner": owner, "mac_address": mac, "status": "ACTIVE",
            "admin_state_up": True, "tenant_id": project, "project_id": project,
            "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": self._next_ip(network_id)}],
            "security_groups": [], "binding:vnic_type": "normal", "tags": [],
            "revision_number": 1, "description": "",
        }
        self.ports[pid] = port
        return port

    async def n_create(self, request: web.Request) -> web.Response:
        tok: Token = request[TOKEN]
        try:
            body = (await request.json())["server"]
            name, image, flavor = body["name"], body["imageRef"], body["flavorRef"]
        except (ValueError, KeyError, TypeError) as e:
            return _err(400, {"badRequest": {"code": 400,
                                             "message": f"Invalid input for field/attribute: {e}"}})
        if image not in self.images:
            return _err(400, {"badRequest": {"code": 400,
                                             "message": f"Image {image} could not be found."}})
        if flavor not in self.flavors:
            return _err(400, {"badRequest": {"code": 400,
                                             "message": f"Flavor {flavor} could not be found."}})
        nets = body.get("networks") or []
        if not nets or nets in ("auto", "none"):
            return _err(400, {"badRequest": {"code": 400,
                                             "message": "Multiple possible networks found, use a "
                                                        "Network ID to be more specific."}})
        net = nets[0].get("uuid", "")
        if net not in self.networks:
            return _err(400, {"badRequest": {"code": 400,
                                             "message": f"Network {net} could not be found."}})
        user_data = ""
        if body.get("user_data") is not None:  # Nova: base64, at most 65535 bytes encoded
            raw = body["user_data"]
            try:
                user_data = base64.b64decode(raw, validate=True).decode()
            except (ValueError, TypeError, UnicodeDecodeError):
                message = "User data needs to be valid base 64."
                return _err(400, {"badRequest": {"code": 400, "message": message}})
            if len(raw) > 65535:
                return _err(400, {"badRequest": {"code": 400, "message":
                                                 "User data too large. User data must be no "
                                                 "larger than 65535 bytes once base64 encoded."}})
        used = sum(1 for s in self._visible(request))
        if used + 1 > self.instance_quota:
            msg = (f"Quota exceeded for instances: Requested 1, but already used {used} of "
                   f"{self.instance_quota} instances")
            if self.quota_status == 413:
                return _err(413, {"overLimit": {"code": 413, "message": msg, "retryAfter": "0"}},
                            {"Retry-After": "0"})
            return _err(403, {"forbidden": {"code": 403, "message": msg}})
        now = time.time()
        fail = self.fail_next_builds > 0
        self.fail_next_builds -= 1 if fail else 0
        s = Server(
            id=str(uuid.uuid4()), name=name, project_id=tok.project.id, user_id=tok.user.id,
            image_id=image, flavor_id=flavor, network_id=net,
            metadata=dict(body.get("metadata") or {}), key_name=body.get("key_name"),
            created=now, build_until=now + self.build_seconds, fail_build=fail,
            user_data=user_data,
        )
        self.servers[s.id] = s
        self._new_port(net, s.id, "compute:nova", tok.project.id)
        return self._n_response(
            request,
            {"server": {"id": s.id, "links": self._server_view(request, s)["links"],
                        "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
                        "adminPass": secrets.token_urlsafe(9)}},
            status=202,
        )

    async def n_delete(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        s = next((x for x in self._visible(request) if x.id == sid), None)
        if s is None:
            return nova_404("Instance", sid)
        if s.deleted_at is None:
            s.task_state, s.deleted_at = "deleting", time.time() + self.delete_seconds
        return web.Response(status=204)

    async def n_action(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        s = next((x for x in self._visible(request) if x.id == sid), None)
        if s is None:
            return nova_404("Instance", sid)
        body = await request.json()
        action = next(iter(body), "")
        want = {"os-start": ("SHUTOFF", "ACTIVE", 1), "os-stop": ("ACTIVE", "SHUTOFF", 4)}
        if action not in want:
            return _err(400, {"badRequest": {"code": 400,
                                             "message": f"There is no such action: {action}"}})
        before, after, power = want[action]
        if s.status != before or s.deleted_at is not None:
            vm_state = {"ACTIVE": "active", "SHUTOFF": "stopped", "BUILD": "building"}.get(
                s.status, s.status.lower())
            return _err(409, {"conflictingRequest": {
                "code": 409,
                "message": f"Cannot '{action.removeprefix('os-')}' instance {s.id} while it is "
                           f"in vm_state {vm_state}"}})
        s.status, s.power_state, s.updated = after, power, time.time()
        return web.Response(status=202)

    # --- Glance ---------------------------------------------------------------------------------

    async def g_versions(self, request: web.Request) -> web.Response:
        versions = [
            {"id": v, "status": "CURRENT" if v == "v2.16" else "SUPPORTED",
             "links": [{"rel": "self", "href": f"{self.url}/image/v2/"}]}
            for v in ("v2.16", "v2.15", "v2.9", "v2.1", "v2.0")
        ]
        return web.json_response({"versions": versions}, status=300)

    async def g_images(self, request: web.Request) -> web.Response:
        images = list(self.images.values())
        for key in ("name", "id", "status", "visibility"):
            if key in request.query:
                images = [i for i in images if str(i.get(key)) == request.query[key]]
        return web.json_response(
            {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}
        )

    async def g_image(self, request: web.Request) -> web.Response:
        img = self.images.get(request.match_info["id"])
        if img is None:
            # Glance answers a missing image with a plain-text 404.
            return web.Response(
                status=404, content_type="text/plain",
                text=f"404 Not Found\n\nNo image found with ID {request.match_info['id']}\n\n",
            )
        return web.json_response(img)

    # --- Neutron --------------------------------------------------------------------------------

    async def q_versions(self, request: web.Request) -> web.Response:
        return web.json_response({"versions": [
            {"id": "v2.0", "status": "CURRENT",
             "links": [{"rel": "self", "href": f"{self.url}/network/v2.0/"}]}]})

    @staticmethod
    def _filter(items: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
        for key, value in query.items():
            if key in ("fields", "limit", "marker", "sort_key", "sort_dir"):
                continue
            items = [i for i in items if str(i.get(key)) == value
                     or (isinstance(i.get(key), bool) and str(i[key]).lower() == value.lower())]
        return items

    async def q_networks(self, request: web.Request) -> web.Response:
        nets = self._filter(list(self.networks.values()), request.query)
        return web.json_response({"networks": nets})

    async def q_network(self, request: web.Request) -> web.Response:
        net = self.networks.get(request.match_info["id"])
        if net is None:
            return neutron_error(404, "NetworkNotFound",
                                 f"Network {request.match_info['id']} could not be found.")
        return web.json_response({"network": net})

    async def q_ports(self, request: web.Request) -> web.Response:
        for s in list(self.servers.values()):
            self._settle(s)
        ports = self._filter(list(self.ports.values()), request.query)
        return web.json_response({"ports": ports})

    async def q_fips(self, request: web.Request) -> web.Response:
        for s in list(self.servers.values()):
            self._settle(s)
        fips = self._filter(list(self.floating_ips.values()), request.query)
        return web.json_response({"floatingips": fips})

    async def q_create_fip(self, request: web.Request) -> web.Response:
        tok: Token = request[TOKEN]
        try:
            body = (await request.json())["floatingip"]
            net_id = body["floating_network_id"]
        except (ValueError, KeyError, TypeError):
            return neutron_error(400, "HTTPBadRequest",
                                 "Invalid input for operation: floating_network_id is missing.")
        net = self.networks.get(net_id)
        if net is None:
            return neutron_error(404, "NetworkNotFound", f"Network {net_id} could not be found.")
        if not net["router:external"]:
            return neutron_error(400, "BadRequest",
                                 f"Bad floatingip request: Network {net_id} is not a valid "
                                 "external network.")
        mine = [f for f in self.floating_ips.values() if f["project_id"] == tok.project.id]
        if len(mine) >= self.floatingip_quota:
            return neutron_error(409, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
        port_id = body.get("port_id")
        port = self.ports.get(port_id) if port_id else None
        if port_id and port is None:
            return neutron_error(404, "PortNotFound", f"Port {port_id} could not be found.")
        fid = str(uuid.uuid4())
        fip = {
            "id": fid, "floating_network_id": net_id, "router_id": None,
            "floating_ip_address": self._next_ip(net_id),
            "fixed_ip_address": port["fixed_ips"][0]["ip_address"] if port else None,
            "port_id": port_id, "status": "ACTIVE" if port else "DOWN",
            "tenant_id": tok.project.id, "project_id": tok.project.id, "description": "",
            "tags": [], "revision_number": 0, "port_details": None, "dns_domain": "",
            "dns_name": "", "port_forwardings": [],
        }
        self.floating_ips[fid] = fip
        return web.json_response({"floatingip": fip}, status=201)

    async def q_delete_fip(self, request: web.Request) -> web.Response:
        fid = request.match_info["id"]
        if self.floating_ips.pop(fid, None) is None:
            return neutron_error(404, "FloatingIPNotFound",
                                 f"Floating IP {fid} could not be found")
        return web.Response(status=204)
