"""Bare servers that answer a poll with fixed bytes, as yardsticks for asyncgate's polls.

    python -m bench.poll_baselines rest --port P --body FILE    # aiohttp: any GET -> 200, FILE
    python -m bench.poll_baselines grpc --port P --reply FILE   # grpc.aio: GetJob -> FILE's reply
    python -m bench.poll_baselines relay --port P --body FILE --target HOST:PORT
        # aiohttp: any GET -> one GetJob call to the target (the last path segment as the id),
        # then 200, FILE: what a poll through any gRPC bridge cannot do without

The bytes are the very answer asyncgate gave for the same job, so both sides move the same
bytes; the gRPC baseline parses each request as a GetJobRequest, as any server must.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from asyncgate.v1 import job_service_pb2, job_service_pb2_grpc
from grpc_server.allocator import keep_freed_memory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GET_JOB = "/asyncgate.v1.JobService/GetJob"


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve_until_signalled(port: int, answer: Handler) -> None:
    """`answer` for every GET on 127.0.0.1:`port`, until SIGTERM."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await _until_signalled()
    await runner.cleanup()


async def serve_rest(port: int, body: bytes) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    await _serve_until_signalled(port, answer)


async def serve_relay(port: int, body: bytes, target: str) -> None:
    """The bare aiohttp handler plus one GetJob call per request, as the bridge makes."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)

        async def answer(request: web.Request) -> web.StreamResponse:
            job_id = request.match_info["tail"].rpartition("/")[2]
            await stub.GetJob(job_service_pb2.GetJobRequest(id=job_id), timeout=30)
            return web.Response(body=body, content_type="application/json")

        await _serve_until_signalled(port, answer)


async def serve_grpc(port: int, reply: bytes) -> None:
    async def get_job(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return reply

    handler = grpc.unary_unary_rpc_method_handler(
        get_job,
        request_deserializer=job_service_pb2.GetJobRequest.FromString,
        response_serializer=lambda b: b,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("asyncgate.v1.JobService", {"GetJob": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await _until_signalled()
    await server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_baselines")
    parser.add_argument("kind", choices=("rest", "grpc", "relay"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, help="rest: the answer's bytes")
    parser.add_argument("--reply", type=Path, help="grpc: a serialized GetJobResponse")
    parser.add_argument("--target", help="relay: the gRPC server to call (host:port)")
    args = parser.parse_args()
    keep_freed_memory()  # as the real server does, so that it is not handicapped against it
    if args.kind == "rest":
        asyncio.run(serve_rest(args.port, args.body.read_bytes()))
    elif args.kind == "relay":
        asyncio.run(serve_relay(args.port, args.body.read_bytes(), args.target))
    else:
        asyncio.run(serve_grpc(args.port, args.reply.read_bytes()))


if __name__ == "__main__":
    main()
