"""``python -m services.lcm.agent --endpoint URL --machine NS/NAME --token TOKEN --root DIR``.

The token may instead come from ``CCLOUD_LCM_AGENT_TOKEN`` (keeps it out of ``ps``);
``--ca-file`` (or ``CCLOUD_LCM_AGENT_CA``) is the CA an https endpoint's certificate must
chain to.
``--executor root`` (default) applies items under ``--root``; ``--executor host`` runs the
real commands on this host. Exit codes: 0 on SIGTERM/SIGINT, 2 on bad arguments or a token
the endpoint refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from services.lcm.agent.client import AgentClient, Unauthorized
from services.lcm.agent.executor import Executor, HostExecutor, NodeRootExecutor
from services.lcm.agent.runner import Agent

TOKEN_ENV = "CCLOUD_LCM_AGENT_TOKEN"
CA_ENV = "CCLOUD_LCM_AGENT_CA"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.lcm.agent", description=__doc__)
    p.add_argument("--endpoint", required=True, help="regional LCM endpoint URL")
    p.add_argument("--machine", required=True, help="NAMESPACE/NAME of this node's Machine")
    p.add_argument("--token", default="", help=f"per-machine token (or ${TOKEN_ENV})")
    p.add_argument("--ca-file", default=os.environ.get(CA_ENV, ""),
                   help=f"CA to trust for an https endpoint (or ${CA_ENV}; default: the "
                        "system's)")
    p.add_argument("--root", default="", help="node root directory (root executor)")
    p.add_argument("--executor", choices=["root", "host"], default="root")
    p.add_argument("--hostname", default="")
    p.add_argument("--ip", default="")
    p.add_argument("--poll-interval", type=float, default=None)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    ns, sep, name = args.machine.partition("/")
    if not sep or not ns or not name:
        p.error(f"--machine must be NAMESPACE/NAME, got {args.machine!r}")
    args.namespace, args.name = ns, name
    args.token = args.token or os.environ.get(TOKEN_ENV, "")
    if not args.token:
        p.error(f"--token or ${TOKEN_ENV} is required")
    if args.executor == "root" and not args.root:
        p.error("--root is required with --executor root")
    if not args.endpoint.startswith(("http://", "https://")):
        p.error(f"--endpoint must be an http(s) URL, got {args.endpoint!r}")
    args.ssl = None
    if args.ca_file:
        try:
            args.ssl = ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as e:
            p.error(f"--ca-file {args.ca_file}: {e}")
    return args


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    root = Path(args.root or "/")
    executor: Executor
    if args.executor == "root":
        executor = NodeRootExecutor(root, hostname=args.hostname, ip=args.ip)
    else:
        executor = HostExecutor(hostname=args.hostname, ip=args.ip)
    client = AgentClient(args.endpoint, args.namespace, args.name, args.token, ssl=args.ssl)
    await client.start()
    try:
        await Agent(client, executor, root, poll_interval=args.poll_interval).run(stop)
    except Unauthorized as e:
        print(f"lcm-agent: the endpoint refused this machine's token: {e}", file=sys.stderr)
        return 2
    finally:
        await client.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.executor == "root":
        Path(args.root).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s %(levelname)s lcm-agent[{args.name}]: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
