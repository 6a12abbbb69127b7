"""PostgreSQL next to SQLite, NOTIFY-driven dispatch, and one replica against two.

Each measurement gets fresh databases (bench.pg) and fresh servers; one fake provider
serves them all (every job's input text is unique, so its arrival record is its own):

- submit: CreateEmbeddingJob on accept-only servers, SQLite against PostgreSQL;
- end_to_end: embedding jobs (submit, run against the fake, GetJob until done, read the
  vectors), one job-running server each, SQLite against PostgreSQL;
- dispatch: submit to an accept-only PostgreSQL replica while a second replica with a
  5 s safety poll runs the jobs, so only LISTEN/NOTIFY can make a pickup fast; against
  SQLite in one process, where the submit wakes the dispatcher directly. Few clients:
  this is about latency, not a queue;
- replicas: end-to-end throughput of one replica against two on one database (clients
  spread over both), each on a database of its own so neither runs the other's jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from bench import pg, procs
from bench.compare import Side, SideResult
from bench.e2e import EMBEDDING_MODEL
from bench.fake_provider import FakeProviderClient
from bench.jobs import GrpcJobs, embedding_request
from bench.load import GrpcTarget, LoadResult
from bench.stats import comparison, job_summary

if TYPE_CHECKING:
    from bench.runner import Settings

DISPATCH_CLIENTS = 4
RUNNING = procs.ServerOptions(concurrency=16, poll_interval_seconds=1.0)
SLOW_POLL = 5.0
"""The dispatch worker's safety poll: a pickup faster than this came from a NOTIFY."""
FAKE = "fake-provider"


@dataclass(frozen=True)
class Fake:
    """The provider every server here is configured with."""

    client: FakeProviderClient
    pid: int

    @property
    def url(self) -> str:
        return self.client.base_url + "/v1"

    async def job_comparison(self, results: tuple[SideResult, SideResult]) -> dict[str, Any]:
        """The comparison of two job loads, each job's dispatch timed by when this fake saw it."""
        return comparison(*results, summarize=partial(job_summary, arrivals=await self.client.arrivals()))


class Servers:
    """Servers started at once for one measurement, and the Sides that load them."""

    def __init__(self, started: dict[str, tuple[procs.Process, str]], fake: Fake) -> None:
        self._started = started
        self._fake = fake

    @classmethod
    @asynccontextmanager
    async def running(
        cls, workdir: Path, fake: Fake, servers: dict[str, procs.ServerOptions]
    ) -> AsyncIterator[Servers]:
        """The servers named, started at once and ready; stopped on exit."""
        with contextlib.ExitStack() as stack:
            started = {name: procs.start_server(stack, workdir, name, opts) for name, opts in servers.items()}
            await asyncio.gather(
                *(procs.wait_grpc_ready(process, target) for process, target in started.values())
            )
            yield cls(started, fake)

    def targets(self, *names: str) -> list[str]:
        return [self._started[name][1] for name in names]

    def side(
        self,
        name: str,
        run: Callable[[float], Awaitable[LoadResult]],
        servers: tuple[str, ...],
        dsn: str | None,
        runs_jobs: bool = True,
    ) -> Side:
        """CPU counted: those servers, the fake when jobs run, on PostgreSQL the database's backends."""
        pids = {server: self._started[server][0].pid for server in servers}
        if runs_jobs:
            pids[FAKE] = self._fake.pid
        groups = {pg.BACKENDS: pg.backends(dsn)} if dsn is not None else {}
        return Side(name, run, pids, groups)


async def submit_comparison(workdir: Path, settings: Settings, fake: Fake) -> dict[str, Any]:
    request = embedding_request(EMBEDDING_MODEL)("bench submit")
    # Never runs a job, but must know the provider: a submit naming an unknown one is refused.
    accept_only = replace(procs.ACCEPT_ONLY, provider_url=fake.url)
    async with (
        pg.fresh_database(settings.database_url) as dsn,
        Servers.running(
            workdir,
            fake,
            {"submit-sqlite": accept_only, "submit-postgres": replace(accept_only, database_url=dsn)},
        ) as servers,
    ):
        (sqlite_target, postgres_target) = servers.targets("submit-sqlite", "submit-postgres")
        async with (
            GrpcTarget(sqlite_target, request, settings.concurrency) as sqlite,
            GrpcTarget(postgres_target, request, settings.concurrency) as postgres,
        ):
            results = await settings.compare(
                servers.side("sqlite", sqlite.run, ("submit-sqlite",), None, runs_jobs=False),
                servers.side("postgres", postgres.run, ("submit-postgres",), dsn, runs_jobs=False),
            )
    return {"message_bytes": request.ByteSize(), **comparison(*results)}


