"""The gateway takes up edits of its tokens file while it runs, and a broken edit locks
nobody out."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from services.api.auth import RELOAD_CHECK_SECONDS, Authenticator, user_entry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += RELOAD_CHECK_SECONDS


def write(path: Path, doc: dict) -> None:
    """As a Secret volume updates: a whole new file swapped in."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    tmp.replace(path)


def reloads(result: str) -> float:
    return REGISTRY.get_sample_value("ccloud_auth_reloads_total", {"result": result}) or 0.0


async def test_users_added_and_revoked_apply_without_a_restart(tmp_path: Path) -> None:
    path, clock = tmp_path / "tokens.yaml", Clock()
    write(path, {"users": [user_entry("alice", "alice-token", roles={"team-a": "writer"})]})
    auth = Authenticator.from_file(path, watch=True, clock=clock)
    assert (await auth.authenticate("alice-token")).name == "alice"
    assert await auth.authenticate("bob-token") is None

    ok = reloads("ok")
    write(path, {"users": [user_entry("bob", "bob-token", roles={"team-a": "reader"})]})
    assert await auth.authenticate("bob-token") is None, "not looked at again within a second"
    clock.tick()
    bob = await auth.authenticate("bob-token")
    assert bob is not None and bob.roles == {"team-a": "reader"}
    assert await auth.authenticate("alice-token") is None, "a removed user's token is refused"
    assert reloads("ok") == ok + 1

    clock.tick()  # nothing changed: not parsed again
    await auth.authenticate("bob-token")
    assert reloads("ok") == ok + 1


async def test_a_broken_edit_keeps_the_previous_users(tmp_path: Path, caplog) -> None:
    path, clock = tmp_path / "tokens.yaml", Clock()
    write(path, {"users": [user_entry("alice", "alice-token", operator=True)]})
    auth = Authenticator.from_file(path, watch=True, clock=clock)
    failed = reloads("failed")
    for broken in ("users: [{name: x}]\n", "users: [\n"):  # a missing digest; bad YAML
        path.write_text(broken)
        os.utime(path, ns=(1, path.stat().st_mtime_ns + 1))
        clock.tick()
        assert (await auth.authenticate("alice-token")).operator, broken
    assert reloads("failed") == failed + 2
    assert "the previous users stay" in caplog.text and "tokenSha256" in caplog.text
    path.unlink()  # a Secret deleted: still the last users that loaded
    clock.tick()
    assert (await auth.authenticate("alice-token")).operator

    write(path, {"users": [user_entry("carol", "carol-token")]})
    clock.tick()
    assert (await auth.authenticate("carol-token")).name == "carol"


async def test_single_sign_on_switched_on_by_an_edit(tmp_path: Path) -> None:
    """The console asks /ui/auth-config (auth.oidc) without a token: it sees the edit too."""
    path, clock = tmp_path / "tokens.yaml", Clock()
    write(path, {"users": []})
    auth = Authenticator.from_file(path, watch=True, clock=clock)
    assert auth.oidc is None
    write(path, {"users": [], "oidc": {"issuerURL": "https://idp.example/realms/x",
                                       "clientID": "ccloud"}})
    clock.tick()
    assert auth.oidc is not None and auth.oidc.verifier.client_id == "ccloud"


async def test_a_file_loaded_without_watch_stays_as_loaded(tmp_path: Path) -> None:
    path, clock = tmp_path / "tokens.yaml", Clock()
    write(path, {"users": [user_entry("alice", "alice-token")]})
    auth = Authenticator.from_file(path, clock=clock)
    write(path, {"users": []})
    clock.tick()
    assert await auth.authenticate("alice-token") is not None
