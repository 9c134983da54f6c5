"""CLI tests run ``ccctl`` (``services.cli.main.main``) in a thread against a real gateway."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.cli.main import main
from tests.api.conftest import TOKENS, Gateway, gateway, store  # noqa: F401 - fixtures


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Ctl:
    config: Path
    gw: Gateway

    async def __call__(self, *args: str, user: str = "ops", stdin: str | None = None) -> Result:
        return await self.run(io.StringIO(), *args, user=user, stdin=stdin)

    async def run(
        self, out: io.StringIO, *args: str, user: str = "ops", stdin: str | None = None
    ) -> Result:
        """Run with a caller-owned stdout, so a test can watch output while it runs."""
        err = io.StringIO()
        argv = ["--config", str(self.config), "--token", TOKENS[user], *args]

        def run() -> int:
            if stdin is not None:
                import sys

                old = sys.stdin
                sys.stdin = io.StringIO(stdin)
                try:
                    return main(argv, out=out, err=err)
                finally:
                    sys.stdin = old
            return main(argv, out=out, err=err)

        code = await asyncio.to_thread(run)
        return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def ctl(gateway: Gateway, tmp_path: Path) -> Ctl:  # noqa: F811 - fixture injection
    config = tmp_path / "config.yaml"
    config.write_text(f"server: {gateway.url}\ntoken: {TOKENS['ops']}\nnamespace: team-a\n")
    return Ctl(config=config, gw=gateway)
