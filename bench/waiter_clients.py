"""Many clients each waiting for one job to end, in a process of their own (bench.waiters
starts it): gRPC WaitJob, gRPC WatchJob, REST `Prefer: wait`, or the same clients polling
once a second (REST GET, gRPC GetJob).

    python -m bench.waiter_clients --mode M --clients N --jobs FILE --out FILE
                                   --grpc-target HOST:PORT --base-url URL

Client i waits on job i mod len(jobs) (FILE: a JSON list of job ids). Clients start in
batches (ARRIVAL_BATCH every ARRIVAL_PAUSE_SECONDS: a burst of connections overflows the
listening socket's backlog and costs a SYN retransmission, a second). On stdout, one JSON
line each: {"started": n} once every client has begun, {"answered": n} as answers come
(checked every PROGRESS_SECONDS), {"done": n} at the end, after the records are written to
--out as [[job id, wall-clock time the terminal state arrived, requests made], ...].
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

MODES = ("rest-wait", "rest-poll", "grpc-wait", "grpc-watch", "grpc-poll")
ARRIVAL_BATCH = 250
ARRIVAL_PAUSE_SECONDS = 0.1
PROGRESS_SECONDS = 0.1
POLL_SECONDS = 1.0
REST_WAIT = "wait=60"
RETRY_PAUSE_SECONDS = 1.0
"""After a failed request (counted), a client tries again this much later."""
TERMINAL = (job_pb.JOB_STATUS_COMPLETED, job_pb.JOB_STATUS_FAILED, job_pb.JOB_STATUS_CANCELLED)
REST_PATH = "/v1/async/embeddings/{}"

Record = tuple[str, float, int]


class Clients:
    def __init__(self, stub: JobServiceAsyncStub, http: aiohttp.ClientSession) -> None:
        self._stub, self._http = stub, http
        self.errors: Counter[str] = Counter()
        self.answered = 0

    def _done(self, job_id: str, requests: int) -> Record:
        self.answered += 1
        return job_id, time.time(), requests

    async def _failed(self, what: str) -> None:
        self.errors[what] += 1
        await asyncio.sleep(RETRY_PAUSE_SECONDS)

    async def rest(self, job_id: str, wait: bool) -> Record:
        headers = {"Prefer": REST_WAIT} if wait else {}
        requests = 0
        while True:
            requests += 1
            try:
                async with self._http.get(REST_PATH.format(job_id), headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                await self._failed(type(error).__name__)
                continue
            if status == 200:
                return self._done(job_id, requests)
            if status != 202:
                await self._failed(f"HTTP {status}")
            elif not wait:
                await asyncio.sleep(POLL_SECONDS)

    async def grpc_wait(self, job_id: str) -> Record:
        requests = 0
        while True:
            requests += 1
            try:
                reply = await self._stub.WaitJob(pb.WaitJobRequest(id=job_id))
            except grpc.aio.AioRpcError as error:
                await self._failed(_rpc_error(error))
                continue
            if reply.job.status in TERMINAL:
                return self._done(job_id, requests)

    async def grpc_watch(self, job_id: str) -> Record:
        requests = 0
        while True:
            requests += 1
            try:
                async for message in self._stub.WatchJob(pb.WatchJobRequest(id=job_id)):
                    if message.job.status in TERMINAL:
                        return self._done(job_id, requests)
            except grpc.aio.AioRpcError as error:
                await self._failed(_rpc_error(error))

    async def grpc_poll(self, job_id: str) -> Record:
        requests = 0
        while True:
            requests += 1
            try:
                reply = await self._stub.GetJob(pb.GetJobRequest(id=job_id))
            except grpc.aio.AioRpcError as error:
                await self._failed(_rpc_error(error))
                continue
            if reply.job.status in TERMINAL:
                return self._done(job_id, requests)
            await asyncio.sleep(POLL_SECONDS)

    def client(self, mode: str) -> Callable[[str], Coroutine[Any, Any, Record]]:
        return {
            "rest-wait": lambda job_id: self.rest(job_id, wait=True),
            "rest-poll": lambda job_id: self.rest(job_id, wait=False),
            "grpc-wait": self.grpc_wait,
            "grpc-watch": self.grpc_watch,
            "grpc-poll": self.grpc_poll,
        }[mode]


def _rpc_error(error: grpc.aio.AioRpcError) -> str:
    """The code and the first words of the details: a count per cause."""
    return f"{error.code().name}: {(error.details() or '')[:60]}"


def say(**line: Any) -> None:
    print(json.dumps(line), flush=True)


async def _progress(clients: Clients, done: asyncio.Event) -> None:
    said = -1
    while not done.is_set():
        if clients.answered != said:
            said = clients.answered
            say(answered=said)
        await asyncio.sleep(PROGRESS_SECONDS)


async def run(args: argparse.Namespace) -> None:
    job_ids: list[str] = json.loads(Path(args.jobs).read_text())
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    async with (
        grpc.aio.insecure_channel(args.grpc_target) as channel,
        aiohttp.ClientSession(
            args.base_url, connector=aiohttp.TCPConnector(limit=0), timeout=timeout
        ) as http,
    ):
        clients = Clients(pb_grpc.JobServiceStub(channel), http)
        client = clients.client(args.mode)
        tasks = []
        for start in range(0, args.clients, ARRIVAL_BATCH):
            batch = range(start, min(start + ARRIVAL_BATCH, args.clients))
            tasks += [asyncio.create_task(client(job_ids[i % len(job_ids)])) for i in batch]
            await asyncio.sleep(ARRIVAL_PAUSE_SECONDS)
        say(started=len(tasks))
        done = asyncio.Event()
        progress = asyncio.create_task(_progress(clients, done))
        records = await asyncio.gather(*tasks)
        done.set()
        await progress
    Path(args.out).write_text(json.dumps(records))
    say(answered=clients.answered)
    say(done=len(records), errors=dict(clients.errors))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.waiter_clients")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--jobs", required=True, help="a JSON file: the list of job ids")
    parser.add_argument("--out", required=True, help="where the records go (JSON)")
    parser.add_argument("--grpc-target", required=True)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
