"""Jobs leave no reference cycles of asyncgate's own objects behind them.

The server and the bridge run with a lazy cycle collector (asyncgate.collector): a cycle
that reaches the old generation waits a long time to be collected, and one that holds an
image would hold its bytes as long. So the whole job path (an edit, a generation and an
embedding submitted through the bridge, polled to the end, their files fetched) is run with
gc.DEBUG_SAVEALL, and what the collector finds afterwards must be none of ours: grpc.aio's
per-call handler lookup and aiohttp's Content-Type parsing leave small cycles of their own,
which are tolerated, but nothing made by asyncgate's code, and no large buffer at all."""

from __future__ import annotations

import gc
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import Stack, StackFactory
from tests.images import noisy_subject
from tests.rest import EDITS, edit_form, submit, wait_terminal

OURS = tuple(
    str(Path(__file__).resolve().parents[2] / package)
    for package in ("grpc_server", "rest_bridge", "asyncgate")
)
OUR_MODULES = ("grpc_server", "rest_bridge", "asyncgate")
LARGE_BYTES = 16 * 1024


def _is_ours(obj: object) -> bool:
    """Made by asyncgate's code: an instance of one of its classes, or one of its functions,
    frames or coroutines."""
    if type(obj).__module__.split(".")[0] in OUR_MODULES:
        return True
    code = None
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
    elif isinstance(obj, types.FrameType):
        code = obj.f_code
    elif isinstance(obj, types.CoroutineType | types.AsyncGeneratorType | types.GeneratorType):
        code = getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None) or getattr(obj, "gi_code", None)
    return code is not None and code.co_filename.startswith(OURS)


def _is_large(obj: object) -> bool:
    return isinstance(obj, bytes | bytearray | memoryview) and len(obj) >= LARGE_BYTES


@contextmanager
def garbage_kept() -> Iterator[list[Any]]:
    """What the collector finds unreachable in the block, kept for inspection."""
    gc.collect()
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[Any] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def _run_to_the_end(stack: Stack, path: str, accepted: dict[str, Any]) -> None:
    job = await wait_terminal(stack.http, accepted["id"], path=path)
    assert job["status"] == "completed", job
    for item in job["result"].get("data", ()):
        if "url" in item:
            async with stack.http.get(item["url"]) as response:
                assert response.status == 200
                await response.read()


async def test_the_job_path_leaves_no_cycles_of_ours(make_stack: StackFactory) -> None:
    stack = await make_stack()
    image = noisy_subject(256)

    async def one_of_each() -> None:
        status, accepted = await submit(stack.http, edit_form(images=[("photo.png", image)]))
        assert status == 202, accepted
        await _run_to_the_end(stack, EDITS, accepted)
        for path, body in (
            ("/v1/async/images/generations", {"model": "local/placeholder", "prompt": "a boat"}),
            ("/v1/async/embeddings", {"model": "local/hashing", "input": ["a", "b"], "dimensions": 64}),
        ):
            async with stack.http.post(path, json=body) as response:
                assert response.status == 202
                await _run_to_the_end(stack, path, await response.json())

    await one_of_each()  # the first time through imports and caches things for good
    with garbage_kept() as garbage:
        for _ in range(5):
            await one_of_each()

    assert garbage, "DEBUG_SAVEALL found nothing at all: the check would not see a cycle either"
    ours = [repr(obj)[:200] for obj in garbage if _is_ours(obj)]
    assert ours == []
    assert [len(obj) for obj in garbage if _is_large(obj)] == []
