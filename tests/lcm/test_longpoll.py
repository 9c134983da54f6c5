"""The agent endpoint is cheap per agent: long-polled details woken by bus change events,
heartbeats of a live node renewing its lease (not the store) at most once per write
interval, and written to the store only when due or when the node was not called alive.

Runs the endpoint alone (no LCM controllers) against a store + bus + bridge, with one
LCMMachine written by the test; the agent tests run the real agent loop in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY

from services.lcm.agent.client import AgentClient
from services.lcm.agent.executor import NodeRootExecutor
from services.lcm.agent.runner import Agent
from services.lcm.changes import Waiter
from services.lcm.clock import age, stamp
from services.lcm.config import LCMSettings
from services.lcm.endpoint import Endpoint, wait_param
from services.lcm.items import item_hash
from services.lcm.lcmmachine import HEARTBEAT, ITEMS_READY, LCMMachineReconciler
from services.lcm.leases import LeaseView
from services.lcm.tokens import machine_token
from services.lcm.wire import MAX_WAIT
from shared.bus import ChangeEvent
from shared.models import (
    LCMMachine,
    LCMMachineSpec,
    Machine,
    MachineSpec,
    ObjectMeta,
    StateItem,
    encode,
)
from shared.runtime import Request, update_status
from shared.runtime import conditions as cond
from shared.store import Store
from tests.harness import Harness, system
from tests.lcm.conftest import NS, REGION, SECRET
from tests.waiting import eventually

NAME = "lp-0"
UID = "machine-uid-lp-0"
TOKEN = machine_token(SECRET, UID)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class CountingStore:
    """The harness store, counting the reads and status writes that reach it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.status_writes = 0
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        self.gets += 1
        return await self._store.get(*args, **kwargs)

    async def update_status(self, obj: Any) -> Any:
        self.status_writes += 1
        return await self._store.update_status(obj)


@dataclass
class Bare:
    h: Harness
    ep: Endpoint
    store: CountingStore
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"{self.ep.url}/lcm/v1/machines/{NS}/{NAME}"

    async def lm(self) -> LCMMachine:
        return await self.h.store.get(LCMMachine, NAME, NS)

    async def get(self, *, wait: str | None = None, etag: str = "",
                  headers: dict[str, str] | None = None) -> tuple[int, bytes, str, float]:
        """(status, body, ETag, seconds taken) of a details GET."""
        hdrs = dict(AUTH if headers is None else headers)
        if etag:
            hdrs["If-None-Match"] = etag
        params = {"wait": wait} if wait is not None else None
        t0 = time.monotonic()
        async with self.http.get(self.url, params=params, headers=hdrs) as r:
            return r.status, await r.read(), r.headers.get("ETag", ""), time.monotonic() - t0

    async def held(self) -> bool:
        return self.ep.changes.waiting((NS, NAME)) == 1

    async def edit_spec(self, mutate: Any) -> None:
        lm = await self.lm()
        mutate(lm.spec)
        await self.h.store.update(lm)


def file_item(name: str) -> StateItem:
    return StateItem(name=name, phase="prepare", version="1", runner="file",
                     params={"path": f"etc/test/{name}", "content": name})


@pytest.fixture
async def bare(nc: NATS, prefix: str) -> AsyncIterator[Bare]:
    settings = LCMSettings(host="127.0.0.1", port=0, heartbeat_interval=0.3,
                           heartbeat_timeout=3.0, poll_interval=0.2)
    async with system(nc, prefix) as h:
        store = CountingStore(h.store)
        ep = Endpoint(store, SECRET, settings, bus=h.bus, region=REGION)  # type: ignore[arg-type]
        await ep.start()
        await h.store.create(LCMMachine(
            metadata=ObjectMeta(name=NAME, namespace=NS),
            spec=LCMMachineSpec(cluster="lp", machine=NAME, region=REGION, release="r1",
                                state_items=[file_item("one")], machine_uid=UID),
        ))
        try:
            async with aiohttp.ClientSession() as http:
                yield Bare(h, ep, store, http)
        finally:
            await ep.stop()


async def within(aw: Awaitable[Any], seconds: float) -> Any:
    return await asyncio.wait_for(aw, seconds)


