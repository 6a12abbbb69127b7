"""Periodic housekeeping: expired leases back to the queue, expired jobs deleted, webhook
events delivered or given up longer ago than the configured history deleted, the
staging directories that stopped processes left behind removed, and, more seldom, the files
in the blob store that no job references (store.blobs_beside).

All of it is idempotent and guarded, safe to run on every replica at once (staging
directories go only once stale: see grpc_server.staging).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from grpc_server.config import DispatcherSettings
from grpc_server.dispatch.outcome import abandoned_error
from grpc_server.staging import remove_stale_staging
from grpc_server.store.base import JobStore, StoreUnavailable

log = logging.getLogger("asyncgate.sweeper")

DELETE_BATCH = 500


@dataclass(frozen=True)
class StagingSweep:
    """Which staging directories to sweep: under `root`, unwritten for `max_age_seconds`
    (grpc_server.staging.stale_staging_age)."""

    root: Path
    max_age_seconds: float


async def sweep_once(
    store: JobStore, settings: DispatcherSettings, now: datetime, staging: StagingSweep | None = None
) -> tuple[int, int]:
    """Reap leases and delete expired jobs once; (jobs requeued or failed, jobs deleted)."""
    if staging is not None:  # local files: first, so that an unavailable store does not hold them up
        try:
            await asyncio.to_thread(
                remove_stale_staging, staging.root, staging.max_age_seconds, now.timestamp()
            )
        except OSError as exc:  # the staging root cannot be read: the next round tries again
            log.warning("staging sweep failed: %s", exc)
    reaped = await store.reap_expired_leases(
        now, settings.max_job_attempts, abandoned_error(settings.max_job_attempts)
    )
    deleted = await _in_batches(lambda: store.delete_expired(now, DELETE_BATCH))
    history_start = now - timedelta(seconds=settings.webhook_history_seconds)
    events = await _in_batches(lambda: store.delete_finished_webhooks(history_start, DELETE_BATCH))
    if reaped.requeued or reaped.failed or deleted or events:
        log.info(
            "sweep: %d requeued, %d failed, %d expired jobs deleted, %d finished webhook events deleted",
            reaped.requeued,
            reaped.failed,
            deleted,
            events,
        )
    return reaped.requeued + reaped.failed, deleted


async def _in_batches(delete_batch: Callable[[], Awaitable[int]]) -> int:
    """Call `delete_batch` until it deletes fewer than DELETE_BATCH; how many in all."""
    deleted = 0
    while (batch := await delete_batch()) > 0:
        deleted += batch
        if batch < DELETE_BATCH:
            break
    return deleted


@dataclass
class OrphanSweep:
    """When to look for blobs no job references: every `interval`, first at `due`. Seldom: it
    lists the whole blob store."""

    interval: timedelta
    due: datetime

    async def run_if_due(self, store: JobStore, now: datetime) -> None:
        if now >= self.due:
            self.due = now + self.interval
            await store.collect_orphan_blobs(now)


async def run_sweeper(
    store: JobStore,
    settings: DispatcherSettings,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
    staging: StagingSweep | None = None,
    orphans: OrphanSweep | None = None,
) -> None:
    while not stop.is_set():
        try:
            await sweep_once(store, settings, clock(), staging)
            if orphans is not None:
                await orphans.run_if_due(store, clock())
        except StoreUnavailable as exc:
            log.warning("sweep skipped: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)
        except TimeoutError:
            pass
