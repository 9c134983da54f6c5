"""The regional LCM endpoint agents talk to: plain HTTP, one token per machine.

Routes (JSON bodies, see ``services.lcm.wire``), all with ``Authorization: Bearer <token>``
where the token is ``machine_token(regional secret, Machine uid)``:

- ``GET  /lcm/v1/machines/<ns>/<name>``            deployment details (``MachineDetails``)
  with an ``ETag``. Long-poll: with ``If-None-Match: <etag>`` and ``?wait=<seconds>`` (cut
  to ``wire.MAX_WAIT``; not a number >= 0 is 400) the request is held until the details
  change (200) or the wait runs out (304); without ``wait`` a match is 304 at once. An
  unknown machine with ``wait`` is held the same way until LCM makes its LCMMachine (200)
  or the wait runs out (404), if its Machine exists and the token opens that Machine.
- ``POST /lcm/v1/machines/<ns>/<name>/status``     item progress, hostname/IP, cordon ack
  or cordon failure
- ``POST /lcm/v1/machines/<ns>/<name>/heartbeat``  liveness only

HTTP rather than NATS subjects, because agents then need no NATS credentials at all and
every ``<prefix>.>`` subject already belongs to the event stream. A token opens exactly one
LCMMachine (checked before any wait; the Machine's own uid for a node whose LCMMachine is
yet to be made); an unknown machine is 404 (the agent waits for it), a wrong token 401.
The agent writes only ``status.hostname/ip/heartbeat/stateItems/cordoned/
cordonError``; what the LCMMachine controller derives from those (phase, release, the
ItemsReady/Cordon conditions and Ready, by the controller's own functions) rides along in
the same write, and Heartbeat stays with the controller. Details also carry the secrets the
machine's items name by reference (its cluster's MKE join token, derived from the uid of
the LCMCluster owning the LCMMachine), so no secret is ever stored or published.

Cheap per agent, so one process serves thousands: held GETs wait on the region's
LCMMachine change events (``services.lcm.changes``), not on store polling, and liveness
(a heartbeat, or a details GET of an agent that has reported before) renews the node's
lease (``services.lcm.leases``) at most once per ``heartbeat_write_interval`` - a KV put
that wakes no controller. ``status.heartbeat`` is written only once the stored one is
``heartbeat_status_interval`` old, or ``heartbeat_write_interval`` old while the
controller does not call the node alive (so a node that comes back is seen at once).
Status reports always write.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from pathlib import Path

import msgspec
from aiohttp import web

from services.lcm.changes import ChangeHub, Key
from services.lcm.clock import age, stamp
from services.lcm.config import LCMSettings
from services.lcm.items import item_hash, ordered
from services.lcm.lcmmachine import HEARTBEAT, derive
from services.lcm.leases import NodeLeases, key_of, node_leases
from services.lcm.tokens import JOIN_TOKEN_REF, join_token, verify
from services.lcm.wire import MAX_WAIT, AgentReport, DetailItem, ErrorBody, MachineDetails
from shared.bus import Bus
from shared.httpmetrics import RequestMetrics
from shared.models import LCMMachine, Machine, copy
from shared.runtime import conditions as cond
from shared.runtime import update_status
from shared.store import NotFound, Store
from shared.tasks import cancel_all, ignore_outcome
from shared.tls import ServingCert
from shared.webserve import start_site

log = logging.getLogger(__name__)


@web.middleware
async def _client_gone(request: web.Request, handler) -> web.StreamResponse:  # noqa: ANN001
    """An agent that gave up (its timeout, or its node went away) mid-request is routine at
    scale: one line at debug level, not aiohttp's traceback at error level per request."""
    try:
        return await handler(request)
    except ConnectionResetError:
        log.debug("%s %s: the agent went away", request.method, request.path)
        return web.Response(status=499)  # nginx's "client closed request"; nobody reads it


def _held(request: web.Request) -> bool:
    """A details GET that may wait for a change: its time is the wait, not the work."""
    try:
        return wait_param(request.query.get("wait")) > 0
    except ValueError:
        return False


# What thousands of nodes ask of the region, by route and answer (the service's /metrics).
ENDPOINT_METRICS = RequestMetrics("ccloud_lcm_endpoint", "LCM agent endpoint", held=_held)

_enc = msgspec.json.Encoder()
_report = msgspec.json.Decoder(AgentReport)
MAX_BODY = 1 << 20
STALE_RETRY = 0.1  # re-read delay while the store answers older than a change event named


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=_enc.encode(obj), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(ErrorBody(error=message), status)