async def test_long_poll_answers_at_once_when_the_spec_changes(bare: Bare) -> None:
    status, body, etag, _ = await bare.get()
    assert status == 200 and etag and b'"cordoned":false' in body
    status, _, same, took = await bare.get(etag=etag)  # no wait: a plain conditional GET
    assert (status, same) == (304, etag) and took < 5

    poll = asyncio.create_task(bare.get(wait="30", etag=etag))
    await eventually(bare.held, what="request held")
    await bare.edit_spec(lambda spec: setattr(spec, "cordoned", True))
    status, body, new, took = await within(poll, 10)
    assert status == 200 and new != etag and b'"cordoned":true' in body
    assert took < 10  # woken by the change event, not by the 30 s wait
    assert bare.ep.changes.waiting((NS, NAME)) == 0


async def test_long_poll_without_a_change_is_304_after_the_wait(bare: Bare) -> None:
    _, _, etag, _ = await bare.get()
    poll = asyncio.create_task(bare.get(wait="1.5", etag=etag))
    await eventually(bare.held, what="request held")
    # a status write (an event of its own) is no change of the details
    await update_status(bare.h.store, await bare.lm(),
                        lambda lm: setattr(lm.status, "hostname", "node-lp"))
    status, body, same, took = await within(poll, 10)
    assert (status, body, same) == (304, b"", etag)
    assert 1.4 <= took < 10


@pytest.mark.parametrize("wait", ["soon", "-1", "nan", "inf", "1e999"])
async def test_bad_wait_is_400_with_a_reason(bare: Bare, wait: str) -> None:
    _, _, etag, _ = await bare.get()
    status, body, _, _ = await bare.get(wait=wait, etag=etag)
    assert status == 400 and b"wait must be a number of seconds" in body


def test_wait_is_cut_to_the_maximum() -> None:
    assert wait_param(None) == 0.0 and wait_param("2.5") == 2.5
    assert wait_param("3600") == MAX_WAIT


def event(type_: str, uid: str, generation: int) -> ChangeEvent:
    return ChangeEvent(id="x", type=type_, kind="LCMMachine", name=NAME, namespace=NS,  # type: ignore[arg-type]
                       uid=uid, resource_version="1", generation=generation, region=REGION,
                       time="")


async def test_waiter_wakes_only_for_what_may_change_the_spec() -> None:
    w = Waiter()
    w.seen("u1", 2)
    w.notify(event("MODIFIED", "u1", 2))  # a status write
    assert not await w.wait(0) and not w.behind
    w.notify(event("MODIFIED", "u1", 3))  # a spec write
    assert await w.wait(0) and w.behind  # until a re-read shows generation 3
    w.seen("u1", 3)
    assert not w.behind
    for ev in (event("DELETED", "u1", 3), event("ADDED", "u2", 1), None):
        w.notify(ev)
        assert await w.wait(0)
    assert not await w.wait(0.01)


async def test_bad_token_or_unknown_machine_is_refused_before_waiting(bare: Bare) -> None:
    _, _, etag, _ = await bare.get()
    status, _, _, took = await bare.get(
        wait="30", etag=etag, headers={"Authorization": "Bearer " + "0" * 64})
    assert status == 401 and took < 10
    status, _, _, took = await bare.get(wait="30", etag=etag, headers={})
    assert status == 401 and took < 10
    async with bare.http.get(bare.url + "x", params={"wait": "30"},
                             headers={**AUTH, "If-None-Match": etag}) as r:
        assert r.status == 404
    assert bare.ep.changes.waiting((NS, NAME)) == 0


def _served(route: str, method: str, code: str) -> float:
    return REGISTRY.get_sample_value("ccloud_lcm_endpoint_requests_total",
                                     {"route": route, "method": method, "code": code}) or 0.0


def _timed(route: str, method: str) -> float:
    return REGISTRY.get_sample_value("ccloud_lcm_endpoint_request_duration_seconds_count",
                                     {"route": route, "method": method}) or 0.0


async def test_requests_are_counted_by_route_and_answer_and_held_ones_not_timed(
    bare: Bare,
) -> None:
    """What thousands of nodes ask of the region is visible on LCM's /metrics: per route
    pattern (never a machine's path) and code; a long-poll's time is its wait, so it is
    counted but kept out of the latency."""
    details = "/lcm/v1/machines/{ns}/{name}"
    before = {c: _served(details, "GET", c) for c in ("200", "304", "401")}
    timed, beats = _timed(details, "GET"), _served(details + "/heartbeat", "POST", "204")
    _, _, etag, _ = await bare.get()
    assert (await bare.get(etag=etag))[0] == 304
    assert (await bare.get(headers={}))[0] == 401
    status, _, _, took = await bare.get(wait="1", etag=etag)
    assert status == 304 and took >= 0.9
    await _beat(bare)
    assert {c: _served(details, "GET", c) - n for c, n in before.items()} == {
        "200": 1, "304": 2, "401": 1}
    assert _timed(details, "GET") - timed == 3  # the held GET is not among them
    assert _served(details + "/heartbeat", "POST", "204") - beats == 1
    assert _served(f"/lcm/v1/machines/{NS}/{NAME}", "GET", "200") == 0