async def end_to_end_comparison(workdir: Path, settings: Settings, fake: Fake) -> dict[str, Any]:
    running = replace(RUNNING, provider_url=fake.url)
    request = embedding_request(EMBEDDING_MODEL)
    async with (
        pg.fresh_database(settings.database_url) as dsn,
        Servers.running(
            workdir, fake, {"e2e-sqlite": running, "e2e-postgres": replace(running, database_url=dsn)}
        ) as servers,
        GrpcJobs(servers.targets("e2e-sqlite"), request, settings.concurrency) as sqlite,
        GrpcJobs(servers.targets("e2e-postgres"), request, settings.concurrency) as postgres,
    ):
        results = await settings.compare(
            servers.side("sqlite", sqlite.run, ("e2e-sqlite",), None),
            servers.side("postgres", postgres.run, ("e2e-postgres",), dsn),
        )
    return await fake.job_comparison(results)


async def dispatch_comparison(workdir: Path, settings: Settings, fake: Fake) -> dict[str, Any]:
    worker = replace(RUNNING, poll_interval_seconds=SLOW_POLL, provider_url=fake.url)
    request = embedding_request(EMBEDDING_MODEL)
    async with (
        pg.fresh_database(settings.database_url) as dsn,
        Servers.running(
            workdir,
            fake,
            {
                "notify-sqlite": worker,
                "notify-accepting": replace(worker, concurrency=0, database_url=dsn),
                "notify-worker": replace(worker, database_url=dsn),
            },
        ) as servers,
        # Clients talk to the accepting replica only: the worker hears of their jobs from the database.
        GrpcJobs(servers.targets("notify-sqlite"), request, DISPATCH_CLIENTS) as sqlite,
        GrpcJobs(servers.targets("notify-accepting"), request, DISPATCH_CLIENTS) as postgres,
    ):
        results = await settings.compare(
            servers.side("sqlite", sqlite.run, ("notify-sqlite",), None),
            servers.side("postgres", postgres.run, ("notify-accepting", "notify-worker"), dsn),
            settings.duration / 2,  # few clients, many samples: half the time is plenty
        )
    part = await fake.job_comparison(results)
    return {"clients": DISPATCH_CLIENTS, "worker_poll_interval_seconds": SLOW_POLL, **part}


async def replicas_comparison(workdir: Path, settings: Settings, fake: Fake) -> dict[str, Any]:
    running = replace(RUNNING, provider_url=fake.url)
    request = embedding_request(EMBEDDING_MODEL)
    async with (
        pg.fresh_database(settings.database_url) as one_dsn,
        pg.fresh_database(settings.database_url) as two_dsn,
        Servers.running(
            workdir,
            fake,
            {
                "replica-single": replace(running, database_url=one_dsn),
                "replica-a": replace(running, database_url=two_dsn),
                "replica-b": replace(running, database_url=two_dsn),
            },
        ) as servers,
        GrpcJobs(servers.targets("replica-single"), request, settings.concurrency) as one,
        GrpcJobs(servers.targets("replica-a", "replica-b"), request, settings.concurrency) as two,
    ):
        results = await settings.compare(
            servers.side("one", one.run, ("replica-single",), one_dsn),
            servers.side("two", two.run, ("replica-a", "replica-b"), two_dsn),
        )
    return await fake.job_comparison(results)


Measurement: TypeAlias = "Callable[[Path, Settings, Fake], Awaitable[dict[str, Any]]]"
MEASUREMENTS: dict[str, Measurement] = {
    "submit": submit_comparison,
    "end_to_end": end_to_end_comparison,
    "dispatch": dispatch_comparison,
    "replicas": replicas_comparison,
}
ATTEMPTS = 2
_ERROR_CHARS = 2000


async def _attempt(measurement: Measurement, workdir: Path, settings: Settings, fake: Fake) -> dict[str, Any]:
    """A server that could not start (a PostgreSQL shared with other work may be out of
    connections for a moment) costs one retry, then {"error": ...}, not the whole run."""
    for attempt in range(ATTEMPTS):
        where = workdir / f"retry-{attempt}" if attempt else workdir  # no state left from the failed try
        where.mkdir(exist_ok=True)
        try:
            return await measurement(where, settings, fake)
        except procs.ProcessFailed as exc:
            error = str(exc)[-_ERROR_CHARS:]
    return {"error": error}


async def postgres_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    """All four; {"skipped": why} when PostgreSQL cannot be reached."""
    if (reason := await pg.unreachable(settings.database_url)) is not None:
        return {"skipped": reason}
    with contextlib.ExitStack() as stack:
        process, url = procs.start_fake_provider(stack, workdir)
        await procs.wait_http_ready(process, url)
        fake = Fake(FakeProviderClient(url), process.pid)
        return {name: await _attempt(run, workdir, settings, fake) for name, run in MEASUREMENTS.items()}
