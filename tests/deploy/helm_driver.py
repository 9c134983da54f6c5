"""Run the real Helm library (helm-sdkpy, Python 3.12 venv) for the deploy tests.

The test suite runs on Python 3.11, helm-sdkpy needs 3.12: the tests call this script with
``var/helm-venv/bin/python`` and read one JSON document from stdout.

    echo '[{"action": "lint", "chart": DIR},
           {"action": "install", "chart": DIR, "kubeconfig": FILE, "namespace": NS,
            "release": NAME, "values_files": [FILE, ...]}]' | helm_driver.py

One process runs every job (the Go library loads once); each answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.

``install`` is a real client-side Helm install (no wait) against the API server the
kubeconfig names. Run it with ``HELM_DRIVER=memory`` in the environment (the Go runtime
reads the environment of the process start) to keep Helm's release record in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import yaml
from helm_sdkpy import Configuration, Lint
from helm_sdkpy.actions import _run_release_action
from helm_sdkpy.exceptions import HelmError, InstallError


def merged_values(files: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in files:
        with open(f) as fh:
            _merge(out, yaml.safe_load(fh) or {})
    return out


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


async def lint(args: argparse.Namespace) -> dict[str, Any]:
    return await Lint(Configuration(namespace=args.namespace)).run(args.chart)


def install(args: argparse.Namespace) -> dict[str, Any]:
    cfg = Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)
    options = {
        "create_namespace": False,
        "wait": False,
        "timeout_seconds": 60,
        "wait_for_jobs": False,
        "server_side_apply": "false",
        "force_conflicts": False,
        "disable_openapi_validation": True,
        "skip_schema_validation": False,
        "rollback_on_failure": False,
        "take_ownership": False,
    }
    values = merged_values(args.values)
    return _run_release_action(cfg._lib.helm_sdkpy_install, cfg, args.release, args.chart,
                               values, None, options, InstallError, "install")


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    args = argparse.Namespace(
        chart=job["chart"], namespace=job.get("namespace", "ccloud"),
        release=job.get("release", "cc"), kubeconfig=job.get("kubeconfig", ""),
        values=job.get("values_files", []),
    )
    try:
        if job["action"] == "lint":
            return {"ok": True, "result": asyncio.run(lint(args))}
        return {"ok": True, "result": install(args)}
    except HelmError as e:
        return {"ok": False, "error": str(e)}


def main() -> int:
    """Read a JSON list of jobs on stdin, answer a JSON list of results on stdout."""
    jobs = json.load(sys.stdin)
    json.dump([run_job(j) for j in jobs], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
