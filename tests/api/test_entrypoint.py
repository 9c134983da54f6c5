"""``python -m services.api`` against the real nats-server, and the bootstrap token."""

from __future__ import annotations

import asyncio
import signal
import stat
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from services.api.auth import AuthConfigError, Authenticator, ensure_bootstrap, user_entry
from shared.natsserver import NatsServer, free_port
from tests.waiting import eventually


async def test_bootstrap_token_is_private_and_created_once(tmp_path: Path) -> None:
    tokens, token = ensure_bootstrap(tmp_path)
    assert token
    secret = tmp_path / "admin-token"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() == token
    assert token not in tokens.read_text()  # only its hash is kept
    user = await Authenticator.from_file(tokens).authenticate(token)
    assert user is not None and user.operator
    again, fresh = ensure_bootstrap(tmp_path)
    assert again == tokens and fresh is None


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({}, "'users' must be a list"),
        ({"users": [{"name": "x"}]}, "tokenSha256"),
        ({"users": [{"name": "x", "tokenSha256": "a" * 64, "roles": {"ns": "god"}}]},
         "unknown role 'god'"),
    ],
)
def test_tokens_file_errors_are_clear(doc: dict, fragment: str) -> None:
    with pytest.raises(AuthConfigError, match=fragment):
        Authenticator.from_dict(doc)


REPO = Path(__file__).resolve().parents[2]


async def test_module_entrypoint_serves_with_bootstrap_token(
    nats_server: NatsServer, tmp_path: Path, prefix: str
) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.api", "--nats-url", nats_server.url,
        "--prefix", prefix, "--port", str(port),
        "--data-dir", str(tmp_path),
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                assert proc.returncode is None, "gateway exited early"
                try:
                    async with session.get(url + "/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, timeout=20, what="the gateway to be ready")
            token = (tmp_path / "admin-token").read_text().strip()
            regions = url + "/apis/kaas.containercloud.dev/v1alpha1/regions"
            async with session.get(regions, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
            async with session.get(regions) as r:
                assert r.status == 401

            # A user added to the running gateway's tokens file is taken up, no restart
            # (written as a Secret volume updates: a new file renamed over the old one).
            tokens = tmp_path / "tokens.yaml"
            doc = yaml.safe_load(tokens.read_text())
            doc["users"].append(user_entry("bob", "bob-token-added-later",
                                           roles={"team-a": "reader"}))
            (tmp_path / "tokens.new").write_text(yaml.safe_dump(doc))
            (tmp_path / "tokens.new").replace(tokens)
            bob = {"Authorization": "Bearer bob-token-added-later"}

            async def bob_accepted() -> bool:
                async with session.get(regions, headers=bob) as r:
                    return r.status == 200

            await eventually(bob_accepted, timeout=10, what="the added user accepted")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    assert token not in out.decode()
