"""Bare servers that do the minimum the real ones must do, as yardsticks.

    python -m bench.baselines rest --port P   # aiohttp: read the multipart as the bridge does, answer 202
    python -m bench.baselines grpc --port P   # grpc.aio: deserialize CreateImageEditJob, answer a Job
    python -m bench.baselines grpc --port P --store DIR   # the same, storing each job first
    python -m bench.baselines grpc --port P --store DIR --blobs database   # ... its image in SQLite

No validation, no storage, no logging: what is left is the framework's own cost of
moving the same bytes, which is what the real services are compared against.

With --store, the gRPC handler also writes the job and its images with asyncgate's own
SQLite store before it answers, and nothing else: no validation, no keys, no conversion.
Its images go where the server's default puts them (--blobs directory): a DirectoryBlobStore
under DIR/blobs, not synced (the server's rule with SQLite's NORMAL), then the job row; with
--blobs database, into the SQLite file as chunk rows (the store before blobs moved out).
Against the bare handler it gives the most the gRPC submit ratio can be while a job
accepted is durable, whatever the rest of the server does. It runs with the server's
allocator setting (grpc_server.allocator), so that it is not handicapped against it.
The gRPC baseline also serves grpc.health.v1 (off the request path), so that the REST
bridge can stand in front of it: the most the REST ratio can be with no server work.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from aiohttp import BodyPartReader, web
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asyncgate.v1 import job_pb2, job_service_pb2
from grpc_server.allocator import keep_freed_memory
from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.blobs.factory import SYNCED_SQLITE_MODES
from grpc_server.domain.jobs import ImageEditParams, InputFile, Job, JobStatus, RequestType, new_job_id
from grpc_server.store.base import StagedFile
from grpc_server.store.sqlite import SQLiteStore

EDITS_PATH = "/v1/async/images/edits"
JOB_SERVICE = "asyncgate.v1.JobService"
CHUNK_BYTES = 256 * 1024  # the bridge's upload_chunk_bytes
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the server's max_message_bytes
STORED_TTL_SECONDS = 3600  # what the storing handler's jobs carry; nothing expires them during a run
SQLITE_SYNCHRONOUS = "NORMAL"  # the server's default (ServerConfig.sqlite_synchronous)
BLOBS = ("directory", "database")


async def submit(request: web.Request) -> web.StreamResponse:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        while await part.read_chunk(CHUNK_BYTES):
            pass
    body = {"id": str(uuid.uuid4()), "status": "pending", "created_at": datetime.now(UTC).isoformat()}
    return web.json_response(body, status=202)


async def health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def rest_app() -> web.Application:
    app = web.Application()
    app.router.add_post(EDITS_PATH, submit)
    app.router.add_get("/health", health)
    return app


def _pending_job(job_id: str, model: str) -> job_service_pb2.CreateImageEditJobResponse:
    job = job_pb2.Job(id=job_id, status=job_pb2.JOB_STATUS_PENDING, model=model)
    job.create_time.GetCurrentTime()
    return job_service_pb2.CreateImageEditJobResponse(job=job)


async def create_job(
    request: job_service_pb2.CreateImageEditJobRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> job_service_pb2.CreateImageEditJobResponse:
    return _pending_job(str(uuid.uuid4()), request.request.model)


def storing_create_job(
    store: SQLiteStore,
) -> Callable[..., Awaitable[job_service_pb2.CreateImageEditJobResponse]]:
    """create_job, after writing the job and its images with asyncgate's SQLite store (a plain
    coroutine function: grpc.aio tells handlers apart with inspect.iscoroutinefunction)."""

    async def handler(
        request: job_service_pb2.CreateImageEditJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> job_service_pb2.CreateImageEditJobResponse:
        edit = request.request
        files = [
            StagedFile(
                InputFile("image", i, image.filename, image.content_type, len(image.data), 0, 0), image.data
            )
            for i, image in enumerate(edit.images)
        ]
        job = Job(
            id=new_job_id(),
            request_type=RequestType.IMAGE_EDIT,
            status=JobStatus.PENDING,
            params=ImageEditParams(model=edit.model, prompt=edit.prompt),
            created_at=datetime.now(UTC),
            ttl_seconds=STORED_TTL_SECONDS,
            inputs=tuple(f.info for f in files),
        )
        await store.create_job(job, files)
        return _pending_job(job.id, edit.model)

    return handler


def storing_store(store_dir: Path, blobs: str) -> SQLiteStore:
    """The store as the server makes it by default (grpc_server.store.factory), or with `blobs`
    "database" as it was before job files moved out of the SQLite file."""
    beside = None
    if blobs == "directory":
        beside = DirectoryBlobStore(store_dir / "blobs", fsync=SQLITE_SYNCHRONOUS in SYNCED_SQLITE_MODES)
    return SQLiteStore(store_dir / "baseline.sqlite3", SQLITE_SYNCHRONOUS, blobs=beside)


async def serve_grpc(port: int, store_dir: Path | None = None, blobs: str = "directory") -> None:
    store = None
    if store_dir is not None:
        keep_freed_memory()
        store = storing_store(store_dir, blobs)
        await store.open()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    handler = grpc.unary_unary_rpc_method_handler(
        create_job if store is None else storing_create_job(store),
        request_deserializer=job_service_pb2.CreateImageEditJobRequest.FromString,
        response_serializer=job_service_pb2.CreateImageEditJobResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(JOB_SERVICE, {"CreateImageEditJob": handler}),)
    )
    health_servicer = grpc_health.aio.HealthServicer()  # type: ignore[attr-defined]  # untyped package
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for name in ("", JOB_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(None)
    if store is not None:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=("rest", "grpc"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, help="grpc only: store each job in SQLite under this directory")
    parser.add_argument(
        "--blobs",
        choices=BLOBS,
        default="directory",
        help="with --store: images in a directory beside SQLite (the default), or in the SQLite file",
    )
    args = parser.parse_args()
    if args.kind == "rest":
        web.run_app(rest_app(), host="127.0.0.1", port=args.port, print=None)
    else:
        asyncio.run(serve_grpc(args.port, args.store, args.blobs))


if __name__ == "__main__":
    main()
