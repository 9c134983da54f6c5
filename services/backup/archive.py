"""Back up the management store to a file and restore it, for the embedded (KV) store.

A backup is every object of every kind at one revision of the bucket (``KVStore.dump``: a
consistent cut, so no object is there without its owner), with uid, owners, finalizers,
status and secrets: what management needs to carry on after losing its NATS volume. The
file is gzip'd JSON with a sha256 over the objects; it holds credentials in the clear, so
it is written with mode 0600 (keep it as a secret).

A restore checks the whole file first (format, checksum, every object against the models)
and that no object in the store has an object's name under another uid (or, asked to
replace those, deletes them), and writes nothing if anything is wrong. It then writes the
objects as the bootstrap pivot does: owners first, paused (controllers leave a
half-restored tree alone), then each back to its exact content.
Objects the store holds and the backup does not are left as they are; one it holds under
the same uid is overwritten, so a restore that stopped half-way is simply run again.

With the Kubernetes store, back up the cluster's etcd instead (or use Velero): the
Kubernetes API assigns uids, so a restore through it could not keep owner references.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from services.bootstrap.pivot import owners_first, restore_paused, unpause
from services.bootstrap.state import BootstrapError
from shared.models import Resource, ValidationError, convert, now, to_dict
from shared.models.registry import BY_KIND
from shared.store import NotFound
from shared.store.kv import KVStore

FORMAT = "ccloud-backup/v1"


class BackupError(BootstrapError):
    """A backup that cannot be written or restored; the message says why."""


class BackupFile(msgspec.Struct, kw_only=True):
    format: str
    created: str
    bucket: str
    revision: int
    sha256: str
    objects: list[dict[str, Any]]


class Summary(msgspec.Struct, kw_only=True):
    revision: int
    created: str
    kinds: dict[str, int]

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        return f"{self.count} objects ({kinds or 'none'})"


def _digest(objects: list[dict[str, Any]]) -> str:
    return hashlib.sha256(msgspec.json.encode(objects)).hexdigest()


def _summary(objs: list[Resource], revision: int, created: str) -> Summary:
    return Summary(revision=revision, created=created, kinds=dict(Counter(o.kind for o in objs)))


async def create(store: KVStore, path: Path) -> Summary:
    """Write every object of ``store`` to ``path`` (replaced whole, never half-written)."""
    objs, revision = await store.dump()
    objects = [to_dict(o) for o in owners_first(objs)]
    for o in objects:
        o["metadata"].pop("resourceVersion", None)  # the store's, not the object's
    doc = BackupFile(format=FORMAT, created=now(), bucket=store.bucket, revision=revision,
                     sha256=_digest(objects), objects=objects)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
            out.write(msgspec.json.encode(doc))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"cannot write {path}: {e.strerror or e}") from None
    return _summary(objs, revision, doc.created)


def read(path: Path) -> tuple[Summary, list[Resource]]:
    """The objects of a backup file, every one checked; a ``BackupError`` says what is
    wrong with the file (nothing is written anywhere)."""
    try:
        data = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as e:
        raise BackupError(f"{path}: not a complete backup file (gzip: {e})") from None
    try:
        doc = msgspec.json.decode(data, type=BackupFile)
    except msgspec.DecodeError as e:
        raise BackupError(f"{path}: not a backup file: {e}") from None
    if doc.format != FORMAT:
        raise BackupError(f"{path}: format {doc.format!r}, this version reads {FORMAT!r}")
    if _digest(doc.objects) != doc.sha256:
        raise BackupError(f"{path}: the objects do not match the file's checksum (changed or "
                          "damaged since it was written)")
    objs: list[Resource] = []
    for i, raw in enumerate(doc.objects):
        kind = raw.get("kind")
        cls = BY_KIND.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise BackupError(f"{path}: object {i}: unknown kind {kind!r}")
        try:
            obj = convert(cls, raw)
        except ValidationError as e:
            field = e.path.removeprefix("$.")
            raise BackupError(f"{path}: object {i} ({kind}): {field}: {e.reason}") from None
        if not obj.metadata.uid:
            raise BackupError(f"{path}: object {i} ({kind} {obj.metadata.name}): no uid")
        objs.append(obj)
    return _summary(objs, doc.revision, doc.created), owners_first(objs)


async def restore(store: KVStore, objs: list[Resource], *, replace: bool = False) -> int:
    """Write ``objs`` into ``store`` (see the module docstring); returns how many. An
    object the store holds under one of their names with another uid stops the restore
    before anything is written, or with ``replace`` is deleted first (what a fresh
    installation seeds: its region, releases, hosts)."""
    clashes: list[Resource] = []
    for obj in objs:
        md = obj.metadata
        try:
            held = await store.get(type(obj), md.name, md.namespace)
        except NotFound:
            continue
        if held.metadata.uid != md.uid:
            clashes.append(held)
    if clashes and not replace:
        names = [f"{o.kind} {_ref(o)}" for o in clashes]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise BackupError(f"the store already holds other objects under these names: {shown}; "
                          "nothing was restored (restore into an empty store, delete them, "
                          "or pass --replace)")
    for held in reversed(owners_first(clashes)):  # what they own first
        await _delete_now(store, held)
    async for _ in restore_paused(store, objs, "the store"):
        pass
    await unpause(store, objs)
    return len(objs)


async def _delete_now(store: KVStore, obj: Resource) -> None:
    """Delete ``obj`` at once: its finalizers' controllers are not the backup's concern."""
    cls, md = type(obj), obj.metadata
    try:
        if md.finalizers:
            obj = await store.update(msgspec.structs.replace(
                obj, metadata=msgspec.structs.replace(md, finalizers=[])))
        await store.delete(cls, md.name, md.namespace)
    except NotFound:
        pass


def _ref(obj: Resource) -> str:
    md = obj.metadata
    return f"{md.namespace}/{md.name}" if md.namespace else md.name