def wait_param(raw: str | None) -> float:
    """Seconds to hold a conditional GET: absent is 0, more than ``MAX_WAIT`` is cut."""
    if raw is None or raw == "":
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or wait < 0:
        raise ValueError(f"wait must be a number of seconds >= 0, got {raw[:40]!r}")
    return min(wait, MAX_WAIT)


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` semantics (weak comparison): a listed tag or ``*`` matches."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def details_of(
    lm: LCMMachine, settings: LCMSettings, secret: bytes | None = None
) -> MachineDetails:
    """What the agent gets; with ``secret``, the secrets its items reference, resolved."""
    secrets: dict[str, str] = {}
    lcc = next((o for o in lm.metadata.owner_references if o.kind == "LCMCluster"), None)
    if secret is not None and lcc is not None and lcc.uid:
        secrets[JOIN_TOKEN_REF] = join_token(secret, lcc.uid)
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
        progress_interval=settings.progress_interval,
        secrets=secrets,
    )


class Endpoint:
    """aiohttp server component (``start``/``stop``); ``port`` is known after start.

    ``region`` selects the LCMMachine change events held GETs wake on (None: all regions).
    """

    def __init__(
        self, store: Store, secret: bytes, settings: LCMSettings, *, bus: Bus,
        region: str | None, leases: NodeLeases | None = None,
    ) -> None:
        self.store = store
        self._secret = secret
        self.settings = settings
        self.port = settings.port
        self.changes = ChangeHub(
            bus.nc, bus.subject(region or "*", LCMMachine.KIND), on_deleted=self._forget
        )
        self.leases = leases or node_leases(bus, settings)
        # (namespace, name) -> monotonic time of this process's last heartbeat write
        self._written: dict[Key, float] = {}
        # (namespace, name) -> (monotonic time of this process's last renewal, lease key)
        self._renewed: dict[Key, tuple[float, str]] = {}
        self._drops: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        # Read before anything starts: a missing certificate stops the service at once.
        self._cert = ServingCert(Path(settings.tls_cert_dir)) if settings.tls_cert_dir else None
        self._cert_watch: asyncio.Task[None] | None = None
        self.app = web.Application(client_max_size=MAX_BODY,
                                   middlewares=[ENDPOINT_METRICS.middleware, _client_gone])
        base = "/lcm/v1/machines/{ns}/{name}"
        self.app.router.add_get(base, self.get_details)
        self.app.router.add_post(base + "/status", self.post_status)
        self.app.router.add_post(base + "/heartbeat", self.post_heartbeat)
        self.app.router.add_get("/healthz", self.healthz)

    @property
    def url(self) -> str:
        scheme = "https" if self._cert is not None else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        await self.changes.start()
        self._runner, self.port = await start_site(
            self.app, self.settings.host, self.settings.port,
            ssl_context=self._cert.context if self._cert else None)
        if self._cert is not None:
            self._cert_watch = asyncio.create_task(self._cert.watch(), name="lcm-cert-watch")
        log.info("lcm endpoint on %s", self.url)

    async def stop(self) -> None:
        await self.changes.stop()  # held GETs answer now instead of holding the shutdown
        await cancel_all(self._drops)
        if self._cert_watch is not None:
            await cancel_all([self._cert_watch])
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _forget(self, key: Key) -> None:
        self._written.pop(key, None)
        renewed = self._renewed.pop(key, None)
        if renewed is not None:  # the TTL would drop it later; the view holds it till then
            drop = asyncio.create_task(self.leases.drop(renewed[1]))
            self._drops.add(drop)
            drop.add_done_callback(self._drops.discard)
            drop.add_done_callback(ignore_outcome)

    @staticmethod
    def _token(request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else ""

    async def _load(self, request: web.Request, token: str) -> LCMMachine | web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            lm = await self.store.get(LCMMachine, name, ns)
        except NotFound:
            return _error(404, f"LCMMachine {ns}/{name} not found")
        if not verify(self._secret, lm.spec.machine_uid, token):
            log.warning("lcm endpoint: bad token for %s/%s from %s", ns, name, request.remote)
            return _error(401, "invalid token for this machine")
        return lm

    async def _machine(self, request: web.Request, *, cached: bool = False
                       ) -> LCMMachine | web.Response:
        """The LCMMachine the request names, if its token opens it. ``cached``: from the
        store's cache where this process keeps one (shared: look, do not change) - a
        heartbeat only looks, and every agent sends one every few seconds."""
        token = self._token(request)
        if not token:
            return _error(401, "missing bearer token")
        if cached:
            lm = self.store.cached(LCMMachine, request.match_info["name"],
                                   request.match_info["ns"], at_least=0, shared=True)
            # Not cached, or not this token's machine (a re-created one the cache has not
            # seen yet): the store decides.
            if lm is not None and verify(self._secret, lm.spec.machine_uid, token):
                return lm
        return await self._load(request, token)

    async def _expected(self, request: web.Request) -> bool:
        """The Machine the request names exists and its token opens it: its LCMMachine is
        still to be made (both share the name; the token is the Machine's uid, signed)."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        machine = self.store.cached(Machine, name, ns, at_least=0, shared=True)
        if machine is None:
            try:
                machine = await self.store.get(Machine, name, ns)
            except NotFound:
                return False
        return verify(self._secret, machine.metadata.uid or "", self._token(request))

    def _encode(self, lm: LCMMachine) -> tuple[bytes, str]:
        body = _enc.encode(details_of(lm, self.settings, self._secret))
        return body, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'

    async def get_details(self, request: web.Request) -> web.Response:
        try:
            wait = wait_param(request.query.get("wait"))
        except ValueError as e:
            return _error(400, str(e))
        inm = request.headers.get("If-None-Match", "")
        key = (request.match_info["ns"], request.match_info["name"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # Registered before the first read, so no change slips in between read and wait.
        with self.changes.watch(key) as waiter:
            lm = await self._machine(request)
            # A node that boots before LCM made its LCMMachine (a worker waits for its
            # cluster's manager) is held until it is made, as a known one is until its
            # details change - if its Machine is there and the token is that Machine's.
            while (isinstance(lm, web.Response) and lm.status == 404 and not self.changes.closed
                   and (remaining := deadline - loop.time()) > 0
                   and await self._expected(request)):
                await waiter.wait(remaining)  # any event of the name wakes it (no uid seen)
                lm = await self._machine(request)
            if isinstance(lm, web.Response):
                return lm
            try:
                # An agent that has never reported is about to (its first pass reports
                # within the progress interval), and that report carries the heartbeat:
                # one here would be a store write and two reconciles per node for nothing.
                if lm.status.heartbeat:
                    await self._alive(lm)
            except NotFound:
                return _error(404, "machine is gone")
            except Exception as e:  # a lost sign of life is not worth failing the GET
                log.info("lcm endpoint: heartbeat of %s/%s not recorded: %s", *key, e)
            while True:
                body, etag = self._encode(lm)
                if not inm or not etag_matches(inm, etag):
                    return web.Response(body=body, content_type="application/json",
                                        headers={"ETag": etag})
                remaining = deadline - loop.time()
                if remaining <= 0 or self.changes.closed:
                    return web.Response(status=304, headers={"ETag": etag})
                waiter.seen(lm.metadata.uid or "", lm.metadata.generation)
                await waiter.wait(min(remaining, STALE_RETRY) if waiter.behind else remaining)
                # Woken by a change, or the wait ran out: then this is the safety re-check.
                lm = await self._load(request, self._token(request))
                if isinstance(lm, web.Response):
                    return lm

    async def _alive(self, lm: LCMMachine) -> None:
        """Record a sign of life: renew the lease, or write status.heartbeat when due."""
        key = (lm.metadata.namespace or "", lm.metadata.name)
        now = time.monotonic()
        if cond.is_true(lm.status, HEARTBEAT):
            every = self.settings.heartbeat_status_interval
        else:  # missing or not yet seen by the controller: only a write wakes it
            every = self.settings.heartbeat_write_interval
        if not await self._write_heartbeat(lm, key, every, now):
            await self._renew(lm, key, now)

    async def _renew(self, lm: LCMMachine, key: Key, now: float) -> None:
        last, _ = self._renewed.get(key, (-math.inf, ""))
        if now - last < self.settings.heartbeat_write_interval:
            return
        self._renewed[key] = (now, key_of(lm))
        try:
            await self.leases.renew(lm)
        except BaseException:
            self._renewed.pop(key, None)
            raise

    async def _write_heartbeat(self, lm: LCMMachine, key: Key, every: float, now: float) -> bool:
        """Write status.heartbeat if the stored one is ``every`` old; True if written."""
        if now - self._written.get(key, -math.inf) < every:
            return False
        stored = age(lm.status.heartbeat)
        if stored is not None and stored < every:
            self._written[key] = now - max(stored, 0.0)
            return False

        def mutate(obj: LCMMachine) -> None:
            seen = age(obj.status.heartbeat)
            if seen is None or seen >= every:  # a conflict's fresh copy may already be new
                obj.status.heartbeat = stamp()

        self._written[key] = now
        try:
            # On a private copy: ``lm`` may be the store cache's own object (a stale
            # version is a conflict, which update_status answers with a fresh read).
            await update_status(self.store, copy(lm), mutate)
        except BaseException:
            self._written.pop(key, None)
            raise
        return True

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
            if report.cordon_error is not None:
                st.cordon_error = report.cordon_error
            known = {i.name for i in obj.spec.state_items}
            items = {k: v for k, v in st.state_items.items() if k in known}
            items.update({k: v for k, v in report.items.items() if k in known})
            st.state_items = items
            st.heartbeat = stamp()
            # What the LCMMachine controller derives from the report rides along (the
            # report itself is a sign of life), so its reconcile writes nothing more.
            derive(obj, 0.0, self.settings.heartbeat_timeout)

        try:
            await update_status(self.store, lm, mutate)
        except NotFound:
            return _error(404, "machine is gone")
        self._written[(lm.metadata.namespace or "", lm.metadata.name)] = time.monotonic()
        return web.Response(status=204)

    async def post_heartbeat(self, request: web.Request) -> web.Response:
        lm = await self._machine(request, cached=True)
        if isinstance(lm, web.Response):
            return lm
        try:
            await self._alive(lm)
        except NotFound:
            return _error(404, "machine is gone")
        except Exception as e:  # the agent retries: a heartbeat not recorded must not pass
            log.warning("lcm endpoint: heartbeat of %s/%s not recorded: %s",
                        lm.metadata.namespace, lm.metadata.name, e)
            return _error(503, f"heartbeat not recorded: {e}")
        return web.Response(status=204)
