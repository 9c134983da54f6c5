"""The bootstrap phases, in order, each recorded before the next begins.

    started -> cluster-created -> pivoting -> pivoted -> verified -> cleaned

``create`` starts from nothing; ``resume`` continues from the recorded phase (every phase
is safe to repeat); ``rollback`` removes from management what the pivot moved (objects by
uid, provider node records by Machine uid), releases the provider's nodes and deletes the
bootstrap set and its data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from services.bootstrap import pivot, state
from services.bootstrap.bootset import BootstrapSet
from services.bootstrap.driver import create_management_cluster, delete_nodes
from services.bootstrap.state import BootstrapError, BootstrapState, Target
from services.providers.simulated import SimulatedProvider
from services.providers.simulated.nodes import KVNodes, nodes_bucket
from shared.models import Resource
from shared.natsutil import connect_briefly
from shared.store import NotFound
from shared.store.kv import KVStore

log = logging.getLogger("ccloud.bootstrap")

VERIFY_TIMEOUT = 30.0


@dataclass
class Outcome:
    phase: str
    moved: int
    message: str


@dataclass
class ManagementSet:
    """What the pivot writes to: management's store and its simulated provider's nodes."""

    store: KVStore
    nodes: KVNodes


@contextlib.asynccontextmanager
async def management(target: Target) -> AsyncIterator[ManagementSet]:
    try:
        nc = await connect_briefly(target.management_url, name="ccloud-bootstrap-pivot")
    except ConnectionError as e:
        raise BootstrapError(f"cannot reach the management set: {e}") from None
    try:
        store = KVStore(nc, bucket=f"{target.prefix}-objects")
        await store.start()
        nodes = KVNodes(nc, bucket=nodes_bucket(target.prefix))
        await nodes.start()
        yield ManagementSet(store, nodes)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


class Bootstrap:
    def __init__(self, data: Path, *, fail_after: int | None = None) -> None:
        self.data = data
        self.fail_after = fail_after

    def _save(self, st: BootstrapState) -> None:
        state.save(self.data, st)

    def _advance(self, st: BootstrapState, phase: state.Phase) -> None:
        st.phase = phase
        st.error = ""
        self._save(st)
        log.info("bootstrap: %s", phase)

    async def create(self, target: Target) -> Outcome:
        check_health_urls(target.health_urls)
        existing = state.load(self.data)
        if existing is not None:
            raise BootstrapError(
                f"a bootstrap is already recorded in {self.data} (phase {existing.phase}): "
                "run 'resume' or 'rollback'"
            )
        st = BootstrapState(target=target)
        self._save(st)
        return await self._run(st)

    async def resume(self) -> Outcome:
        st = state.load(self.data)
        if st is None:
            raise BootstrapError(f"nothing to resume: no bootstrap recorded in {self.data}")
        return await self._run(st)

    async def _run(self, st: BootstrapState) -> Outcome:
        bootset = BootstrapSet(self.data)
        await bootset.start()
        try:
            return await self._phases(st, bootset)
        except BaseException as e:
            st.error = str(e) or type(e).__name__
            if self.data.exists():
                self._save(st)
            raise
        finally:
            await bootset.stop()

    async def _phases(self, st: BootstrapState, bootset: BootstrapSet) -> Outcome:
        assert bootset.store is not None and bootset.nodes is not None
        if not st.reached("cluster-created"):
            provider = SimulatedProvider(nodes=bootset.nodes)
            await create_management_cluster(bootset.store, provider, st.target)
            self._advance(st, "cluster-created")
        async with management(st.target) as mgmt:
            if not st.reached("pivoted"):
                if st.phase != "pivoting":
                    self._advance(st, "pivoting")
                await pivot.move_nodes(bootset.nodes, mgmt.nodes, st, save=self._save)
                await pivot.move(bootset.store, mgmt.store, st, save=self._save,
                                 fail_after=self.fail_after)
                self._advance(st, "pivoted")
            if not st.reached("verified"):
                await verify(bootset.store, mgmt, st)
                self._advance(st, "verified")
        moved = len(st.moved)
        self._advance(st, "cleaned")
        await bootset.destroy()
        return Outcome("cleaned", moved, f"management cluster {st.target.cluster!r} is up; "
                       f"{moved} objects moved; bootstrap data removed")

    async def rollback(self) -> Outcome:
        st = state.load(self.data)
        if st is None:
            shutil.rmtree(self.data, ignore_errors=True)
            return Outcome("rolled-back", 0, f"nothing recorded in {self.data}; folder removed")
        removed = 0
        if st.moved or st.nodes:
            async with management(st.target) as mgmt:
                removed = await pivot.undo(mgmt.store, st)
                await pivot.undo_nodes(mgmt.nodes, st)
        bootset = BootstrapSet(self.data)
        await bootset.start()
        try:
            assert bootset.store is not None and bootset.nodes is not None
            released = await delete_nodes(bootset.store, SimulatedProvider(nodes=bootset.nodes))
        finally:
            await bootset.destroy()
        return Outcome("rolled-back", removed, f"removed {removed} objects from management, "
                       f"released {released} nodes, deleted {self.data}")


async def verify(source: KVStore, mgmt: ManagementSet, st: BootstrapState) -> None:
    """Every moved object is in management with its uid and owners, unpaused; every
    moved Machine's node is in management's node table; every management health endpoint
    answers ready."""
    originals = {o.metadata.uid: o for o in await pivot.everything(source)}
    for ref in st.moved:
        cls = pivot.KINDS[ref.kind]
        try:
            got: Resource = await mgmt.store.get(cls, ref.name, ref.namespace)
        except NotFound:
            raise BootstrapError(f"{ref.kind} {ref.name} is missing in management") from None
        want = originals.get(ref.uid)
        if got.metadata.uid != ref.uid:
            raise BootstrapError(f"{ref.kind} {ref.name}: uid changed in management")
        if want is not None and got.metadata.owner_references != want.metadata.owner_references:
            raise BootstrapError(f"{ref.kind} {ref.name}: owner references changed")
        if pivot.PAUSED_ANNOTATION in got.metadata.annotations:
            raise BootstrapError(f"{ref.kind} {ref.name} is still paused in management")
    missing = set(originals) - {r.uid for r in st.moved}
    if missing:
        raise BootstrapError(f"{len(missing)} bootstrap objects were not moved")
    for uid in st.nodes:
        if await mgmt.nodes.get(uid) is None:
            raise BootstrapError(f"the node of machine {uid} is missing in management")
    await _healthy(st.target.health_urls)


def check_health_urls(urls: list[str]) -> None:
    """The bootstrap may only remove itself once management is proven healthy, so at least
    one health URL is required, and each must be an http(s) URL."""
    if not urls:
        raise BootstrapError(
            "at least one --health URL is required (e.g. http://<management-api>/readyz): "
            "the bootstrap removes itself only once management answers ready"
        )
    for url in urls:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BootstrapError(f"--health {url!r} is not an http(s) URL")


async def _healthy(urls: list[str]) -> None:
    check_health_urls(urls)
    deadline = time.monotonic() + VERIFY_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for url in urls:
            last = ""
            while True:
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            break
                        last = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                except aiohttp.ClientError as e:
                    last = str(e) or type(e).__name__
                if time.monotonic() > deadline:
                    raise BootstrapError(f"management service at {url} is not ready: {last}")
                await asyncio.sleep(0.2)
