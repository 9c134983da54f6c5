"""Run the real Helm library (helm-sdkpy, Python 3.12 venv) for the deploy tests.

The test suite runs on Python 3.11, helm-sdkpy needs 3.12: the tests call this script with
``var/helm-venv/bin/python`` and read one JSON document from stdout.

    helm_driver.py lint CHART [--values FILE]...
    helm_driver.py install CHART --kubeconfig FILE --namespace NS --release NAME
                   [--values FILE]...

``install`` is a real client-side Helm install (no wait) against the API server the
kubeconfig names; Helm's own release record goes to its in-memory driver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

os.environ.setdefault("HELM_DRIVER", "memory")

import yaml  # noqa: E402  (helm-sdkpy's venv has no PyYAML unless installed; see values())
from helm_sdkpy import Configuration, Lint  # noqa: E402
from helm_sdkpy.actions import _run_release_action  # noqa: E402
from helm_sdkpy.exceptions import HelmError, InstallError  # noqa: E402


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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["lint", "install"])
    p.add_argument("chart")
    p.add_argument("--values", action="append", default=[])
    p.add_argument("--kubeconfig", default="")
    p.add_argument("--namespace", default="ccloud")
    p.add_argument("--release", default="cc")
    args = p.parse_args()
    try:
        result = asyncio.run(lint(args)) if args.action == "lint" else install(args)
    except HelmError as e:
        print(json.dumps({"error": str(e)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
