"""The bootstrap command: ``ccloud bootstrap ...`` or ``python -m services.bootstrap ...``.

    create    start a temporary bootstrap set (nats-server + store) under --data, create the
              management cluster through the simulated provider, move every object (and
              the provider's node records) into the management set's store (uids, owners
              and status preserved), check the management set is healthy, then delete the
              bootstrap set and its data
    resume    continue an interrupted bootstrap from its recorded phase
    rollback  remove what the pivot moved into management (by uid), release the nodes,
              delete the bootstrap set and its data

The management set is reached at --management-url (its NATS) with --prefix naming its
store (bucket ``<prefix>-objects``); each --health URL (e.g. a service's /readyz) must
answer 200 before the bootstrap removes itself, and at least one is required.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from services.bootstrap.flow import Bootstrap
from services.bootstrap.state import STATE_FILE, BootstrapError, Target

DEFAULT_DATA = "var/bootstrap"


def add_commands(p: argparse.ArgumentParser) -> None:
    """Give ``p`` the create/resume/rollback subcommands (shared by both entry points)."""
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("create", "bring up management from this machine, then leave"),
                       ("resume", "continue an interrupted bootstrap"),
                       ("rollback", "undo an interrupted bootstrap")):
        c = sub.add_parser(name, help=what)
        c.add_argument("--data", default=os.environ.get("CCLOUD_BOOTSTRAP_DATA", DEFAULT_DATA),
                       help=f"bootstrap data folder (default {DEFAULT_DATA})")
    create = sub.choices["create"]
    create.add_argument("--management-url", required=True, help="NATS URL of management")
    create.add_argument("--prefix", default="ccloud")
    create.add_argument("--health", action="append", default=[], metavar="URL",
                        help="a management service's readiness URL (e.g. .../readyz) that "
                        "must answer 200 before the bootstrap removes itself; required, "
                        "repeatable")
    create.add_argument("--cluster", default="management")
    create.add_argument("--namespace", default="default")
    create.add_argument("--region", default="region-one")
    create.add_argument("--release", default="mke-3-7-0")
    create.add_argument("--machines", type=int, default=3)


def parse_args(argv: list[str] | None, prog: str = "python -m services.bootstrap"
               ) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog)
    add_commands(p)
    return p.parse_args(argv)


def _fail_after() -> int | None:
    raw = os.environ.get("CCLOUD_BOOTSTRAP_FAIL_AFTER", "")
    return int(raw) if raw.isdigit() else None


async def run(args: argparse.Namespace) -> str:
    boot = Bootstrap(Path(args.data), fail_after=_fail_after())
    if args.command == "create":
        if args.machines < 1:
            raise BootstrapError("--machines must be at least 1")
        target = Target(
            management_url=args.management_url, prefix=args.prefix, health_urls=args.health,
            cluster=args.cluster, namespace=args.namespace, region=args.region,
            release=args.release, machines=args.machines,
        )
        outcome = await boot.create(target)
    elif args.command == "resume":
        outcome = await boot.resume()
    else:
        outcome = await boot.rollback()
    return outcome.message


def main(argv: list[str] | None = None) -> int:
    return execute(parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    """Run a parsed bootstrap command; errors are one line on stderr, exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(asyncio.run(run(args)))
    except BootstrapError as e:
        print(f"bootstrap {args.command} failed: {e}", file=sys.stderr)
        if args.command != "rollback" and (Path(args.data) / STATE_FILE).exists():
            print(f"run 'resume' to continue or 'rollback' to undo (data in {args.data})",
                  file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; run 'resume' or 'rollback' (data in {args.data})", file=sys.stderr)
        return 130
    return 0

