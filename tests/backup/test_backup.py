"""``ccloud backup`` / ``ccloud restore``: the management store to a file and back, with
uids, owners, finalizers, status and secrets; a bad file or a taken name writes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from services.backup import archive as backup
from services.local import cli
from shared.models import (
    Cluster,
    Machine,
    OpenStackCredential,
    OwnerReference,
    Region,
    convert,
    to_dict,
)
from shared.natsserver import NatsServer
from shared.runtime.paused import PAUSED_ANNOTATION
from shared.store.kv import KVStore
from tests.api.conftest import cluster, machine, os_credential, region


@contextlib.asynccontextmanager
async def kv(nc: NATS, bucket: str) -> AsyncIterator[KVStore]:
    store = KVStore(nc, bucket=bucket, informers=False)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_key_value(bucket)


async def populate(store: KVStore) -> None:
    """A small management store: a region, a cluster with status and a finalizer, machines
    it owns, a credential with its secret, and an object deleted before the backup."""
    await store.create(convert(Region, region()))
    await store.create(convert(OpenStackCredential, os_credential(password="pa55")))
    c1 = convert(Cluster, cluster("c1"))
    c1.metadata.finalizers = ["kaas.containercloud.dev/lcm"]
    c1 = await store.create(c1)
    c1.status.phase = "Running"
    c1 = await store.update_status(c1)
    owner = OwnerReference(api_version=c1.api_version, kind="Cluster", name="c1",
                           uid=c1.metadata.uid or "")
    for name, role in (("cp-0", "control-plane"), ("w-0", "worker"), ("gone", "worker")):
        m = convert(Machine, machine(name, role))
        m.metadata.owner_references = [owner]
        await store.create(m)
    await store.delete(Machine, "gone", "team-a")


async def contents(store: KVStore) -> dict[tuple[str, str, str], dict[str, Any]]:
    objs, _ = await store.dump()
    out = {}
    for o in objs:
        d = to_dict(o)
        d["metadata"].pop("resourceVersion")
        out[(o.kind, o.metadata.namespace or "", o.metadata.name)] = d
    return out


def rewrite(path: Path, change: Any) -> None:
    doc = json.loads(gzip.decompress(path.read_bytes()))
    change(doc)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


async def test_a_backup_restores_every_object_as_it_was(nc: NATS, prefix: str, tmp_path: Path):
    file = tmp_path / "mgmt.backup"
    async with kv(nc, f"{prefix}-a") as source, kv(nc, f"{prefix}-b") as dest:
        await populate(source)
        summary = await backup.create(source, file)
        assert summary.kinds == {"Region": 1, "OpenStackCredential": 1, "Cluster": 1,
                                 "Machine": 2}
        assert stat.S_IMODE(file.stat().st_mode) == 0o600  # it holds credentials

        read, objs = backup.read(file)
        assert read.count == 5 and read.revision == summary.revision
        await backup.restore(dest, objs)
        before, after = await contents(source), await contents(dest)
        assert after == before  # uid, owners, finalizers, status, secret: all as they were
        assert ("Machine", "team-a", "gone") not in after
        cred = await dest.get(OpenStackCredential, "os1", "team-a")
        assert cred.spec.auth.password == "pa55"
        for o in after.values():  # restored paused, then unpaused
            assert PAUSED_ANNOTATION not in o["metadata"].get("annotations", {})
        assert not (await dest.get(Cluster, "c1", "team-a")).spec.paused

        # Run again (a restore that stopped half-way): the same objects, nothing doubled.
        await backup.restore(dest, objs)
        assert await contents(dest) == before


async def test_a_taken_name_writes_nothing_unless_replaced(nc: NATS, prefix: str,
                                                            tmp_path: Path):
    file = tmp_path / "mgmt.backup"
    async with kv(nc, f"{prefix}-a") as source, kv(nc, f"{prefix}-b") as dest:
        await populate(source)
        await backup.create(source, file)
        # What a fresh installation seeds: the same names, other uids (one with a finalizer).
        await dest.create(convert(Region, region()))
        seeded = convert(Cluster, cluster("c1"))
        seeded.metadata.finalizers = ["kaas.containercloud.dev/lcm"]
        await dest.create(seeded)
        held = await contents(dest)
        objs = backup.read(file)[1]
        with pytest.raises(backup.BackupError,
                           match="already holds other objects under these names: "
                                 "Region local, Cluster team-a/c1; nothing was restored"):
            await backup.restore(dest, objs)
        assert await contents(dest) == held

        await backup.restore(dest, objs, replace=True)
        assert await contents(dest) == await contents(source)


@pytest.mark.parametrize("damage, why", [
    (lambda d: d["objects"][0]["metadata"].update(name="other"),
     "do not match the file's checksum"),
    (lambda d: d.update(format="ccloud-backup/v9"), "format 'ccloud-backup/v9'"),
    (lambda d: d.pop("sha256"), "not a backup file"),
])
async def test_a_damaged_file_is_refused(nc: NATS, prefix: str, tmp_path: Path, damage: Any,
                                         why: str):
    file = tmp_path / "mgmt.backup"
    async with kv(nc, f"{prefix}-a") as source:
        await populate(source)
        await backup.create(source, file)
    rewrite(file, damage)
    with pytest.raises(backup.BackupError, match=why):
        backup.read(file)


async def test_a_truncated_or_foreign_object_is_refused(nc: NATS, prefix: str, tmp_path: Path):
    file = tmp_path / "mgmt.backup"
    async with kv(nc, f"{prefix}-a") as source:
        await populate(source)
        await backup.create(source, file)
    whole = file.read_bytes()
    file.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(backup.BackupError, match="not a complete backup file"):
        backup.read(file)

    def foreign(kind: str, spec: Any) -> Any:
        def change(doc: dict[str, Any]) -> None:
            doc["objects"][0].update(kind=kind, spec=spec)
            doc["sha256"] = backup._digest(doc["objects"])
        return change

    file.write_bytes(whole)
    rewrite(file, foreign("Gizmo", {}))
    with pytest.raises(backup.BackupError, match="object 0: unknown kind 'Gizmo'"):
        backup.read(file)
    file.write_bytes(whole)
    rewrite(file, foreign("Region", {"providers": "all"}))
    with pytest.raises(backup.BackupError, match=r"object 0 \(Region\): .*spec.providers"):
        backup.read(file)


async def test_ccloud_backup_and_restore(nats_server: NatsServer, nc: NATS, prefix: str,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    file = tmp_path / "mgmt.backup"

    async def ccloud(*argv: str) -> tuple[int, str, str]:
        """The command as a user runs it (its own event loop: in a thread here)."""
        with pytest.raises(SystemExit) as exit_:
            await asyncio.to_thread(cli.main, list(argv))
        out = capsys.readouterr()
        return int(exit_.value.code or 0), out.out, out.err

    async with kv(nc, f"{prefix}-objects") as source, kv(nc, f"{prefix}x-objects") as dest:
        await populate(source)
        code, out, err = await ccloud("backup", str(file), "--nats-url", nats_server.url,
                                "--prefix", prefix)
        assert code == 0, err
        assert "backed up 5 objects (Cluster 1, Machine 2, OpenStackCredential 1, Region 1)" \
            in out
        code, out, err = await ccloud("restore", str(file), "--nats-url", nats_server.url,
                                "--prefix", f"{prefix}x")
        assert code == 0, err
        assert f"restored 5 objects (Cluster 1, Machine 2, OpenStackCredential 1, Region 1) " \
               f"from {file}" in out
        assert await contents(dest) == await contents(source)

    code, _, err = await ccloud("backup", str(tmp_path / "none"), "--nats-url", nats_server.url,
                          "--prefix", f"{prefix}-never")
    assert code == 1 and f"no store with prefix '{prefix}-never'" in err
    assert not (tmp_path / "none").exists()
    code, _, err = await ccloud("restore", str(tmp_path / "none"), "--nats-url", nats_server.url)
    assert code == 1 and "none: no such file" in err
    code, _, err = await ccloud("backup", str(file), "--nats-url", "nats://127.0.0.1:1")
    assert code == 1 and "cannot reach NATS at nats://127.0.0.1:1" in err
    assert "Traceback" not in err


def test_the_kubernetes_store_is_not_backed_up_here(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("CCLOUD_STORE", "kube")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["backup", str(tmp_path / "f")])
    assert exit_.value.code == 1
    assert "back up its etcd" in capsys.readouterr().err


class Busy(KVStore):
    """A store where a write slips in between each unpause's read and its write, as an
    agent's report (which does not look at the pause) can."""

    slipped = 0

    async def restore(self, obj: Any, *, resource_version: str | None = None) -> Any:
        if resource_version and self.slipped < 2:
            self.slipped += 1
            current = await self.get(type(obj), obj.metadata.name, obj.metadata.namespace)
            current.metadata.labels["report"] = str(self.slipped)
            await self.update(current)
        return await super().restore(obj, resource_version=resource_version)


