"""Client (blocking) over gRPC and REST: the same surface, run from a thread without a loop."""

from __future__ import annotations

import asyncio
import inspect
import io

import pytest
from PIL import Image

from asyncgate.client import AsyncClient, Client, ImagesResult, InvalidRequest, NotFound
from grpc_server.config import DispatcherSettings
from tests.conftest import KEY_A, Stack, StackFactory
from tests.images import subject_on_background


def client_for(stack: Stack, transport: str) -> Client:
    if transport == "grpc":
        return Client(grpc_target=stack.grpc_target, key=KEY_A.value)
    return Client(stack.base_url, key=KEY_A.value)


def edit_and_embed(client: Client) -> tuple[bytes, list[list[float]]]:
    job = client.submit_image_edit(subject_on_background(), model="local/pillow", type="background_removal")
    done = client.wait(job.id, timeout=60)
    assert done.status == "completed" and isinstance(done.result, ImagesResult)
    [image] = client.download_images(done)
    embedded = client.wait(client.submit_embeddings(["a", "b c"], model="local/hashing", dimensions=8).id, 60)
    with pytest.raises(InvalidRequest) as refused:
        client.submit_image_generation("x", model="local/placeholder", size="3x3")
    assert refused.value.param == "size"
    return image, client.download_embeddings(embedded)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_sync_client_submits_waits_and_downloads(make_stack: StackFactory, transport: str) -> None:
    stack = await make_stack()
    with client_for(stack, transport) as client:
        # The blocking calls run in a worker thread: the stack's loop must keep serving.
        image, vectors = await asyncio.to_thread(edit_and_embed, client)
    assert Image.open(io.BytesIO(image)).mode == "RGBA"
    assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]


def watch_cancel_delete(client: Client) -> list[str]:
    job = client.submit_embeddings("a cat", model="local/hashing")
    seen: list[str] = []
    for state in client.watch(job.id):
        seen.append(state.status)
        if state.status == "pending":
            client.cancel(job.id)
    assert client.retry(job.id).status == "pending"
    assert [j.id for j in client.iter_jobs(page_size=1)] == [job.id]
    client.delete(job.id)
    with pytest.raises(NotFound):
        client.get(job.id)
    return seen


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_sync_watch_cancel_list_delete(make_stack: StackFactory, transport: str) -> None:
    stack = await make_stack(dispatcher=DispatcherSettings(concurrency=0, poll_interval_seconds=0.2))
    with client_for(stack, transport) as client:
        assert await asyncio.to_thread(watch_cancel_delete, client) == ["pending", "cancelled"]


def test_client_and_async_client_have_one_surface() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: [str(p) for p in inspect.signature(member).parameters.values()]
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    assert public(Client) == public(AsyncClient)
