"""``python -m services.api``: run the gateway against NATS (store and bus).

Settings come from the shared ``CCLOUD_*`` environment (``shared.config.Settings``:
``CCLOUD_NATS_URL``, ``CCLOUD_PREFIX`` -> bucket ``<prefix>-objects`` and bus subjects
``<prefix>.>``, ``CCLOUD_STORE``, ``CCLOUD_DATA_DIR``) plus the gateway's own::

    --host         CCLOUD_API_HOST      127.0.0.1
    --port         CCLOUD_API_PORT      8443
    --tokens-file  CCLOUD_TOKENS_FILE   <data-dir>/tokens.yaml (created on first start,
                                        with the operator token in <data-dir>/admin-token)
    --audit-log    CCLOUD_AUDIT_LOG     <data-dir>/audit.log; - for standard output (the
                                        container's log, as the chart sets it)
    --access-log   CCLOUD_API_ACCESS_LOG  off; 1 logs a line per request (a cost on every
                                        request; writes are audited and /metrics counts
                                        every request anyway)
    --webhook-port CCLOUD_WEBHOOK_PORT  0 (off); the validating admission webhook's HTTPS
                                        port, for writes made straight to the Kubernetes
                                        API (services/api/webhook.py)
    --webhook-cert-dir CCLOUD_WEBHOOK_CERT_DIR  /tmp/k8s-webhook-server/serving-certs:
                                        its tls.crt and tls.key

Flags ``--nats-url``, ``--prefix`` and ``--data-dir`` override the shared settings.
``CCLOUD_HEALTH_HOST``/``CCLOUD_HEALTH_PORT`` (127.0.0.1, 0: a free port, logged) is the
health port: probes, and /metrics with the fleet's state (services/api/ops.py), kept off
the public API port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import msgspec
from aiohttp import web
from aiohttp.log import access_logger

from services.api import webhook
from services.api.app import create_app
from services.api.auth import AuthConfigError, Authenticator, ensure_bootstrap
from services.api.ops import create_ops_app
from shared.bus import Bus
from shared.config import Settings
from shared.service import connect, make_store
from shared.tls import ServingCert
from shared.webserve import start_site

log = logging.getLogger("services.api")
DEFAULT_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # controller-runtime's default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m services.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nats-url", default=None)
    p.add_argument("--prefix", default=None, help="bucket and bus subject prefix")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--host", default=env("CCLOUD_API_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("CCLOUD_API_PORT", "8443")))
    p.add_argument("--tokens-file", default=env("CCLOUD_TOKENS_FILE", ""))
    p.add_argument("--audit-log", default=env("CCLOUD_AUDIT_LOG", ""))
    p.add_argument("--access-log", action="store_true",
                   default=env("CCLOUD_API_ACCESS_LOG", "") not in ("", "0", "false"))
    p.add_argument("--webhook-port", type=int, default=int(env("CCLOUD_WEBHOOK_PORT", "0")))
    p.add_argument("--webhook-cert-dir", type=Path,
                   default=Path(env("CCLOUD_WEBHOOK_CERT_DIR", DEFAULT_CERT_DIR)))
    return p.parse_args(argv)


def settings_for(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides = {"nats_url": args.nats_url, "prefix": args.prefix, "data_dir": args.data_dir}
    return msgspec.structs.replace(settings, **{k: v for k, v in overrides.items() if v})


def load_auth(args: argparse.Namespace, data: Path) -> Authenticator:
    if args.tokens_file:
        return Authenticator.from_file(args.tokens_file, watch=True)
    tokens, fresh = ensure_bootstrap(data)
    if fresh:
        log.info("bootstrap operator token written to %s (mode 0600)", data / "admin-token")
    return Authenticator.from_file(tokens, watch=True)


async def serve(args: argparse.Namespace) -> None:
    settings = settings_for(args)
    if settings.health_port == args.port:
        raise OSError(f"CCLOUD_HEALTH_PORT ({settings.health_port}) must differ from the API "
                      "port: the health port serves the fleet's metrics, the API port is public")
    data = Path(settings.data_dir)
    auth = load_auth(args, data)
    hook_cert = ServingCert(args.webhook_cert_dir) if args.webhook_port else None
    nc = await connect(settings, "api")
    bus = Bus(nc, prefix=settings.prefix, service="api")
    await bus.start()
    store = await make_store(settings, nc, bus)
    app = create_app(
        store, auth, audit=args.audit_log or data / "audit.log", nc=nc, bus_prefix=settings.prefix
    )
    runner = web.AppRunner(app, access_log=access_logger if args.access_log else None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    log.info("API gateway listening on http://%s:%d", args.host, args.port)
    ops, ops_port = await start_site(create_ops_app(app), settings.health_host,
                                     settings.health_port)
    log.info("health and fleet metrics on http://%s:%d", settings.health_host, ops_port)
    hook = None
    if hook_cert is not None:
        hook = await webhook.serve(store, args.host, args.webhook_port, hook_cert)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if hook is not None:
            await hook.stop()
        await ops.cleanup()
        await runner.cleanup()
        await bus.stop()
        await store.close()
        with contextlib.suppress(Exception):
            await nc.drain()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except AuthConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
