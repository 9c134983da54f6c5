"""End to end: the console drives the real local default (``ccloud up``) to a Ready cluster.

Nothing is played by the test here: the local runner starts nats-server, the store, the
release service, LCM, the simulated provider with its agents and the gateway as separate
processes; the browser creates a cluster through the wizard and waits for the live page to
say Ready. The test skips, naming what is missing, until every service it needs can run.

The cluster runs on the local region's bare-metal hosts, as ``examples/`` does. A
screenshot is saved either way (``test-artifacts/ui/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from shared.natsserver import free_port
from tests.ui.conftest import needs_chromium, screenshot
from tests.waiting import eventually

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect

# What a simulated cluster needs to reach Ready on the local default.
NEEDED = (
    "services.bridge",
    "services.release",
    "services.lcm",
    "services.providers.baremetal",
    "services.api",
)
READY_TIMEOUT_S = 300
REPO = Path(__file__).resolve().parents[2]


def _missing_services() -> str:
    try:
        import services.local.cli  # noqa: F401 - the runner itself
        from services.local.plan import LOCAL_SERVICES, runnable
    except ImportError as e:
        return f"the local runner (services/local) is not importable: {e}"
    planned = {s.module for s in LOCAL_SERVICES}
    missing = [m for m in NEEDED if m not in planned or not runnable(m)]
    if missing:
        return "the local default cannot run a cluster yet; not runnable: " + ", ".join(missing)
    return ""


pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(READY_TIMEOUT_S + 180),
    needs_chromium,
    pytest.mark.skipif(bool(_missing_services()), reason=_missing_services() or "ready"),
]


def start_runner(data: Path, port: int, nats_port: int, log: Path) -> subprocess.Popen:
    others = [a for name in ("lcm", "mirror", "redfish", "image")
              for a in (f"--{name}-port", str(free_port()))]
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from services.local.cli import main; main()", "up",
             "--data", str(data), "--port", str(port), "--nats-port", str(nats_port),
             *others],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@pytest.fixture
async def local_default(tmp_path: Path):
    """``ccloud up`` in a fresh data folder on free ports; yields (api url, admin token)."""
    data = tmp_path / "local"
    port, nats_port = free_port(), free_port()
    proc = await asyncio.to_thread(start_runner, data, port, nats_port,
                                   tmp_path / "ccloud-up.log")
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        assert proc.poll() is None, f"ccloud up exited: {(tmp_path / 'ccloud-up.log').read_text()}"
        with contextlib.suppress(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s, s.get(url + "/readyz") as r:
                return r.status == 200
        return False

    try:
        await eventually(ready, timeout=120, interval=0.5, what="ccloud up ready")
        token = (await asyncio.to_thread((data / "admin-token").read_text)).strip()
        yield url, token
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


async def test_console_creates_a_cluster_that_reaches_ready_on_the_local_default(
    local_default: tuple[str, str], page: Page
):
    url, token = local_default
    await page.goto(url + "/ui/#/login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#nav:not([hidden])")

    await page.goto(url + "/ui/#/clusters/new")
    await page.fill("input[name='metadata.name']", "e2e")
    project = page.locator("select[name='metadata.namespace']")
    if await project.locator("option[value='default']").count():
        await project.select_option("default")
    await page.select_option("select[name='spec.region']", "local")
    await page.click(".wizard button[type=submit]")
    # The local region offers bare metal hosts from the Redfish emulator (as examples/ does).
    await page.select_option("select[name='spec.provider']", "baremetal")
    await page.click(".wizard button[type=submit]")
    await page.click(".wizard button[type=submit]")  # the default release
    await page.fill("input[name='machines.1.count']", "1")
    await page.click(".wizard button[type=submit]")
    await page.get_by_role("button", name="Create cluster").click()
    await expect(page).to_have_url(re.compile(r"#/clusters/[^/]+/e2e$"))

    try:
        await expect(page.locator(".summary .phase")).to_have_text(
            "Ready", timeout=READY_TIMEOUT_S * 1000)
        await expect(page.locator(".summary .ready")).to_have_text("2/2")
        await expect(page.locator("[data-machine] .phase")).to_have_text(["Ready", "Ready"])
    finally:
        await screenshot(page, "local-default")
