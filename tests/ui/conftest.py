"""A real gateway with the UI mounted, a real nats-server + KV store, and headless Chromium.

The gateway runs in-process on 127.0.0.1 over the KV store with commit-announced bus
events, so the events websocket works. The bridge's publisher and the owner GC are
left out: their ``stop()`` sometimes hangs on a cancelled NATS fetch/watch (reported to
the lead), and commit announcements already put every write of these tests on the bus.
Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright (its own browser download
fails here); ``scripts/test-deps`` installs it. Without it, or without Playwright, the browser
tests skip with the reason. Screenshots land in ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from nats.aio.client import Client as NATS

from services.api import create_app
from services.api.audit import AuditLog
from services.api.auth import Authenticator, user_entry
from services.release.defaults import ensure_default_releases
from shared.bus import Bus
from shared.models import Cluster, Region, RegionSpec, convert
from shared.models.meta import ObjectMeta
from shared.store import Store
from shared.store.kv import KVStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
TOKENS = {"ops": "tok-ui-ops", "wally": "tok-ui-wally", "rita": "tok-ui-rita"}

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]


def _chromium_path() -> str | None:
    return str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")


CHROMIUM_PATH = _chromium_path()


def _browser_missing() -> str:
    if async_playwright is None:
        return "playwright is not installed (pip install -e '.[test]')"
    if CHROMIUM_PATH is None:
        return "Debian chromium is not installed (scripts/test-deps installs it)"
    return ""


needs_chromium = pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing())


def users_doc() -> dict[str, Any]:
    return {
        "users": [
            user_entry("ops", TOKENS["ops"], operator=True),
            user_entry("wally", TOKENS["wally"], roles={"team-a": "writer", "team-b": "reader"}),
            user_entry("rita", TOKENS["rita"], roles={"team-b": "reader"}),
        ]
    }


@dataclass
class Console:
    url: str
    store: Store


@asynccontextmanager
async def serve_console(
    nc: NATS, prefix: str, tmp_path: Path, tokens_doc: dict[str, Any]
) -> AsyncIterator[Console]:
    """A gateway with the UI over a fresh KV store, authenticating by ``tokens_doc``."""
    bus = Bus(nc, prefix=prefix, service="ui-test")
    await bus.start()
    store = KVStore(nc, bucket=f"{prefix}-objects", on_commit=bus.announce)
    await store.start()
    await store.create(Region(metadata=ObjectMeta(name="local"),
                              spec=RegionSpec(providers=["simulated", "openstack"])))
    await ensure_default_releases(store)
    app = create_app(store, Authenticator.from_dict(tokens_doc),
                     audit=AuditLog(tmp_path / "audit.log"), nc=nc, bus_prefix=prefix)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Console(url=str(server.make_url("")).rstrip("/"), store=store)
    finally:
        await server.close()
        await bus.stop()
        await nc.jetstream().delete_key_value(f"{prefix}-objects")


@pytest.fixture
async def console(nc: NATS, prefix: str, tmp_path: Path) -> AsyncIterator[Console]:
    async with serve_console(nc, prefix, tmp_path, users_doc()) as served:
        yield served


@asynccontextmanager
async def open_browser(tmp_path: Path, **options: Any) -> AsyncIterator[BrowserContext]:
    """Headless Chromium with a fresh profile; ``options`` go to Playwright's context."""
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data dir per test
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1360, "height": 900},
            **options,
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def browser_context(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with open_browser(tmp_path) as context:
        yield context


@pytest.fixture
async def page(browser_context: BrowserContext) -> Page:
    page = browser_context.pages[0] if browser_context.pages else await browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


async def sign_in(page: Page, console: Console, user: str = "ops") -> None:
    await page.goto(console.url + "/ui/#/login")
    await page.fill("#token", TOKENS[user])
    await page.click("button[type=submit]")
    await page.wait_for_selector("#nav:not([hidden])")


async def screenshot(page: Page, name: str) -> Path:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def cluster_obj(name: str, ns: str = "team-a", **spec: Any) -> Cluster:
    doc = {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"region": "local", "provider": "simulated", "release": "mke-3-7-0", **spec},
    }
    return convert(Cluster, doc)


__all__ = ["Browser", "Console", "cluster_obj", "needs_chromium", "open_browser", "screenshot",
           "serve_console", "sign_in", "users_doc"]