async def test_heartbeats_write_the_store_once_per_write_interval(bare: Bare) -> None:
    every = bare.ep.settings.heartbeat_write_interval
    assert (await bare.lm()).status.heartbeat == ""
    t0 = time.monotonic()
    for _ in range(10):
        async with bare.http.post(bare.url + "/heartbeat", headers=AUTH, data=b"{}") as r:
            assert r.status == 204
    await bare.get()  # a details GET is a sign of life too, under the same rule
    # 11 signs of life, one write per started interval (on any sane machine: exactly one)
    assert 1 <= bare.store.status_writes <= 1 + int((time.monotonic() - t0) / every)
    first = (await bare.lm()).status.heartbeat
    assert first and (age(first) or 0.0) < every

    async def written_again() -> bool:
        async with bare.http.post(bare.url + "/heartbeat", headers=AUTH, data=b"{}") as r:
            assert r.status == 204
        return (await bare.lm()).status.heartbeat != first

    await eventually(written_again, timeout=10, interval=0.1, what="next heartbeat write")
    assert time.monotonic() - t0 >= every * 0.9

    # item progress is not throttled
    before = bare.store.status_writes
    async with bare.http.post(bare.url + "/status", headers=AUTH,
                              data=b'{"hostname": "node-lp"}') as r:
        assert r.status == 204
    assert bare.store.status_writes == before + 1


async def _heartbeat_condition(bare: Bare, alive: bool, heartbeat: str) -> str:
    """Set what the LCMMachine controller would have concluded; the stored heartbeat."""
    def mutate(obj: LCMMachine) -> None:
        obj.status.heartbeat = heartbeat
        if alive:
            cond.mark_true(obj.status, HEARTBEAT, "AgentAlive")
        else:
            cond.mark_false(obj.status, HEARTBEAT, "HeartbeatMissing", "gone", "Error")
    await update_status(bare.h.store, await bare.lm(), mutate)
    return heartbeat


async def _beat(bare: Bare) -> None:
    async with bare.http.post(bare.url + "/heartbeat", headers=AUTH, data=b"{}") as r:
        assert r.status == 204


async def test_heartbeats_of_a_live_node_renew_its_lease_not_the_store(bare: Bare) -> None:
    every = bare.ep.settings.heartbeat_write_interval
    written = await _heartbeat_condition(bare, True, stamp())
    view = LeaseView(bare.ep.leases, REGION)
    await view.start()
    try:
        lm = await bare.lm()
        assert view.renewed(lm) == ""
        before = bare.store.status_writes
        t0 = time.monotonic()
        for _ in range(5):
            await _beat(bare)
        await bare.get()  # a details GET of a node that has reported is a sign of life too
        first = await eventually(lambda: view.renewed(lm), what="lease renewed")
        assert (age(first) or 0.0) < every
        assert bare.store.status_writes == before
        assert (await bare.lm()).status.heartbeat == written

        async def renewed_again() -> bool:
            await _beat(bare)
            return view.renewed(lm) != first

        await eventually(renewed_again, timeout=10, interval=0.1, what="next renewal")
        assert time.monotonic() - t0 >= every * 0.9  # not before the write interval
        assert bare.store.status_writes == before

        # The stored heartbeat still moves, once per status interval.
        bare.ep.settings.heartbeat_status_interval = 2 * every

        async def status_written() -> bool:
            await _beat(bare)
            return (await bare.lm()).status.heartbeat != written

        await eventually(status_written, timeout=10, interval=0.1, what="heartbeat in status")
        assert time.monotonic() - t0 >= 2 * every * 0.9
        assert bare.store.status_writes == before + 1
    finally:
        await view.stop()


