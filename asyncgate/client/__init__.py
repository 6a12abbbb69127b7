"""A Python client of asyncgate: `AsyncClient` (asyncio) and `Client` (blocking), each over
gRPC (`grpc_target="host:port"`) or the REST bridge (`url="http://..."`), with one surface.

    async with AsyncClient("http://127.0.0.1:8080", key="sk-bf-...") as client:
        job = await client.submit_embeddings("a cat", model="local/hashing")
        job = await client.wait(job.id, timeout=60)
        vectors = await client.download_embeddings(job)

docs/clients.md describes it all.
"""

from asyncgate.client.async_client import AsyncClient
from asyncgate.client.errors import (
    AsyncGateError,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from asyncgate.client.retry import RetryPolicy
from asyncgate.client.sync_client import Client
from asyncgate.client.types import (
    Embedding,
    EmbeddingsResult,
    ImageData,
    ImagesResult,
    InputFile,
    Job,
    JobError,
    JobPage,
    OutputRef,
)

__all__ = [
    "AsyncClient",
    "AsyncGateError",
    "Client",
    "Conflict",
    "Embedding",
    "EmbeddingsResult",
    "ImageData",
    "ImagesResult",
    "InputFile",
    "InvalidRequest",
    "Job",
    "JobError",
    "JobPage",
    "NotFound",
    "OutputRef",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
]
