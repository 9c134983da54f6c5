"""``ccloud up``: the whole local region on this machine, on the embedded defaults.

(``ccloud bootstrap create|resume|rollback`` is the bootstrap of a management cluster:
``services.bootstrap.cli``; ``ccloud backup|restore FILE`` writes the management store to
a file and back: ``services.backup``.)

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
import secrets
import signal
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from services.backup import cli as backup_cli
from services.bootstrap import cli as bootstrap_cli
from services.lcm.config import load_secret
from services.local.plan import LOCAL_SERVICES, runnable
from services.local.redfish import emulator_argv, emulator_config, fake_system, system_address
from services.local.supervisor import Supervisor
from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION
from shared.config import Settings
from shared.models import (
    REGION_LABEL,
    BareMetalHost,
    BareMetalHostCredential,
    BareMetalHostCredentialSpec,
    BareMetalHostSpec,
    BMCDetails,
    ObjectMeta,
    Region,
    RegionSpec,
)
from shared.natsserver import NatsServer, NatsServerError, port_in_use

log = logging.getLogger("ccloud")

DEFAULT_DATA = "var/local"
# Fixed local ports besides --port (API) and --nats-port, each overridable.
PORTS = (
    ("lcm", 8430, "LCM agent endpoint"),
    ("mirror", 8480, "regional artifact mirror"),
    ("redfish", 8000, "Redfish BMC emulator"),
    ("image", 8089, "boot image server"),
    ("media", 8436, "bare-metal config drive server"),
)
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
    for name, default, what in PORTS:
        up.add_argument(f"--{name}-port", type=int, default=default,
                        help=f"{what} port (default {default})")
    boot = sub.add_parser("bootstrap", help="create the management cluster from this "
                          "machine (create|resume|rollback)")
    bootstrap_cli.add_commands(boot)
    boot.set_defaults(bootstrap=True)
    backup_cli.add_commands(sub)
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
    ports = [(args.port, "--port"), (args.nats_port, "--nats-port")]
    ports += [(getattr(args, f"{name}_port"), f"--{name}-port") for name, _, _ in PORTS]
    seen: dict[int, str] = {}
    for port, flag in ports:
        if port in seen:
            raise UpError(f"{flag} and {seen[port]} are both {port}: give each its own port")
        seen[port] = flag
    for port, flag in ports:
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


def bmc_credential_name(region: str) -> str:
    return f"{region}-bmc"


def bmc_credential(region: str) -> BareMetalHostCredential:
    """The BMC login every host of the region names (the emulator checks none; the random
    password exercises the write-only path and stays in the store)."""
    return BareMetalHostCredential(
        metadata=ObjectMeta(name=bmc_credential_name(region), namespace="default",
                            labels={REGION_LABEL: region}),
        spec=BareMetalHostCredentialSpec(region=region, username="admin",
                                         password=secrets.token_urlsafe(18)),
    )


def bare_metal_hosts(args: argparse.Namespace) -> list[BareMetalHost]:
    """One BareMetalHost per emulated server, registered as an operator would: each names
    its region's BareMetalHostCredential (``bmc_credential``)."""
    hosts = []
    for i in range(args.hosts):
        system = fake_system(i)
        hosts.append(BareMetalHost(
            metadata=ObjectMeta(
                name=system["name"], namespace="default",
                labels={REGION_LABEL: args.region},
                annotations={ADDRESSES_ANNOTATION: system["nics"][0]["ip"]},
            ),
            spec=BareMetalHostSpec(
                region=args.region,
                bmc=BMCDetails(address=system_address(args.redfish_port, system["uuid"]),
                               credentials_name=bmc_credential_name(args.region)),
                boot_mac_address=system["nics"][0]["mac"],
            ),
        ))
    return hosts


async def seed(settings: Settings, hosts: list[BareMetalHost]) -> None:
    """Objects the local region needs: the Region and its bare-metal inventory (the hosts'
    BMC credential first). Existing objects are kept: a second ``up`` changes nothing."""
    import nats

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
        for region in sorted({h.spec.region for h in hosts if h.spec.bmc.credentials_name}):
            with contextlib.suppress(AlreadyExists):
                await store.create(bmc_credential(region))
        for host in hosts:
            with contextlib.suppress(AlreadyExists):
                await store.create(host)
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
        load_secret(self.data)  # the LCM agent secret, before LCM and the node launcher race
        redfish = self.data / "redfish"
        redfish.mkdir(exist_ok=True)
        self.redfish_config = redfish / "emulator.conf"
        self.redfish_config.write_text(emulator_config(
            port=args.redfish_port, state_dir=redfish / "state",
            systems=[fake_system(i) for i in range(args.hosts)],
        ))


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
        await seed(settings, bare_metal_hosts(args))
        env = {
            **settings.to_env(),
            "CCLOUD_API_PORT": str(args.port),
            "CCLOUD_LCM_PORT": str(args.lcm_port),
            "CCLOUD_LCM_MIRROR_URL": f"http://127.0.0.1:{args.mirror_port}",
            "CCLOUD_MIRROR_PORT": str(args.mirror_port),
            "CCLOUD_LOCAL_IMAGE_PORT": str(args.image_port),
            "CCLOUD_BAREMETAL_IMAGE_BASE_URL": f"http://127.0.0.1:{args.image_port}",
            "CCLOUD_BAREMETAL_MEDIA_PORT": str(args.media_port),
            # What the bare-metal nodes' config drives tell their agents (LCM's secret is
            # its file in the shared data folder).
            "CCLOUD_AGENT_ENDPOINT": f"http://127.0.0.1:{args.lcm_port}",
        }
        emulator = supervisor.add("redfish", emulator_argv(prep.redfish_config), env)
        emulator.cwd = data / "redfish"
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
    if getattr(args, "bootstrap", False):
        sys.exit(bootstrap_cli.execute(args))
    if getattr(args, "backup_command", None):
        sys.exit(backup_cli.execute(args))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = asyncio.run(up(args, Prepared(args)))
    except UpError as e:
        print(f"ccloud: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
