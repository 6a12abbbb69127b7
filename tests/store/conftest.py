"""Every store backend runs the same suite: parametrize the `store` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grpc_server.store.base import JobStore
from grpc_server.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    backend: JobStore = SQLiteStore(tmp_path / "store.sqlite3")
    await backend.open()
    yield backend
    await backend.close()
