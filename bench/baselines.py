"""Bare servers that do the minimum the real ones must do, as yardsticks.

    python -m bench.baselines rest --port P   # aiohttp: read the multipart as the bridge does, answer 202
    python -m bench.baselines grpc --port P   # grpc.aio: deserialize CreateImageEditJob, answer a Job

No validation, no storage, no logging: what is left is the framework's own cost of
moving the same bytes, which is what the real services are compared against.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import BodyPartReader, web

from asyncgate.v1 import job_pb2, job_service_pb2

EDITS_PATH = "/v1/async/images/edits"
JOB_SERVICE = "asyncgate.v1.JobService"
CHUNK_BYTES = 256 * 1024  # the bridge's upload_chunk_bytes
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the server's max_message_bytes


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


async def create_job(
    request: job_service_pb2.CreateImageEditJobRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> job_service_pb2.CreateImageEditJobResponse:
    job = job_pb2.Job(id=str(uuid.uuid4()), status=job_pb2.JOB_STATUS_PENDING, model=request.request.model)
    job.create_time.GetCurrentTime()
    return job_service_pb2.CreateImageEditJobResponse(job=job)


async def serve_grpc(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    handler = grpc.unary_unary_rpc_method_handler(
        create_job,
        request_deserializer=job_service_pb2.CreateImageEditJobRequest.FromString,
        response_serializer=job_service_pb2.CreateImageEditJobResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(JOB_SERVICE, {"CreateImageEditJob": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=("rest", "grpc"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.kind == "rest":
        web.run_app(rest_app(), host="127.0.0.1", port=args.port, print=None)
    else:
        asyncio.run(serve_grpc(args.port))


if __name__ == "__main__":
    main()
