"""Fixtures of the bootstrap tests: a stand-in management set per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bootstrap.management import Management, management_set


@pytest.fixture
async def mgmt(tmp_path: Path, prefix: str) -> AsyncIterator[Management]:
    async with management_set(tmp_path, prefix) as m:
        yield m
