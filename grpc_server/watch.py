"""Who waits on which job, woken by the store's events (from every replica on PostgreSQL,
through LISTEN/NOTIFY; in-process on SQLite): WaitJob, WatchJob and the REST bridge's
`Prefer: wait` and event streams never poll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from grpc_server.store.base import StoreEvent


class JobChanges:
    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    @property
    def watched(self) -> int:
        """Jobs someone waits on now (diagnostics, tests)."""
        return len(self._waiting)

    def on_event(self, event: StoreEvent) -> None:
        """A store event: wake everyone waiting on its job (on every job when the event says
        events may have been lost)."""
        if not event.job_id:
            for events in self._waiting.values():
                for changed in events:
                    changed.set()
            return
        for changed in self._waiting.get(event.job_id, ()):
            changed.set()

    @contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set at each change of the job while the block runs. Clear it, then read the
        job, then wait on it: a change between the read and the wait is not missed."""
        changed = asyncio.Event()
        self._waiting.setdefault(job_id, set()).add(changed)
        try:
            yield changed
        finally:
            events = self._waiting.get(job_id)
            if events is not None:
                events.discard(changed)
                if not events:
                    del self._waiting[job_id]
