"""In flight: N embedding jobs submitted at once to the real server, against a provider that
answers each call after 10 s (Settings.inflight_latency), on SQLite and on PostgreSQL.

The server runs every job at once (`dispatcher.concurrency` = N; the provider has no
`max_concurrency`, so its connection pool is unlimited). Ideally all N finish 10 s after
the last submit: elapsed / (latency + submit time) is the ratio to 1. Also measured: the
server's RSS (peak over idle, per job), its CPU time per job (and the database backends'
on PostgreSQL), and the provider calls per job, which must be 1.00: every job has a text of
its own, and the fake counts the requests each text arrived in.

Completion is watched in the database itself (a count every POLL_SECONDS), not by asking
the server, so that the server's CPU time is the jobs' alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc

from asyncgate.v1 import job_service_pb2_grpc
from bench import pg, procs
from bench.e2e import EMBEDDING_MODEL
from bench.fake_provider import FakeProviderClient
from bench.jobs import embedding_request
from bench.load import create_job
from bench.procfs import cpu_by_pid, cpu_seconds, peak_rss_bytes, reset_peak_rss, rss_bytes

if TYPE_CHECKING:
    from bench.runner import Settings

SUBMIT_CLIENTS = 32
"""Concurrent gRPC submits; the jobs are all submitted before the first answer comes back."""
POLL_SECONDS = 0.25
GIVE_UP_AFTER = 600.0
"""Seconds past the ideal after which the part stops waiting and reports what finished."""
MB = 1e6
Counts = Callable[[], Awaitable[tuple[int, int]]]


def _sqlite_counts(database: Path) -> Counts:
    async def counts() -> tuple[int, int]:
        def read() -> tuple[int, int]:
            with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
                done, failed = conn.execute(
                    "SELECT COUNT(*) FILTER (WHERE status = 'completed'),"
                    " COUNT(*) FILTER (WHERE status = 'failed') FROM jobs"
                ).fetchone()
            return int(done), int(failed)

        return await asyncio.to_thread(read)

    return counts


def _postgres_counts(connection: asyncpg.Connection) -> Counts:
    async def counts() -> tuple[int, int]:
        row = await connection.fetchrow(
            "SELECT COUNT(*) FILTER (WHERE status = 'completed') AS done,"
            " COUNT(*) FILTER (WHERE status = 'failed') AS failed FROM jobs"
        )
        assert row is not None
        return int(row["done"]), int(row["failed"])

    return counts


async def _submit_all(target: str, texts: list[str]) -> None:
    """Every job submitted, SUBMIT_CLIENTS at a time."""
    request = embedding_request(EMBEDDING_MODEL)
    pending = iter(texts)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)

        async def client() -> None:
            for text in pending:  # one iterator shared: each text is taken once
                await create_job(stub, request(text))

        await asyncio.gather(*(client() for _ in range(SUBMIT_CLIENTS)))


async def _until_finished(counts: Counts, jobs: int, give_up_at: float) -> tuple[int, int, float]:
    """(completed, failed, when the last finished), or what finished by `give_up_at`."""
    while True:
        done, failed = await counts()
        now = time.perf_counter()
        if done + failed >= jobs or now > give_up_at:
            return done, failed, now
        await asyncio.sleep(POLL_SECONDS)


async def _run_store(workdir: Path, jobs: int, latency: float, name: str, dsn: str | None) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        fake, fake_url = procs.start_fake_provider(stack, workdir, latency, f"{name}-provider")
        options = procs.ServerOptions(concurrency=jobs, database_url=dsn, provider_url=fake_url + "/v1")
        server, target = procs.start_server(stack, workdir, f"{name}-server", options)
        await asyncio.gather(procs.wait_grpc_ready(server, target), procs.wait_http_ready(fake, fake_url))
        async with contextlib.AsyncExitStack() as closing:
            if dsn is None:
                counts = _sqlite_counts(workdir / f"{name}-server-data" / "asyncgate.sqlite3")
                backends: list[int] = []
            else:
                connection = await asyncpg.connect(dsn)
                closing.push_async_callback(connection.close)
                counts = _postgres_counts(connection)
                backends = pg.backends(dsn)()  # the pool's and the listener's, open since start
            texts = [f"inflight {i} {uuid.uuid4().hex}" for i in range(jobs)]
            idle_rss = rss_bytes(server.pid)
            peak_reset = reset_peak_rss(server.pid)
            server_cpu, backend_cpu = cpu_seconds(server.pid), cpu_by_pid(backends)
            started = time.perf_counter()
            await _submit_all(target, texts)
            submit_seconds = time.perf_counter() - started
            ideal = latency + submit_seconds
            done, failed, finished = await _until_finished(counts, jobs, started + ideal + GIVE_UP_AFTER)
            server_cpu = cpu_seconds(server.pid) - server_cpu
            backend_after = cpu_by_pid(backends)
            backend_cpu_total = sum(
                backend_after[p] - backend_cpu[p] for p in backend_after if p in backend_cpu
            )
            peak_rss = peak_rss_bytes(server.pid)
            server.check_alive()
        calls = await FakeProviderClient(fake_url).calls()
    elapsed = finished - started
    return {
        "jobs": jobs,
        "completed": done,
        "failed": failed,
        "submit_seconds": submit_seconds,
        "elapsed_seconds": elapsed,
        "ideal_seconds": ideal,
        "elapsed_to_ideal": elapsed / ideal,
        "idle_rss_bytes": idle_rss,
        "peak_rss_bytes": peak_rss,
        "peak_reset_before_submit": peak_reset,
        "rss_growth_per_job_bytes": (peak_rss - idle_rss) / jobs,
        "server_cpu_ms_per_job": server_cpu / jobs * 1000,
        "database_cpu_ms_per_job": backend_cpu_total / jobs * 1000 if dsn is not None else None,
        "provider_calls": calls["calls"],
        "provider_calls_per_job": calls["calls"] / jobs,
        "jobs_called_more_than_once": calls["most"] > 1,
        "provider_calls_at_once_max": calls["in_flight_max"],
    }


async def inflight_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    """The part on SQLite, then on PostgreSQL (skipped, saying why, when it is unreachable)."""
    jobs, latency = settings.inflight_jobs, settings.inflight_latency
    part: dict[str, Any] = {"jobs": jobs, "latency_seconds": latency, "submit_clients": SUBMIT_CLIENTS}
    part["sqlite"] = await _run_store(workdir, jobs, latency, "inflight-sqlite", None)
    if (reason := await pg.unreachable(settings.database_url)) is not None:
        part["postgres"] = {"skipped": reason}
        return part
    async with pg.fresh_database(settings.database_url) as dsn:
        part["postgres"] = await _run_store(workdir, jobs, latency, "inflight-postgres", dsn)
    return part
