"""``ccloud bootstrap create|resume|rollback`` through the ``ccloud`` console entry.

Errors are one line on stderr with exit code 1 (never a traceback); a create without a
health URL is refused before anything starts; a full create (interrupted) then resume
runs through the same entry against a stand-in management set.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.local.cli import main
from tests.bootstrap.management import Management


def ccloud(*argv: str) -> int:
    """Run the ``ccloud`` console entry; its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 1


def test_help_lists_the_commands_and_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert ccloud("--help") == 0
    assert "bootstrap" in capsys.readouterr().out
    assert ccloud("bootstrap", "--help") == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("create", "resume", "rollback"))
    assert ccloud("bootstrap", "create", "--help") == 0
    out = capsys.readouterr().out
    for option in ("--management-url", "--health", "--prefix", "--machines", "--data"):
        assert option in out


def test_create_without_health_url_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "boot"
    assert ccloud("bootstrap", "create", "--data", str(data),
                  "--management-url", "nats://127.0.0.1:1") == 1
    err = capsys.readouterr().err
    assert "at least one --health URL is required" in err
    assert "Traceback" not in err and "resume" not in err
    assert not data.exists(), "nothing may start before the arguments are accepted"

    assert ccloud("bootstrap", "create", "--data", str(data), "--management-url",
                  "nats://127.0.0.1:1", "--health", "127.0.0.1:8443/readyz") == 1
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert not data.exists()


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ccloud("bootstrap") == 2
    assert "required" in capsys.readouterr().err
    assert ccloud("bootstrap", "create", "--data", str(tmp_path)) == 2
    assert "--management-url" in capsys.readouterr().err
    assert ccloud("bootstrap", "resume", "--data", str(tmp_path / "none")) == 1
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "Traceback" not in err


async def test_create_interrupted_then_resumed(
    tmp_path: Path, prefix: str, mgmt: Management, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "boot"
    data = str(data_dir)
    monkeypatch.setenv("CCLOUD_BOOTSTRAP_FAIL_AFTER", "1")
    # The entry runs its own event loop, so it runs in a thread beside this test's loop.
    code = await asyncio.to_thread(
        ccloud, "bootstrap", "create", "--data", data, "--management-url", mgmt.server.url,
        "--prefix", prefix, "--health", mgmt.readyz, "--machines", "1")
    assert code == 1
    err = capsys.readouterr().err
    assert "injected failure after moving 1 objects" in err and "'resume'" in err
    monkeypatch.delenv("CCLOUD_BOOTSTRAP_FAIL_AFTER")

    assert await asyncio.to_thread(ccloud, "bootstrap", "resume", "--data", data) == 0
    assert "3 objects moved" in capsys.readouterr().out
    assert not data_dir.exists()
    assert len(await mgmt.objects()) == 3
