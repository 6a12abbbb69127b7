"""The pixel budget: decodes wait for room instead of running all at once."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from grpc_server.domain.errors import InvalidArgument
from grpc_server.image_work import ImageWork, PixelBudget
from grpc_server.images import inspect_image


class PeakBudget(PixelBudget):
    """Records the most pixels ever reserved at once."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.peak = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        with super().reserve(pixels):
            with self._lock:
                self.peak = max(self.peak, self.capacity - self.free)
            time.sleep(0.01)  # hold it a moment, so overlapping decodes would show
            yield


def webp(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, "WEBP", lossless=True)
    return out.getvalue()


def test_a_reservation_waits_until_the_pixels_are_free() -> None:
    budget = PixelBudget(100)
    order: list[str] = []

    def second() -> None:
        with budget.reserve(50):
            order.append("second")

    with budget.reserve(80):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.2)  # reserve(50) cannot proceed while 80 of 100 are held
        assert order == [] and budget.free == 20
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"] and budget.free == 100


def test_more_than_the_whole_budget_takes_all_of_it_instead_of_waiting_forever() -> None:
    budget = PixelBudget(100)
    with budget.reserve(10_000):
        assert budget.free == 0
    assert budget.free == 100


async def test_a_burst_of_large_decodes_never_holds_more_than_the_budget() -> None:
    work = ImageWork(pixel_budget=6_000_000)
    work.budget = budget = PeakBudget(6_000_000)
    data = webp(2000, 2000)  # 4 Mpx each: two never fit in the budget together

    def check() -> tuple[int, int]:
        info = inspect_image(data, param="image", label="image[0]", max_pixels=10**8, reserve=budget.reserve)
        return info.width, info.height

    try:
        sizes = await asyncio.gather(*(work.run(check) for _ in range(6)))
    finally:
        work.close()
    assert sizes == [(2000, 2000)] * 6
    assert budget.peak == 2000 * 2000


def test_a_png_costs_no_budget() -> None:
    out = io.BytesIO()
    Image.new("RGB", (3000, 3000), "white").save(out, "PNG")
    reserved: list[int] = []

    @contextmanager
    def reserve(pixels: int) -> Iterator[None]:
        reserved.append(pixels)
        yield

    inspect_image(out.getvalue(), param="image", label="image[0]", max_pixels=10**8, reserve=reserve)
    assert reserved == []


def test_the_pixel_limit_is_checked_before_the_budget_is_asked() -> None:
    reserved: list[int] = []

    @contextmanager
    def reserve(pixels: int) -> Iterator[None]:
        reserved.append(pixels)
        yield

    with pytest.raises(InvalidArgument):
        inspect_image(webp(300, 300), param="image", label="image[0]", max_pixels=1000, reserve=reserve)
    assert reserved == []
