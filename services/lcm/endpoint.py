"""The regional LCM endpoint agents talk to: plain HTTP, one token per machine.

Routes (JSON bodies, see ``services.lcm.wire``), all with ``Authorization: Bearer <token>``
where the token is ``machine_token(regional secret, Machine uid)``:

- ``GET  /lcm/v1/machines/<ns>/<name>``            deployment details (``MachineDetails``)
- ``POST /lcm/v1/machines/<ns>/<name>/status``     item progress, hostname/IP, cordon ack
- ``POST /lcm/v1/machines/<ns>/<name>/heartbeat``  liveness only

HTTP rather than NATS subjects, because agents then need no NATS credentials at all and
every ``<prefix>.>`` subject already belongs to the event stream. A token opens exactly one
LCMMachine; an unknown machine is 404 (the agent waits for it), a wrong token 401. The
agent writes only ``status.hostname/ip/heartbeat/stateItems/cordoned`` - phases and
conditions stay with the controllers.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from services.lcm.clock import stamp
from services.lcm.config import LCMSettings
from services.lcm.items import item_hash, ordered
from services.lcm.tokens import verify
from services.lcm.wire import AgentReport, DetailItem, ErrorBody, MachineDetails
from shared.models import LCMMachine
from shared.runtime import update_status
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

_enc = msgspec.json.Encoder()
_report = msgspec.json.Decoder(AgentReport)
MAX_BODY = 1 << 20


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=_enc.encode(obj), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(ErrorBody(error=message), status)


def details_of(lm: LCMMachine, settings: LCMSettings) -> MachineDetails:
    return MachineDetails(
        namespace=lm.metadata.namespace or "",
        name=lm.metadata.name,
        cluster=lm.spec.cluster,
        role=lm.spec.role,
        release=lm.spec.release,
        items=[DetailItem(item=i, hash=item_hash(i)) for i in ordered(lm.spec.state_items)],
        cordoned=lm.spec.cordoned,
        heartbeat_interval=settings.heartbeat_interval,
        poll_interval=settings.poll_interval,
    )


class Endpoint:
    """aiohttp server component (``start``/``stop``); ``port`` is known after start."""

    def __init__(self, store: Store, secret: bytes, settings: LCMSettings) -> None:
        self.store = store
        self._secret = secret
        self.settings = settings
        self.port = settings.port
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_BODY)
        base = "/lcm/v1/machines/{ns}/{name}"
        self.app.router.add_get(base, self.get_details)
        self.app.router.add_post(base + "/status", self.post_status)
        self.app.router.add_post(base + "/heartbeat", self.post_heartbeat)
        self.app.router.add_get("/healthz", self.healthz)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("lcm endpoint on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _machine(self, request: web.Request) -> LCMMachine | web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not token:
            return _error(401, "missing bearer token")
        try:
            lm = await self.store.get(LCMMachine, name, ns)
        except NotFound:
            return _error(404, f"LCMMachine {ns}/{name} not found")
        if not verify(self._secret, lm.spec.machine_uid, token):
            log.warning("lcm endpoint: bad token for %s/%s from %s", ns, name, request.remote)
            return _error(401, "invalid token for this machine")
        return lm

    async def get_details(self, request: web.Request) -> web.Response:
        lm = await self._machine(request)
        if isinstance(lm, web.Response):
            return lm
        return _json(details_of(lm, self.settings))

    async def post_status(self, request: web.Request) -> web.Response:
        lm = await self._machine(request)
        if isinstance(lm, web.Response):
            return lm
        try:
            report = _report.decode(await request.read())
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            return _error(400, f"invalid report: {e}")

        def mutate(obj: LCMMachine) -> None:
            st = obj.status
            if report.hostname:
                st.hostname = report.hostname
            if report.ip:
                st.ip = report.ip
            if report.cordoned is not None:
                st.cordoned = report.cordoned
            known = {i.name for i in obj.spec.state_items}
            items = {k: v for k, v in st.state_items.items() if k in known}
            items.update({k: v for k, v in report.items.items() if k in known})
            st.state_items = items
            st.heartbeat = stamp()

        try:
            await update_status(self.store, lm, mutate)
        except NotFound:
            return _error(404, "machine is gone")
        return web.Response(status=204)

    async def post_heartbeat(self, request: web.Request) -> web.Response:
        lm = await self._machine(request)
        if isinstance(lm, web.Response):
            return lm

        def mutate(obj: LCMMachine) -> None:
            obj.status.heartbeat = stamp()

        try:
            await update_status(self.store, lm, mutate)
        except NotFound:
            return _error(404, "machine is gone")
        return web.Response(status=204)