async def test_heartbeats_read_the_machine_from_the_cache_where_there_is_one(
    bare: Bare,
) -> None:
    await _heartbeat_condition(bare, True, stamp())
    await bare.h.store.list_all(LCMMachine)  # this process now keeps the kind in memory

    def cached_alive() -> bool:
        lm = bare.h.store.cached(LCMMachine, NAME, NS, at_least=0, shared=True)
        return lm is not None and cond.is_true(lm.status, HEARTBEAT)

    await eventually(cached_alive, what="the cache holding the live machine")
    before = bare.store.gets
    for _ in range(5):
        await _beat(bare)
    assert bare.store.gets == before  # a heartbeat per node every few seconds: no read
    # A token the cached copy does not open is for the store to judge (a re-created
    # machine the cache has not seen yet would be opened there).
    bad = {"Authorization": f"Bearer {machine_token(SECRET, 'another-uid')}"}
    async with bare.http.post(bare.url + "/heartbeat", headers=bad, data=b"{}") as r:
        assert r.status == 401
    assert bare.store.gets == before + 1


async def test_a_heartbeat_written_from_the_cache_leaves_the_cached_object_alone(
    bare: Bare,
) -> None:
    old = await _heartbeat_condition(bare, False, "2026-01-01T00:00:00.000Z")
    await bare.h.store.list_all(LCMMachine)

    def cached() -> LCMMachine | None:
        lm = bare.h.store.cached(LCMMachine, NAME, NS, at_least=0, shared=True)
        return lm if lm is not None and lm.status.heartbeat == old else None

    shared = await eventually(cached, what="the cache holding the missing machine")
    before = encode(shared)
    await _beat(bare)  # a node called missing: written at once, from the cached copy
    assert (await bare.lm()).status.heartbeat != old
    assert encode(shared) == before, "the store cache's own object was changed in place"


class _LeasesDown:
    """A lease bucket that cannot be reached (nats-py's timeout, as when JetStream is down)."""

    async def renew(self, lm: LCMMachine) -> None:
        raise nats.errors.TimeoutError

    async def drop(self, key: str) -> None:
        raise nats.errors.TimeoutError


async def test_a_heartbeat_that_cannot_renew_the_lease_fails_and_details_still_answer(
    bare: Bare,
) -> None:
    await _heartbeat_condition(bare, True, stamp())
    bare.ep.leases = _LeasesDown()  # type: ignore[assignment]
    async with bare.http.post(bare.url + "/heartbeat", headers=AUTH, data=b"{}") as r:
        assert r.status == 503  # the agent backs off and tries again
        assert "heartbeat not recorded" in (await r.json())["error"]
    status, body, _, _ = await bare.get()  # the sign of life is lost, not the details
    assert status == 200 and body


async def test_a_node_called_missing_is_written_back_at_once(bare: Bare) -> None:
    """Only a store write wakes the controller, so the first sign of life of a node it
    called missing goes to status.heartbeat, not to the lease."""
    old = await _heartbeat_condition(bare, False, "2026-01-01T00:00:00.000Z")
    before = bare.store.status_writes
    await _beat(bare)
    lm = await bare.lm()
    assert lm.status.heartbeat != old and (age(lm.status.heartbeat) or 0.0) < 5
    assert bare.store.status_writes == before + 1


async def test_details_of_a_machine_that_never_reported_write_nothing(bare: Bare) -> None:
    """The first GET of a new node is followed by its first report, which carries the
    heartbeat: the GET itself writes nothing. Once the node has reported (and so is alive),
    a GET is a sign of life that renews its lease."""
    for _ in range(3):
        status, _, _, _ = await bare.get()
        assert status == 200
    assert bare.store.status_writes == 0 and (await bare.lm()).status.heartbeat == ""

    async with bare.http.post(bare.url + "/status", headers=AUTH,
                              data=b'{"hostname": "node-lp"}') as r:
        assert r.status == 204
    lm = await bare.lm()
    assert lm.status.heartbeat and bare.store.status_writes == 1
    assert cond.is_true(lm.status, HEARTBEAT)  # the report is a sign of life

    view = LeaseView(bare.ep.leases, REGION)
    await view.start()
    try:
        async def renewed_by_get() -> bool:
            await bare.get()
            return bool(view.renewed(lm))

        await eventually(renewed_by_get, timeout=10, interval=0.1, what="lease from a GET")
        assert bare.store.status_writes == 1
    finally:
        await view.stop()


