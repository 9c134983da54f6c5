"""Every service's probes and metrics, served by shared.service around real components."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from shared.config import Settings
from shared.models import ObjectMeta, Region
from shared.runtime import Controller, Request
from shared.service import Parts, Runtime, serve
from tests.waiting import eventually


async def test_service_serves_probes_and_reconcile_metrics(nats_server, prefix):
    seen: list[str] = []
    runtime: list[Runtime] = []

    class Recorder:
        async def reconcile(self, req: Request) -> None:
            seen.append(req.name)

    async def build(rt: Runtime) -> Parts:
        runtime.append(rt)
        ctl = Controller(name="probe-demo", kind=Region, reconciler=Recorder(), store=rt.store,
                         bus=rt.bus, region=None)
        return Parts(leader=[ctl])

    stop = asyncio.Event()
    settings = Settings(nats_url=nats_server.url, prefix=prefix, lease_seconds=2.0)
    task = asyncio.create_task(serve("probe-demo", build, settings, stop=stop))
    try:
        await eventually(lambda: runtime, what="service built")
        rt = runtime[0]
        await rt.store.create(Region(metadata=ObjectMeta(name="r1")))
        await eventually(lambda: "r1" in seen, what="reconcile of r1")
        # The controller runs now (r1 may have come by resync); r2 can only come by event.
        await rt.store.create(Region(metadata=ObjectMeta(name="r2")))
        await eventually(lambda: "r2" in seen, what="reconcile of r2")
        base = f"http://127.0.0.1:{rt.health.port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with s.get(f"{base}/readyz") as r:
                assert r.status == 200, await r.text()
            async with s.get(f"{base}/metrics") as r:
                text = await r.text()
        assert 'ccloud_reconciles_total{controller="probe-demo",result="success"}' in text
        assert 'ccloud_reconcile_duration_seconds_count{controller="probe-demo"}' in text
        assert 'ccloud_workqueue_depth{controller="probe-demo"}' in text
        assert 'ccloud_events_out_total{kind="Region",service="probe-demo"}' in text
        assert 'ccloud_events_in_total{kind="Region",service="probe-demo"}' in text
        assert 'ccloud_leader{lease="probe-demo-local"} 1.0' in text

        # NATS gone: the readiness probe says so (liveness still answers).
        await rt.nc.close()
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/readyz") as r:
                assert r.status == 503 and "nats" in await r.text()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)
