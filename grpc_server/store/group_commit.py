"""Group commit drained by the writer thread itself.

Submits that arrive while a transaction is being written wait for the next one,
which writes them all. The writer thread picks up whatever has queued as soon as
it finishes a transaction: it does not wait for the event loop, busy with requests
under load, to hand it the next batch. Each batch is one item on the writer's
executor, so other writes (claims, lease renewals, completions) queued there take
their turn between batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

BatchWriter = Callable[[Sequence[T]], Sequence[BaseException | None]]
"""Writes items in one transaction (on the writer thread); per item, None or why it failed."""
Written = Callable[[T], None]
"""Called on the event loop for each item committed, whether or not its caller still waits."""


@dataclass
class _Pending(Generic[T]):
    item: T
    done: asyncio.Future[None]


class GroupCommit(Generic[T]):
    def __init__(
        self, executor: Executor, write_batch: BatchWriter[T], on_written: Written[T] = lambda _: None
    ) -> None:
        self._executor = executor
        self._write_batch = write_batch
        self._on_written = on_written
        self._lock = threading.Lock()
        self._queue: list[_Pending[T]] = []
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> None:
        """Return once the transaction holding `item` committed; raise what made it fail."""
        self._loop = asyncio.get_running_loop()
        done = self._loop.create_future()
        with self._lock:
            self._queue.append(_Pending(item, done))
            start, self._draining = not self._draining, True
        if start:
            self._schedule_drain()
        await done

    def _drain_one_batch(self) -> None:
        """On the writer thread: write what has queued, then queue itself again if more came."""
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            outcomes = self._write_batch([p.item for p in batch])
        except BaseException as exc:  # the whole transaction failed: every caller learns why
            outcomes = [exc] * len(batch)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._settle, batch, outcomes)
        with self._lock:
            if not self._queue:
                self._draining = False
                return
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        try:
            self._executor.submit(self._drain_one_batch)
        except RuntimeError as exc:  # the executor was shut down: nothing will write what is queued
            with self._lock:
                rest, self._queue, self._draining = self._queue, [], False
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._settle, rest, [exc] * len(rest))

    def _settle(self, batch: Sequence[_Pending[T]], outcomes: Sequence[BaseException | None]) -> None:
        for pending, failure in zip(batch, outcomes, strict=True):
            if failure is None:
                self._on_written(pending.item)
            if pending.done.done():  # its caller gave up waiting
                continue
            if failure is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(failure)