async def test_a_progress_report_is_one_write_the_controller_adds_nothing_to(
    bare: Bare,
) -> None:
    """The controller's derivation (phase, ItemsReady, Heartbeat - a report is a sign of
    life - and Ready) rides on the report's own write; the reconcile it wakes finds
    nothing to change, the node's first report included."""
    items = [file_item("one"), file_item("two")]
    await bare.edit_spec(lambda spec: setattr(spec, "state_items", items))
    reconciler = LCMMachineReconciler(bare.store, heartbeat_timeout=3.0)  # type: ignore[arg-type]
    request = Request(NAME, NS)

    async def report(body: str) -> LCMMachine:
        async with bare.http.post(bare.url + "/status", headers=AUTH, data=body) as r:
            assert r.status == 204
        return await bare.lm()

    await reconciler.reconcile(request)  # as on creation, long before an agent reports
    first = await report('{"hostname": "node-lp"}')
    assert first.status.phase and cond.get(first.status, ITEMS_READY) is not None
    assert cond.is_true(first.status, HEARTBEAT)
    writes = bare.store.status_writes
    await reconciler.reconcile(request)
    assert bare.store.status_writes == writes
    assert (await bare.lm()).metadata.resource_version == first.metadata.resource_version

    one_done = f'{{"items": {{"one": {{"hash": "{item_hash(items[0])}", "state": "Done"}}}}}}'
    progressed = await report(one_done)  # one item of two finished
    ready = cond.get(progressed.status, ITEMS_READY)
    assert ready is not None and ready.message.startswith("1/2 items done, next two")
    summary = cond.get(progressed.status, cond.READY)
    assert summary is not None and summary.message == ready.message

    writes = bare.store.status_writes
    await reconciler.reconcile(request)
    after = await bare.lm()
    assert bare.store.status_writes == writes
    assert after.metadata.resource_version == progressed.metadata.resource_version


@contextlib.asynccontextmanager
async def agent(bare: Bare, root: Path, poll_interval: float, *, name: str = NAME,
                token: str = TOKEN) -> AsyncIterator[Agent]:
    client = AgentClient(bare.ep.url, NS, name, token)
    await client.start()
    a = Agent(client, NodeRootExecutor(root, hostname="node-lp"), root,
              poll_interval=poll_interval)
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    try:
        yield a
    finally:
        stop.set()
        await within(task, 10)  # a held poll does not delay the stop
        await client.close()


async def test_idle_agent_long_polls_and_sees_a_new_item_at_once(
    bare: Bare, tmp_path: Path
) -> None:
    root = tmp_path / "node"
    # A poll interval far beyond the test's patience: only a long-poll can be this quick.
    async with agent(bare, root, poll_interval=25.0):
        await eventually(lambda: (root / "etc/test/one").exists(), what="item one")
        await eventually(bare.held, what="idle agent long-polls")
        await bare.edit_spec(lambda spec: spec.state_items.append(file_item("two")))
        await eventually(lambda: (root / "etc/test/two").exists(), timeout=10,
                         what="new item applied")
        await eventually(bare.held, what="idle again")
        await bare.edit_spec(lambda spec: setattr(spec, "cordoned", True))

        async def cordoned() -> bool:
            return (await bare.lm()).status.cordoned

        await eventually(cordoned, timeout=10, what="cordon acknowledged")
        lm = await bare.lm()
        assert {k: v.state for k, v in lm.status.state_items.items()} == {
            "one": "Done", "two": "Done"}


async def test_failed_item_is_retried_on_time_while_long_polling(
    bare: Bare, tmp_path: Path
) -> None:
    root = tmp_path / "node"
    fail = root / "etc/ccloud/fail/one"
    fail.parent.mkdir(parents=True)
    fail.write_text("disk on fire")

    async def attempts() -> int:
        st = (await bare.lm()).status.state_items.get("one")
        return st.attempts if st and st.state == "Failed" else 0

    # backoff 0.6 s, 1.2 s, 2.4 s: from the second failure on the agent long-polls until
    # the retry is due
    async with agent(bare, root, poll_interval=0.6):
        await eventually(lambda: _ge(attempts, 2), timeout=10, what="second failure")
        await eventually(bare.held, timeout=5, what="long-poll during the backoff")
        fail.unlink()

        async def done() -> bool:
            st = (await bare.lm()).status.state_items.get("one")
            return st is not None and st.state == "Done"

        await eventually(done, timeout=8, what="retried and done")


