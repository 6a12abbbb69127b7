"""Polls of an ended job reuse its rendered answer, and still ask the server every time: a
deleted job is gone at once, another caller still cannot see it, a retried job is new."""

from __future__ import annotations

from typing import Any

from tests.conftest import KEY_A, KEY_B, Stack

EMBEDDINGS = "/v1/async/embeddings"
VK_A = {"x-bf-vk": KEY_A.value}


async def poll(stack: Stack, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with stack.http.get(path, headers=headers) as response:
        return response.status, await response.read()


async def test_repeated_polls_of_an_ended_job_answer_the_same_and_respect_deletes(stack: Stack) -> None:
    body = {"model": "local/hashing", "input": ["a cat", "a dog"], "dimensions": 8}
    async with stack.http.post(EMBEDDINGS, json=body, headers={**VK_A, "Prefer": "wait=30"}) as response:
        job_id = (await response.json())["id"]
    path = f"{EMBEDDINGS}/{job_id}"
    first = await poll(stack, path, VK_A)
    assert first[0] == 200 and b'"embedding"' in first[1]
    assert await poll(stack, path, VK_A) == first  # rendered once, reused byte for byte
    assert (await poll(stack, path, {"x-bf-vk": KEY_B.value}))[0] == 404  # still the server's call
    async with stack.http.delete(f"/v1/async/jobs/{job_id}", headers=VK_A) as deleted:
        assert deleted.status == 204
    assert (await poll(stack, path, VK_A))[0] == 404  # a reused rendering never outlives its job
