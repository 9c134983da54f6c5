"""``python -m services.api``: run the gateway against NATS (store and bus).

Settings come from flags or the environment (flags win)::

    --nats-url     CCLOUD_NATS_URL      nats://127.0.0.1:4222
    --bucket       CCLOUD_STORE_BUCKET  ccloud-objects
    --bus-prefix   CCLOUD_BUS_PREFIX    ccloud
    --host         CCLOUD_API_HOST      127.0.0.1
    --port         CCLOUD_API_PORT      8443
    --data-dir     CCLOUD_DATA_DIR      ./var/api   (bootstrap token, default tokens/audit)
    --tokens-file  CCLOUD_TOKENS_FILE   <data-dir>/tokens.yaml (created on first start)
    --audit-log    CCLOUD_AUDIT_LOG     <data-dir>/audit.log
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import nats
from aiohttp import web

from services.api.app import create_app
from services.api.auth import AuthConfigError, Authenticator, ensure_bootstrap
from shared.store.kv import KVStore

log = logging.getLogger("services.api")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m services.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nats-url", default=env("CCLOUD_NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--bucket", default=env("CCLOUD_STORE_BUCKET", "ccloud-objects"))
    p.add_argument("--bus-prefix", default=env("CCLOUD_BUS_PREFIX", "ccloud"))
    p.add_argument("--host", default=env("CCLOUD_API_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("CCLOUD_API_PORT", "8443")))
    p.add_argument("--data-dir", default=env("CCLOUD_DATA_DIR", "var/api"))
    p.add_argument("--tokens-file", default=env("CCLOUD_TOKENS_FILE", ""))
    p.add_argument("--audit-log", default=env("CCLOUD_AUDIT_LOG", ""))
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    data = Path(args.data_dir)
    if args.tokens_file:
        tokens = Path(args.tokens_file)
    else:
        tokens, fresh = ensure_bootstrap(data)
        if fresh:
            log.info("bootstrap operator token written to %s (mode 0600)", data / "admin-token")
    auth = Authenticator.from_file(tokens)
    nc = await nats.connect(args.nats_url, name="ccloud-api")
    store = KVStore(nc, bucket=args.bucket)
    await store.start()
    app = create_app(
        store, auth, audit=args.audit_log or data / "audit.log", nc=nc, bus_prefix=args.bus_prefix
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    log.info("API gateway listening on http://%s:%d", args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await store.close()
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
