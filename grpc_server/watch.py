"""Who waits on which job, woken by the store's events (from every replica on PostgreSQL,
through LISTEN/NOTIFY; in-process on SQLite): WaitJob, WatchJob and the REST bridge's
`Prefer: wait` and event streams never poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from grpc_server.store.base import StoreEvent

T = TypeVar("T")


class JobChanges:
    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._generation: dict[str, int] = {}
        """Events heard per watched job: a read begun at generation g has seen every change
        whose event came before g was reached."""
        self._reads: dict[tuple[str, int], asyncio.Future[Any]] = {}

    async def read(self, job_id: str, load: Callable[[], Awaitable[T]]) -> T:
        """load(), shared by every caller asking while no newer event for the job came: thousands
        of waiters woken by one event cost one store read, and each read began after the event
        that woke its callers, so none of them sees a state older than that event."""
        key = (job_id, self._generation.get(job_id, 0))
        shared = self._reads.get(key)
        if shared is None:
            shared = asyncio.ensure_future(load())
            self._reads[key] = shared
            shared.add_done_callback(lambda _: self._reads.pop(key, None))
        result: T = await asyncio.shield(shared)
        return result

    @property
    def watched(self) -> int:
        """Jobs someone waits on now (diagnostics, tests)."""
        return len(self._waiting)

    def on_event(self, event: StoreEvent) -> None:
        """A store event: wake everyone waiting on its job (on every job when the event says
        events may have been lost)."""
        if not event.job_id:
            for job_id in self._waiting:
                self._generation[job_id] = self._generation.get(job_id, 0) + 1
            for events in self._waiting.values():
                for changed in events:
                    changed.set()
            return
        if event.job_id in self._waiting:
            self._generation[event.job_id] = self._generation.get(event.job_id, 0) + 1
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
                    self._generation.pop(job_id, None)
