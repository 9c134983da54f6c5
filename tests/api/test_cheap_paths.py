"""The gateway's cheap paths keep their guarantees: shared release reads are never stale,
the audit file is written per entry and follows rotation, admission's shortcut agrees
with the full check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from services.api.audit import AuditLog
from services.api.coalesce import FreshRead
from services.release.defaults import ensure_default_releases
from shared.models import ClusterRelease
from tests.api.conftest import Gateway, cluster, ns_path


async def test_shared_read_always_starts_after_its_callers_arrived() -> None:
    value = {"v": 1}
    gate = asyncio.Event()
    started = asyncio.Event()

    async def read() -> int:
        seen = value["v"]
        started.set()
        await gate.wait()
        return seen

    fresh = FreshRead(read)
    first = asyncio.create_task(fresh())
    await asyncio.wait_for(started.wait(), 5)
    value["v"] = 2  # committed after the first read started: later callers must see it
    later = [asyncio.create_task(fresh()) for _ in range(5)]
    await asyncio.sleep(0)  # let them join
    gate.set()
    assert await first == 1
    assert await asyncio.gather(*later) == [2] * 5
    assert fresh.reads == 2, "the five later callers shared one read"


async def test_shared_read_error_reaches_every_caller_and_a_leaver_cancels_nothing() -> None:
    gate = asyncio.Event()
    calls = {"n": 0}

    async def read() -> str:
        calls["n"] += 1
        await gate.wait()
        if calls["n"] == 1:
            raise RuntimeError("store down")
        return "ok"

    fresh = FreshRead(read)
    a, b = asyncio.create_task(fresh()), asyncio.create_task(fresh())
    leaver = asyncio.create_task(fresh())
    await asyncio.sleep(0)
    leaver.cancel()
    gate.set()
    for t in (a, b):
        with pytest.raises(RuntimeError, match="store down"):
            await t
    with pytest.raises(asyncio.CancelledError):
        await leaver
    assert await fresh() == "ok", "a failed read is not remembered"


def test_audit_entries_are_in_the_file_at_once_and_follow_rotation(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.log"
    audit = AuditLog(path)

    def entry(name: str) -> None:
        audit.record(user="ops", verb="create", kind="Cluster", namespace="team-a", name=name,
                     code=201, resource_version="7")

    def names(p: Path) -> list[str]:
        return [json.loads(line)["name"] for line in p.read_text().splitlines()]

    entry("c1")
    assert names(path) == ["c1"], "written before record() returns, nothing buffered"
    rotated = path.with_suffix(".1")
    path.rename(rotated)
    entry("c2")
    assert names(rotated) == ["c1"] and names(path) == ["c2"]
    path.unlink()
    entry("c3")
    audit.close()
    entry("c4")  # a closed log reopens rather than losing an entry
    audit.close()
    assert names(path) == ["c3", "c4"]
    line = json.loads(path.read_text().splitlines()[0])
    assert line == {"time": line["time"], "user": "ops", "verb": "create", "kind": "Cluster",
                    "namespace": "team-a", "name": "c3", "subresource": "",
                    "resourceVersion": "7", "code": 201}


async def test_release_named_by_the_kaas_release_but_missing_is_refused(gateway: Gateway):
    await ensure_default_releases(gateway.store)
    await gateway.store.delete(ClusterRelease, "mke-3-7-0")
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 422, body
    assert body["details"]["causes"][0]["field"] == "spec.release"
    assert "not supported" in body["message"] and "mke-3-7-1" in body["message"], body
    many = [gateway.call("POST", ns_path("clusters"), json=cluster(f"c{i}", release="mke-3-7-1"))
            for i in range(10, 30)]
    assert [code for code, _ in await asyncio.gather(*many)] == [201] * 20
