"""``ccloud up``: the whole local region on this machine, on the embedded defaults.

Starts a JetStream nats-server bound to 127.0.0.1 with its data under ``--data``, the
embedded store (JetStream KV), every service as a supervised process, and the API on a
printed localhost port. Ctrl-C stops everything cleanly; a second ``up`` reuses the data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from services.local.plan import LOCAL_SERVICES, runnable
from services.local.supervisor import Supervisor
from shared.config import Settings
from shared.natsserver import NatsServer, NatsServerError, port_in_use

log = logging.getLogger("ccloud")

DEFAULT_DATA = "var/local"
READY_TIMEOUT = 90.0


class UpError(Exception):
    """A problem the user can fix; printed as one clear line, never a traceback."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ccloud", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the local region in the foreground")
    up.add_argument("--data", default=os.environ.get("CCLOUD_LOCAL_DATA", DEFAULT_DATA),
                    help=f"data folder (default {DEFAULT_DATA})")
    up.add_argument("--port", type=int, default=8443, help="API port (default 8443)")
    up.add_argument("--nats-port", type=int, default=4222, help="NATS port (default 4222)")
    up.add_argument("--region", default="local")
    up.add_argument("--prefix", default="ccloud")
    up.add_argument("--hosts", type=int, default=6,
                    help="bare-metal hosts the Redfish emulator offers (default 6)")
    return p.parse_args(argv)


def check_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except PermissionError:
        raise UpError(
            f"cannot write to the data folder {path}: permission denied. "
            "Fix its permissions or pass --data DIR."
        ) from None
    except OSError as e:
        raise UpError(f"cannot use the data folder {path}: {e.strerror or e}") from None


def check_ports(args: argparse.Namespace) -> None:
    for port, flag in ((args.port, "--port"), (args.nats_port, "--nats-port")):
        if not 0 < port < 65536:
            raise UpError(f"{flag} {port} is not a valid port")
        if port_in_use(port):
            raise UpError(
                f"port {port} is already in use (is another 'ccloud up' running?). "
                f"Stop it or pick another with {flag}."
            )


def write_cli_config(data: Path, server: str, token: str) -> Path:
    path = data / "ccctl.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({"server": server, "token": token, "namespace": "default"}, f)
    return path


async def wait_ready(url: str, supervisor: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    api = next((c for c in supervisor.children if c.name == "api"), None)
    raise UpError(f"the API did not become ready in {timeout:.0f}s; see {api and api.log_path}")


async def seed(settings: Settings) -> None:
    """Objects the local region needs: the Region itself."""
    import nats

    from shared.models import ObjectMeta, Region, RegionSpec
    from shared.store import AlreadyExists
    from shared.store.kv import KVStore

    nc = await nats.connect(settings.nats_url)
    try:
        from shared.bus import Bus

        bus = Bus(nc, prefix=settings.prefix, service="ccloud-up")
        await bus.start()
        store = KVStore(nc, bucket=settings.objects_bucket, on_commit=bus.announce)
        await store.start()
        with contextlib.suppress(AlreadyExists):
            await store.create(Region(
                metadata=ObjectMeta(name=settings.region),
                spec=RegionSpec(providers=["baremetal", "simulated"],
                                description="local region on this machine"),
            ))
    finally:
        await nc.close()


class Prepared:
    """What ``up`` sets up before any process starts (all of it synchronous)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from services.api.auth import ensure_bootstrap

        self.data = Path(args.data).resolve()
        check_data_dir(self.data)
        check_ports(args)
        _, self.fresh_token = ensure_bootstrap(self.data)
        self.token = (self.data / "admin-token").read_text().strip()
        self.api_url = f"http://127.0.0.1:{args.port}"
        self.cli_config = write_cli_config(self.data, self.api_url, self.token)


async def up(args: argparse.Namespace, prep: Prepared) -> int:
    data = prep.data
    nats_server = NatsServer(data / "nats", port=args.nats_port, server_name="ccloud-local",
                             log_file=data / "nats-server.log")
    try:
        nats_server.start()
    except NatsServerError as e:
        raise UpError(str(e)) from None
    settings = Settings(nats_url=nats_server.url, prefix=args.prefix, region=args.region,
                        data_dir=str(data))
    supervisor = Supervisor(data / "logs")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        fresh_token, token, api_url = prep.fresh_token, prep.token, prep.api_url
        cli_config = prep.cli_config
        await seed(settings)
        env = {**settings.to_env(), "CCLOUD_API_PORT": str(args.port),
               "CCLOUD_LOCAL_HOSTS": str(args.hosts)}
        skipped = []
        for entry in LOCAL_SERVICES:
            if runnable(entry.module):
                supervisor.python_module(entry.name, entry.module, {**env, **entry.env})
            else:
                skipped.append(entry.name)
        await supervisor.start()
        await wait_ready(api_url, supervisor, READY_TIMEOUT)
        print(f"Container Cloud is up: region {args.region!r}, data in {data}")
        print(f"  API       {api_url}   (OpenAPI at {api_url}/openapi.json, UI at {api_url}/)")
        if fresh_token:
            print(f"  token     {token}   (operator 'admin'; also in {data / 'admin-token'})")
        else:
            print(f"  token     in {data / 'admin-token'} (operator 'admin')")
        print(f"  CLI       export CCLOUD_CONFIG={cli_config}; ./dev ctl get clusters -A")
        print(f"  NATS      {nats_server.url}   logs in {data / 'logs'}")
        print("  services  " + ", ".join(c.name for c in supervisor.children))
        if skipped:
            print("  not built " + ", ".join(skipped))
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
        print("stopping...", flush=True)
    finally:
        await supervisor.stop()
        nats_server.stop()
    print("stopped; run 'ccloud up' again to resume from the same data")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = asyncio.run(up(args, Prepared(args)))
    except UpError as e:
        print(f"ccloud: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