async def test_a_write_during_the_restore_is_written_over(nc: NATS, prefix: str,
                                                            tmp_path: Path):
    file = tmp_path / "mgmt.backup"
    async with kv(nc, f"{prefix}-a") as source:
        await populate(source)
        await backup.create(source, file)
        dest = Busy(nc, bucket=f"{prefix}-b", informers=False)
        await dest.start()
        try:
            await backup.restore(dest, backup.read(file)[1])
            assert dest.slipped == 2
            assert await contents(dest) == await contents(source)
        finally:
            await dest.close()
            await nc.jetstream().delete_key_value(f"{prefix}-b")


async def test_scheduled_backups_keep_the_newest(nats_server: NatsServer, nc: NATS,
                                                 prefix: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]):
    """What the chart's CronJob runs: time-named files in a folder, the oldest beyond
    --keep removed once the new one is written; other files there are left alone."""
    from services.backup.__main__ import main

    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    another = folder / f"{prefix}-east-20200101T000000.000000Z.backup"
    another.write_text("another store's, whose prefix starts like ours")
    async with kv(nc, f"{prefix}-objects") as source:
        await populate(source)
        written = []
        for _ in range(4):
            code = await asyncio.to_thread(main, ["backup", "--dir", str(folder), "--keep", "2",
                                                  "--nats-url", nats_server.url,
                                                  "--prefix", prefix])
            assert code == 0, capsys.readouterr().err
            written.append(capsys.readouterr().out)
    ours = sorted(folder.glob(f"{prefix}-2*.backup"))
    assert len(ours) == 2 and "removed 1 older" in written[-1]
    assert all(str(p) in "".join(written[-2:]) for p in ours), "the two newest are kept"
    assert (folder / "notes.txt").exists()
    assert another.exists()
    assert backup.read(ours[-1])[0].count == 5

    for argv, why in ((["backup"], "give FILE or --dir DIR"),
                      (["backup", "f", "--dir", "d"], "give FILE or --dir DIR"),
                      (["backup", "f", "--keep", "3"], "--keep takes a count of backups and "
                                                       "goes with --dir")):
        assert await asyncio.to_thread(main, argv) == 1
        assert why in capsys.readouterr().err
