"""The floor under a waiter's cost: a bare grpc.aio server and a bare aiohttp server that hold
every call they get, doing nothing else, in one process of their own.

    python -m bench.held_calls --grpc-port P --http-port Q [--keep-freed-memory]

    gRPC WaitJob     held (never answered)
    gRPC WatchJob    one empty message (as the real stream sends the job at once), then held
    HTTP GET /v1/... held (never answered)
    HTTP GET /held   {"held": calls and requests held now}

What a held call costs here (RSS, CPU) is what grpc.aio or aiohttp alone costs per open call;
bench.waiters sets asyncgate's cost per waiter against it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import web

from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.allocator import keep_freed_memory

JOB_SERVICE = "asyncgate.v1.JobService"


class Holder:
    def __init__(self) -> None:
        self.held = 0
        self._never = asyncio.Event()

    async def hold(self) -> None:
        self.held += 1
        try:
            await self._never.wait()
        finally:
            self.held -= 1

    async def wait_job(self, request: pb.WaitJobRequest, context: Any) -> pb.WaitJobResponse:
        await self.hold()
        return pb.WaitJobResponse()

    async def watch_job(
        self, request: pb.WatchJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchJobResponse]:
        yield pb.WatchJobResponse()
        await self.hold()

    async def http_hold(self, request: web.Request) -> web.StreamResponse:
        await self.hold()
        return web.Response(status=204)

    async def http_held(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"held": self.held})


def _handlers(holder: Holder) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        JOB_SERVICE,
        {
            "WaitJob": grpc.unary_unary_rpc_method_handler(
                holder.wait_job,
                request_deserializer=pb.WaitJobRequest.FromString,
                response_serializer=pb.WaitJobResponse.SerializeToString,
            ),
            "WatchJob": grpc.unary_stream_rpc_method_handler(
                holder.watch_job,
                request_deserializer=pb.WatchJobRequest.FromString,
                response_serializer=pb.WatchJobResponse.SerializeToString,
            ),
        },
    )


async def serve(grpc_port: int, http_port: int) -> None:
    holder = Holder()
    # The same pending-call limits as asyncgate's server: grpc's defaults cancel calls past 1,000.
    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", 100_000),
            ("grpc.server.max_pending_requests_hard_limit", 100_000),
        ]
    )
    server.add_generic_rpc_handlers((_handlers(holder),))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    app = web.Application()
    app.router.add_get("/held", holder.http_held)
    app.router.add_get("/health", holder.http_held)
    app.router.add_get("/v1/{tail:.*}", holder.http_hold)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.held_calls")
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument(
        "--keep-freed-memory", action="store_true", help="malloc as asyncgate's server sets it (gRPC)"
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        keep_freed_memory()
    asyncio.run(serve(args.grpc_port, args.http_port))


if __name__ == "__main__":
    main()
