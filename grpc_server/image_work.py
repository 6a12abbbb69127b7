"""Where image work runs: never on the event loop, and within a budget of decoded pixels.

Checking an upload can mean decoding it (a WEBP fully, a JPEG at 1/8 scale), and a file of a
few hundred bytes can declare 64 megapixels. So image work runs on a small pool of its own
threads, and each decode first reserves its pixel count from one budget shared by the whole
process (`image_pixel_budget`): a burst of such requests waits its turn instead of taking
gigabytes at once, while ordinary images (a fraction of the budget) pass side by side.
Waiting holds an image thread, not the event loop or the default executor.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

IMAGE_THREADS = 2
"""Threads for image work: as many as this machine class has cores; more would only queue
for the CPU while holding more memory."""


class PixelBudget:
    """A weighted semaphore for threads: reserve(n) blocks until n pixels are free."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()

    @property
    def free(self) -> int:
        with self._changed:
            return self._free

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        # A single job larger than the whole budget takes all of it (never waits forever).
        pixels = max(0, min(pixels, self.capacity))
        with self._changed:
            self._changed.wait_for(lambda: self._free >= pixels)
            self._free -= pixels
        try:
            yield
        finally:
            with self._changed:
                self._free += pixels
                self._changed.notify_all()


class ImageWork:
    def __init__(self, pixel_budget: int, threads: int = IMAGE_THREADS) -> None:
        self.budget = PixelBudget(pixel_budget)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="image-work")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
