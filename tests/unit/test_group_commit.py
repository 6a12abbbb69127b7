"""Group commit: batches formed by the writer thread, failures routed to their callers,
other writer work served between batches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from grpc_server.store.group_commit import GroupCommit


@pytest.fixture
def writer() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown(wait=True)


class Recorder:
    """A batch writer that records its batches; the first one waits for `release`."""

    def __init__(self, fail: set[int] | None = None, raise_whole: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail or set()
        self.raise_whole = raise_whole

    def __call__(self, batch: Sequence[int]) -> list[BaseException | None]:
        if not self.batches:
            self.started.set()
            self.release.wait(5)
        self.batches.append(list(batch))
        if self.raise_whole:
            raise OSError("disk full")
        return [ValueError(f"item {i}") if i in self.fail else None for i in batch]


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def test_submits_arriving_during_a_write_share_the_next_transaction(writer: ThreadPoolExecutor) -> None:
    write = Recorder()
    commit = GroupCommit(writer, write)
    first = asyncio.create_task(commit.submit(0))
    await asyncio.to_thread(write.started.wait, 5)  # the first batch is being written
    rest = [asyncio.create_task(commit.submit(i)) for i in range(1, 20)]
    await asyncio.sleep(0.01)
    write.release.set()
    await asyncio.gather(first, *rest)
    assert write.batches == [[0], list(range(1, 20))]


async def test_a_failing_item_fails_only_its_own_caller(writer: ThreadPoolExecutor) -> None:
    write = Recorder(fail={2})
    write.release.set()
    commit = GroupCommit(writer, write)
    results = await asyncio.gather(*(commit.submit(i) for i in range(4)), return_exceptions=True)
    assert [type(r) for r in results] == [type(None), type(None), ValueError, type(None)]
    assert str(results[2]) == "item 2"


async def test_a_failed_transaction_fails_every_caller_in_it(writer: ThreadPoolExecutor) -> None:
    write = Recorder(raise_whole=True)
    write.release.set()
    commit = GroupCommit(writer, write)
    results = await asyncio.gather(*(commit.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)


async def test_other_writes_run_between_batches(writer: ThreadPoolExecutor) -> None:
    """A steady stream of submits must not starve claims or lease renewals queued on the writer."""
    order: list[str] = []

    def write(batch: Sequence[int]) -> list[BaseException | None]:
        order.append("batch")
        threading.Event().wait(0.002)
        return [None] * len(batch)

    commit = GroupCommit(writer, write)
    stop = asyncio.Event()

    async def keep_submitting() -> None:
        while not stop.is_set():
            await commit.submit(1)

    submitters = [asyncio.create_task(keep_submitting()) for _ in range(4)]
    await _until(lambda: len(order) >= 3)
    renewal = asyncio.get_running_loop().run_in_executor(writer, order.append, "renewal")
    await asyncio.wait_for(renewal, 5)
    batches_before_renewal = order.index("renewal")
    stop.set()
    await asyncio.gather(*submitters)
    assert order.count("batch") > batches_before_renewal  # submits were still coming
    assert batches_before_renewal <= 5


async def test_an_item_written_after_its_caller_left_is_still_reported(writer: ThreadPoolExecutor) -> None:
    write = Recorder()
    written: list[int] = []
    commit = GroupCommit(writer, write, on_written=written.append)
    waiting = asyncio.create_task(commit.submit(7))
    await asyncio.to_thread(write.started.wait, 5)
    waiting.cancel()
    write.release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await _until(lambda: written == [7])


async def test_submits_after_the_writer_stopped_fail(writer: ThreadPoolExecutor) -> None:
    writer.shutdown(wait=True)
    commit = GroupCommit(writer, Recorder())
    with pytest.raises(RuntimeError, match="shutdown"):
        await commit.submit(1)
    with pytest.raises(RuntimeError, match="shutdown"):  # and the next one is not left waiting
        await asyncio.wait_for(commit.submit(2), 5)
