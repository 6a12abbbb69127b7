"""Periodic housekeeping: expired leases back to the queue, expired jobs deleted.

Both are idempotent, guarded writes, safe to run on every replica at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from grpc_server.config import DispatcherSettings
from grpc_server.dispatch.outcome import abandoned_error
from grpc_server.store.base import JobStore, StoreUnavailable

log = logging.getLogger("asyncgate.sweeper")

DELETE_BATCH = 500


async def sweep_once(store: JobStore, settings: DispatcherSettings, now: datetime) -> tuple[int, int]:
    """Reap leases and delete expired jobs once; (jobs requeued or failed, jobs deleted)."""
    reaped = await store.reap_expired_leases(
        now, settings.max_job_attempts, abandoned_error(settings.max_job_attempts)
    )
    deleted = 0
    while (batch := await store.delete_expired(now, DELETE_BATCH)) > 0:
        deleted += batch
        if batch < DELETE_BATCH:
            break
    if reaped.requeued or reaped.failed or deleted:
        log.info(
            "sweep: %d requeued, %d failed, %d expired jobs deleted", reaped.requeued, reaped.failed, deleted
        )
    return reaped.requeued + reaped.failed, deleted


async def run_sweeper(
    store: JobStore, settings: DispatcherSettings, clock: Callable[[], datetime], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await sweep_once(store, settings, clock())
        except StoreUnavailable as exc:
            log.warning("sweep skipped: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)
        except TimeoutError:
            pass
