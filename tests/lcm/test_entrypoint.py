"""``python -m services.lcm`` as its own process: controllers and endpoint serve a real agent."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from nats.aio.client import Client as NATS

from services.lcm.tokens import machine_token
from services.release.defaults import ensure_default_releases
from shared.models import Cluster, ClusterSpec, Machine, MachineSpec, ObjectMeta
from shared.natsserver import NatsServer, free_port
from shared.runtime import conditions as cond
from tests.harness import system
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
SECRET = "entrypoint-secret"


async def test_service_and_agent_processes(
    nats_server: NatsServer, nc: NATS, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ, "CCLOUD_NATS_URL": nats_server.url, "CCLOUD_PREFIX": prefix,
        "CCLOUD_DATA_DIR": str(tmp_path / "data"), "CCLOUD_LEASE_SECONDS": "2",
        "CCLOUD_LCM_PORT": str(port), "CCLOUD_LCM_SECRET": SECRET,
        "CCLOUD_LCM_HEARTBEAT_INTERVAL": "0.5", "CCLOUD_LCM_POLL_INTERVAL": "0.2",
    }
    svc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.lcm", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    agent: asyncio.subprocess.Process | None = None
    url = f"http://127.0.0.1:{port}"
    try:
        async with system(nc, prefix) as h, aiohttp.ClientSession() as session:
            async def up() -> bool:
                assert svc.returncode is None, "lcm service exited early"
                try:
                    async with session.get(url + "/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(up, timeout=20, what="lcm endpoint")
            await ensure_default_releases(h.store)
            await h.store.create(Cluster(
                metadata=ObjectMeta(name="ep", namespace="default"),
                spec=ClusterSpec(region="local", provider="simulated", release="mke-3-7-1"),
            ))
            m = await h.store.create(Machine(
                metadata=ObjectMeta(name="ep-cp0", namespace="default"),
                spec=MachineSpec(cluster="ep", role="control-plane", region="local"),
            ))
            assert m.metadata.uid
            agent = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.lcm.agent", "--endpoint", url,
                "--machine", "default/ep-cp0", "--root", str(tmp_path / "node"),
                "--token", machine_token(SECRET, m.metadata.uid),
                cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )

            async def ready() -> bool:
                c = await h.store.get(Cluster, "ep", "default")
                return cond.is_true(c.status, "Ready")

            await eventually(ready, timeout=40, what="cluster Ready via the service")
            assert (tmp_path / "node/etc/ccloud/mke").read_text().split() == ["manager", "3.7.1"]
    finally:
        if agent is not None:
            agent.terminate()
            await asyncio.wait_for(agent.wait(), 10)
        if svc.returncode is None:
            svc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(svc.communicate(), 20)
    assert svc.returncode == 0, out.decode()[-2000:]
    assert SECRET not in out.decode()
