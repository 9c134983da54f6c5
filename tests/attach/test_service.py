"""``python -m services.attach`` as a real process: it attaches a cluster of its region,
logs nothing secret, stops cleanly on SIGTERM, and refuses bad settings with a clear error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from nats.aio.client import Client as NATS

from shared.models import AttachedCluster
from shared.natsserver import NatsServer
from shared.runtime import conditions as cond
from tests.attach.conftest import REGION, TOKEN, attached, fetch, kubeconfig_text, leaks
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.harness import system
from tests.waiting import eventually


def env(nats_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return os.environ | {
        "CCLOUD_NATS_URL": nats_url, "CCLOUD_PREFIX": prefix, "CCLOUD_REGION": REGION,
        "CCLOUD_LEADER_ELECTION": "false", "CCLOUD_HEALTH_PORT": "0",
        "CCLOUD_LOG_LEVEL": "debug",
    } | extra


async def test_the_service_attaches_and_stops_cleanly(
    nc: NATS, prefix: str, nats_server: NatsServer, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    log = tmp_path / "attach.log"
    async with system(nc, prefix) as h:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.attach",
                env=env(nats_server.url, prefix), stdout=out, stderr=subprocess.STDOUT,
            )
            try:
                await h.store.create(attached("mke", kube.url, kubeconfig_text(kube, tmp_path)))

                async def ready() -> AttachedCluster | None:
                    obj = await fetch(h.store, "mke")
                    return obj if cond.is_true(obj.status, cond.READY) else None

                obj = await eventually(ready, timeout=20, what="Ready from the service")
                assert obj.status.kubernetes_version == "v1.27.7"
            finally:
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "attached cluster default/mke: Ready=True (Ready)" in text
    assert not leaks(text, TOKEN)


async def test_bad_settings_are_refused_without_a_traceback(tmp_path: Path) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.attach"],
        env=env("nats://127.0.0.1:1", "x", CCLOUD_ATTACH_PROBE_TIMEOUT="soon"),
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0
    assert "invalid CCLOUD_ATTACH_PROBE_TIMEOUT 'soon': not a number" in done.stderr
    assert "Traceback" not in done.stderr