async def _machine_without_node(bare: Bare, name: str) -> tuple[Machine, dict[str, str]]:
    """A Machine whose LCMMachine LCM has not made yet, and its node's credentials."""
    m = await bare.h.store.create(Machine(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=MachineSpec(cluster="lp", role="worker", region=REGION)))
    return m, {"Authorization": f"Bearer {machine_token(SECRET, m.metadata.uid or '')}"}


async def _make_lcm_machine(bare: Bare, m: Machine) -> None:
    await bare.h.store.create(LCMMachine(
        metadata=ObjectMeta(name=m.metadata.name, namespace=NS),
        spec=LCMMachineSpec(cluster="lp", machine=m.metadata.name, region=REGION, release="r1",
                            state_items=[file_item("one")], machine_uid=m.metadata.uid or "")))


async def test_a_node_booted_before_its_lcm_machine_is_held_until_it_is_made(
    bare: Bare,
) -> None:
    """A worker's node is up before LCM makes its LCMMachine (that waits for the cluster's
    manager): its held GET answers the moment it is made, not a poll interval later; a
    wait that runs out is still 404."""
    m, auth = await _machine_without_node(bare, "early-0")
    url = f"{bare.ep.url}/lcm/v1/machines/{NS}/early-0"
    key = (NS, "early-0")

    async def held() -> bool:
        return bare.ep.changes.waiting(key) == 1

    t0 = time.monotonic()
    async with bare.http.get(url, params={"wait": "1"}, headers=auth) as r:
        assert r.status == 404 and time.monotonic() - t0 >= 0.9
    async with bare.http.get(url, headers=auth) as r:  # no wait: 404 at once, as before
        assert r.status == 404

    async def fetch() -> tuple[int, bytes, float]:
        t = time.monotonic()
        async with bare.http.get(url, params={"wait": "30"}, headers=auth) as r:
            return r.status, await r.read(), time.monotonic() - t

    poll = asyncio.create_task(fetch())
    await eventually(held, what="request held")
    await _make_lcm_machine(bare, m)
    status, body, took = await within(poll, 10)
    assert status == 200 and b'"name":"one"' in body and took < 10
    assert bare.ep.changes.waiting(key) == 0


async def test_only_a_machine_that_exists_and_its_own_token_are_held(bare: Bare) -> None:
    """No Machine, or a token that is not that Machine's: 404 at once, whatever the wait -
    nobody holds the endpoint's connections for names it cannot check."""
    await _machine_without_node(bare, "early-1")
    for name, auth in (("nobody-0", AUTH), ("early-1", AUTH), ("early-1", {})):
        t0 = time.monotonic()
        async with bare.http.get(f"{bare.ep.url}/lcm/v1/machines/{NS}/{name}",
                                 params={"wait": "30"}, headers=auth) as r:
            assert r.status in (401, 404) and time.monotonic() - t0 < 10, (name, r.status)
        assert bare.ep.changes.waiting((NS, name)) == 0


async def test_an_agent_up_before_its_lcm_machine_starts_once_it_is_made(
    bare: Bare, tmp_path: Path
) -> None:
    m, auth = await _machine_without_node(bare, "early-2")
    token = auth["Authorization"].removeprefix("Bearer ")
    root = tmp_path / "node"
    # A poll interval far beyond the test's patience: only a held fetch can be this quick.
    async with agent(bare, root, poll_interval=25.0, name="early-2", token=token) as a:
        await eventually(lambda: bare.ep.changes.waiting((NS, "early-2")) == 1,
                         what="the unknown machine's first fetch held")
        assert a.unknown == 0, "no 404 before the LCMMachine is made"
        await _make_lcm_machine(bare, m)
        await eventually(lambda: (root / "etc/test/one").exists(), timeout=10,
                         what="item applied once the LCMMachine was made")


async def _ge(probe: Any, n: int) -> bool:
    return await probe() >= n


async def test_an_agent_gone_mid_request_is_a_debug_line_not_a_traceback(
    bare: Bare, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="services.lcm.endpoint")
    port = bare.ep.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # A status report whose body never arrives: the agent timed out and closed its socket.
    writer.write((f"POST /lcm/v1/machines/{NS}/{NAME}/status HTTP/1.1\r\n"
                  f"Host: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"host").encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    def noted() -> bool:
        return any("went away" in r.getMessage() for r in caplog.records)

    await eventually(noted, timeout=10, what="the endpoint noticed the agent left")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    status, _, _, _ = await bare.get()  # and it goes on serving
    assert status == 200
