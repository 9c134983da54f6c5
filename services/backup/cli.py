"""``ccloud backup FILE`` and ``ccloud restore FILE``: the management store to a file and back.

Both reach the store's NATS at --nats-url (default ``$CCLOUD_NATS_URL``, else ``ccloud
up``'s nats://127.0.0.1:4222) and name it by --prefix (bucket ``<prefix>-objects``). A
backup reads a store that exists; a restore creates the bucket on a fresh server. See
``services/backup/archive.py`` for what a backup holds and how a restore writes it.

``ccloud backup --dir DIR --keep N`` (what the chart's CronJob runs, as ``python -m
services.backup backup ...``) names each backup by its time, ``<prefix>-<UTC
time>.backup``, and once it is written removes the oldest of them beyond N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from nats.js.errors import BucketNotFoundError

from services.backup import archive as backup
from services.bootstrap.state import BootstrapError
from shared.config import Settings
from shared.natsutil import connect_briefly
from shared.store import StoreError
from shared.store.kv import KVStore

SUFFIX = ".backup"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    settings = Settings.from_env()
    for name, what in (("backup", "write every object of the management store to FILE"),
                       ("restore", "write the objects of backup FILE into the store")):
        p = sub.add_parser(name, help=what, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("file", type=Path, nargs="?" if name == "backup" else None)
        p.add_argument("--nats-url", default=settings.nats_url,
                       help=f"the store's NATS (default {settings.nats_url})")
        p.add_argument("--prefix", default=settings.prefix,
                       help=f"the store's prefix (default {settings.prefix})")
        if name == "backup":
            p.add_argument("--dir", type=Path, help="write a new, time-named backup into DIR")
            p.add_argument("--keep", type=int, default=0,
                           help="with --dir: how many backups to keep (default all)")
        if name == "restore":
            p.add_argument("--replace", action="store_true",
                           help="delete objects the store holds under the backup's names "
                                "with other uids (what a fresh installation seeds) instead "
                                "of refusing")
        p.set_defaults(backup_command=name)


async def _with_store(args: argparse.Namespace, create: bool,
                      work: Callable[[KVStore], Awaitable[str]]) -> str:
    bucket = Settings(prefix=args.prefix).objects_bucket
    try:
        nc = await connect_briefly(args.nats_url, name="ccloud-backup")
    except ConnectionError as e:
        raise backup.BackupError(str(e)) from None
    try:
        if not create:
            try:
                await nc.jetstream().key_value(bucket)
            except BucketNotFoundError:
                raise backup.BackupError(f"no store with prefix {args.prefix!r} at "
                                         f"{args.nats_url} (no bucket {bucket})") from None
        store = KVStore(nc, bucket=bucket, informers=False)
        await store.start()
        try:
            return await work(store)
        except StoreError as e:
            raise backup.BackupError(f"the store failed: {e}") from None
        finally:
            await store.close()
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def _target(args: argparse.Namespace) -> Path:
    """Where a backup goes: FILE, or a new time-named file in --dir."""
    if (args.file is None) == (args.dir is None):
        raise backup.BackupError("give FILE or --dir DIR (one of them)")
    if args.keep < 0 or (args.keep and args.dir is None):
        raise backup.BackupError("--keep takes a count of backups and goes with --dir")
    if args.file is not None:
        return args.file
    try:
        args.dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise backup.BackupError(f"cannot use {args.dir}: {e.strerror or e}") from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return args.dir / f"{args.prefix}-{stamp}{SUFFIX}"


def _rotate(args: argparse.Namespace) -> list[Path]:
    """Remove the oldest time-named backups in --dir beyond --keep; the removed ones."""
    if not args.keep:
        return []
    # Time order (names sort by it); only ours: "ccloud-east-..." is another store's.
    ours = sorted(args.dir.glob(f"{args.prefix}-[0-9]*Z{SUFFIX}"))
    gone = ours[: max(0, len(ours) - args.keep)]
    for old in gone:
        old.unlink(missing_ok=True)
    return gone


async def run(args: argparse.Namespace) -> str:
    if args.backup_command == "backup":
        path = _target(args)

        async def write(store: KVStore) -> str:
            summary = await backup.create(store, path)
            gone = _rotate(args) if args.dir is not None else []
            return (f"backed up {summary.describe()} at revision {summary.revision} to {path} "
                    "(it holds credentials: keep it as a secret)"
                    + (f"; removed {len(gone)} older" if gone else ""))
        return await _with_store(args, False, write)

    path = args.file

    summary, objs = backup.read(path)  # the whole file is checked before connecting

    async def put(store: KVStore) -> str:
        await backup.restore(store, objs, replace=args.replace)
        return (f"restored {summary.describe()} from {path} (taken {summary.created} at "
                f"revision {summary.revision})")
    return await _with_store(args, True, put)


def execute(args: argparse.Namespace) -> int:
    """Run a parsed backup/restore command; errors are one line on stderr, exit code 1."""
    if Settings.from_env().store == "kube":
        print(f"ccloud {args.backup_command}: the store is Kubernetes (CCLOUD_STORE=kube): "
              "back up its etcd (or use Velero); a restore through the Kubernetes API "
              "could not keep uids and owner references", file=sys.stderr)
        return 1
    try:
        print(asyncio.run(run(args)))
    except BootstrapError as e:  # BackupError, or a name taken while the restore ran
        print(f"ccloud {args.backup_command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
