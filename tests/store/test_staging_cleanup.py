"""Staging directories left by killed processes: removed at start and by the sweeper once
stale, never while an upload or job may still be using them. Real directories, with their
modification times set back as the years would have."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from grpc_server.config import DispatcherSettings, ServerConfig
from grpc_server.dispatch.sweeper import StagingSweep, sweep_once
from grpc_server.staging import STALE_MARGIN_SECONDS, remove_stale_staging, stale_staging_age
from grpc_server.store.sqlite import SQLiteStore

AGE = 3600.0


def _leftover(root: Path, name: str, age_seconds: float, now: float, files: int = 2) -> Path:
    """A staging directory with files, last written `age_seconds` before `now`."""
    directory = root / name
    directory.mkdir(parents=True)
    for i in range(files):
        path = directory / f"image-{i}"
        path.write_bytes(os.urandom(1000))
        os.utime(path, (now - age_seconds, now - age_seconds))
    os.utime(directory, (now - age_seconds, now - age_seconds))
    return directory


def test_only_stale_upload_and_job_directories_are_removed(tmp_path: Path) -> None:
    now = time.time()
    stale = [
        _leftover(tmp_path, "upload-abc123", AGE + 1, now),
        _leftover(tmp_path, "job-0b8f-xyz", AGE + 1, now),
    ]
    live = [
        _leftover(tmp_path, "upload-fresh", AGE - 60, now),
        _leftover(tmp_path, "job-running", 0, now, files=0),
        _leftover(tmp_path, "other-stale", AGE * 10, now),  # not ours: left alone
    ]
    recently_written = _leftover(tmp_path, "upload-old-but-growing", AGE * 10, now)
    os.utime(recently_written / "image-1", (now, now))  # an upload still receiving chunks
    live.append(recently_written)

    assert remove_stale_staging(tmp_path, AGE, now) == 2
    assert not any(d.exists() for d in stale)
    assert all(d.exists() for d in live)
    assert remove_stale_staging(tmp_path / "missing", AGE, now) == 0


def test_the_stale_age_outlasts_a_job_and_an_idle_upload() -> None:
    config = ServerConfig(
        upload_idle_timeout_seconds=30,
        dispatcher=DispatcherSettings(job_deadline_seconds=3600, shutdown_grace_seconds=10),
    )
    assert stale_staging_age(config) == 3610 + STALE_MARGIN_SECONDS
    idle_uploads = replace(config, upload_idle_timeout_seconds=7200)
    assert stale_staging_age(idle_uploads) == 7200 + STALE_MARGIN_SECONDS


async def test_the_sweeper_removes_stale_staging_directories(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    await store.open()
    now = datetime.now(UTC)
    staging = tmp_path / "staging"
    old = _leftover(staging, "upload-left", AGE + 1, now.timestamp())
    young = _leftover(staging, "job-live", 1, now.timestamp())
    try:
        await sweep_once(store, DispatcherSettings(), now, StagingSweep(staging, AGE))
    finally:
        await store.close()
    assert not old.exists() and young.exists()
