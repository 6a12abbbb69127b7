"""The embedded store: one SQLite file in WAL mode for the jobs, their files in a blob store
beside it (a directory, by default: see blobs_beside) or, without one, in the file too;
small outputs (an embedding's vectors) stay in the file either way.

The schema is versioned (store/migrations/sqlite), brought to the latest version when the
store opens; files made before versions were recorded are adopted (see store/migrations).

The stdlib driver runs on dedicated threads, each with its own connection: one writer
(SQLite allows a single writer at a time anyway), one reader, so polls are not queued
behind a 50 MB upload being written, and one checkpointer (see sqlite_wal). Whole
transactions run as plain functions on the writer thread, which keeps them atomic and
costs one thread hop each, where a per-statement async driver would cost one per
statement. Blobs are written and read in CHUNK_BYTES rows, never held whole.

Failures (sqlite_errors): SQLite's "database or disk is full", and running out of space
while writing exported files, raise StoreFull; other operational errors StoreUnavailable.
Both are told to watch_health() at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from grpc_server.blobs.base import BlobStore
from grpc_server.domain.jobs import Job, JobError, JobResult, JobStatus, OutputBlob
from grpc_server.domain.ttl import expiry
from grpc_server.store.admission import KeyPolicy
from grpc_server.store.base import (
    DuplicateRequestId,
    EventCallback,
    EventKind,
    HealthCallback,
    HealthReports,
    ReapResult,
    StagedFile,
    StoreEvent,
    StoreUnavailable,
    Subscribers,
)
from grpc_server.store.blobs_beside import BlobsBeside, beside_of
from grpc_server.store.codec import error_json, result_json
from grpc_server.store.disk import probe_space
from grpc_server.store.group_commit import GroupCommit
from grpc_server.store.guards import in_status, moving_to
from grpc_server.store.migrate import migrate_sqlite
from grpc_server.store.sqlite_batch import NewJob, insert_chunks, insert_jobs, split
from grpc_server.store.sqlite_batch import timestamp as _ts
from grpc_server.store.sqlite_errors import reported
from grpc_server.store.sqlite_fair import fair_claim
from grpc_server.store.sqlite_jobs import SQLiteJobApi, job_from_sqlite
from grpc_server.store.sqlite_leases import renew_leases
from grpc_server.store.sqlite_outbox import SQLiteWebhooks, write_event
from grpc_server.store.sqlite_wal import WAL_RESTART_BYTES, Checkpoint, Transaction, connect
from grpc_server.store.stats import StoreStats, sqlite_stats
from grpc_server.store.threads import lower_thread_priority

T = TypeVar("T")
_log = logging.getLogger("asyncgate.store.sqlite")

_OUTPUT = "output"

# The compare-and-set guards, from the state table (see guards).
_CLAIMABLE = moving_to(JobStatus.PROCESSING)
_REQUEUEABLE = moving_to(JobStatus.PENDING, only_from=JobStatus.PROCESSING)
_COMPLETABLE = moving_to(JobStatus.COMPLETED)
_FAILABLE_RUNNING = moving_to(JobStatus.FAILED, only_from=JobStatus.PROCESSING)
_FAILABLE_PENDING = moving_to(JobStatus.FAILED, only_from=JobStatus.PENDING)
_RUNNING = in_status(JobStatus.PROCESSING)

CHECKPOINT_PAUSE = 0.05
"""Seconds from a write to the background checkpoint that copies it (and what else came meanwhile)."""
WRITER_NICENESS = 5
CHECKPOINTER_NICENESS = 10
"""Nice levels these threads run below the event loop (see threads.lower_thread_priority)."""


_job_from_row = job_from_sqlite


class SQLiteStore(SQLiteJobApi, SQLiteWebhooks):
    hears_every_write = True  # one server per file

    def __init__(
        self,
        path: Path,
        synchronous: str = "NORMAL",
        *,
        wal_restart_bytes: int = WAL_RESTART_BYTES,
        checkpoint_pause: float = CHECKPOINT_PAUSE,
        blobs: BlobStore | None = None,
    ) -> None:
        """`blobs`: where new jobs' files go (opened and closed with this store); None: into
        the SQLite file, as chunk rows."""
        self.path = path
        self._beside = None if blobs is None else BlobsBeside(blobs)
        self._checkpoint_pause = checkpoint_pause
        self._synchronous = synchronous
        self._wal_restart_bytes = wal_restart_bytes
        self._writer = ThreadPoolExecutor(
            1, "sqlite-writer", initializer=lower_thread_priority, initargs=(WRITER_NICENESS,)
        )
        self._reader = ThreadPoolExecutor(1, "sqlite-reader")
        self._checkpointer = ThreadPoolExecutor(
            1, "sqlite-checkpointer", initializer=lower_thread_priority, initargs=(CHECKPOINTER_NICENESS,)
        )
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._page_bytes = 4096
        self._wal_written = asyncio.Event()
        self._checkpointing: asyncio.Task[None] | None = None
        self._creates: GroupCommit[NewJob] = GroupCommit(
            self._writer,
            lambda batch: insert_jobs(self._wconn, batch),
            on_written=lambda new: self._publish("submitted", new.job.id),
        )
        self._subscribers = Subscribers()
        self._health = HealthReports()
        self._policy = KeyPolicy()

    async def _on(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        with reported(self._health):
            return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._on(self._writer, lambda: fn(self._wconn))
        finally:
            self._wal_written.set()

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._on(self._reader, lambda: fn(self._rconn))

    @property
    def _wconn(self) -> sqlite3.Connection:
        assert self._write_conn is not None, "store not open"
        return self._write_conn

    @property
    def _rconn(self) -> sqlite3.Connection:
        assert self._read_conn is not None, "store not open"
        return self._read_conn

    @property
    def _cconn(self) -> sqlite3.Connection:
        assert self._checkpoint_conn is not None, "store not open"
        return self._checkpoint_conn

    async def open(self) -> None:
        """Open the file (created if missing) and bring its schema to the latest version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def open_writer() -> sqlite3.Connection:
            conn = self._connect()
            try:
                migrate_sqlite(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        if self._beside is not None:
            await self._beside.store.open()
        self._write_conn = await self._on(self._writer, open_writer)
        self._read_conn = await self._on(self._reader, self._connect)
        self._checkpoint_conn = await self._on(self._checkpointer, self._connect)
        self._page_bytes = (await self._read(lambda c: c.execute("PRAGMA page_size").fetchone()))[0]
        self._checkpointing = asyncio.create_task(self._checkpoint_continuously())

    async def close(self) -> None:
        if self._checkpointing is not None:
            self._checkpointing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointing
            self._checkpointing = None
        for executor, conn in (
            (self._checkpointer, self._checkpoint_conn),
            (self._writer, self._write_conn),
            (self._reader, self._read_conn),
        ):
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)
        self._write_conn = self._read_conn = self._checkpoint_conn = None
        if self._beside is not None:
            await self._beside.store.close()
        self._subscribers.clear()
        self._health.clear()

    async def _checkpoint_continuously(self) -> None:
        """Copy the WAL into the database beside the writer; restart it when it grows large."""
        while True:
            await self._wal_written.wait()
            await asyncio.sleep(self._checkpoint_pause)  # let writes gather: each round copies a batch
            self._wal_written.clear()
            try:
                await self.checkpoint()
            except (StoreUnavailable, sqlite3.Error) as exc:  # busy, or broken: the next write tries again
                _log.warning("background checkpoint failed: %s", exc)

    async def checkpoint(self) -> None:
        """One round: a PASSIVE checkpoint on the checkpointer's thread (the bulk of the copying and
        the fsync, not blocking writes); then, if the WAL is past wal_restart_bytes, a PASSIVE one on
        the writer's thread for the pages written meanwhile, so that the next write starts the WAL
        over instead of growing it (SQLite restarts a fully copied WAL no reader is using)."""
        copied = await self._on(self._checkpointer, lambda: Checkpoint.run(self._cconn, "PASSIVE"))
        if copied.caught_up and copied.wal_pages * self._page_bytes >= self._wal_restart_bytes:
            await self._on(self._writer, lambda: Checkpoint.run(self._wconn, "PASSIVE"))

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path, self._synchronous, self._wal_restart_bytes)

    async def subscribe(self, on_event: EventCallback) -> None:
        """Events of this store's own writes only: an SQLite file has a single server."""
        self._subscribers.add(on_event)

    def watch_health(self, on_change: HealthCallback) -> None:
        self._health.watch(on_change)

    def _publish(self, kind: EventKind, job_id: str) -> None:
        # Called after the write's transaction committed, on the event loop.
        self._subscribers.publish(StoreEvent(kind, job_id))

    async def ping(self) -> None:
        """The file answers, and its directory can take another chunk (see disk.probe_space)."""

        def check(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
            probe_space(self.path.parent)

        await self._read(check)  # one report to watch_health, not a success before the probe fails
        if self._beside is not None:
            with reported(self._health):
                await self._beside.store.ping()

    def use_key_policy(self, policy: KeyPolicy) -> None:
        self._policy = policy

    async def create_job(self, job: Job, files: Sequence[StagedFile]) -> None:
        """Group commit (see group_commit): each caller returns after the COMMIT that holds its
        job, so durability is unchanged; under load many jobs share a commit. The key's limits
        are checked in that transaction (sqlite_batch.check_limits)."""
        limits = self._policy.limits_of(job.owner_key_id)
        beside = self._beside
        try:
            with reported(self._health):
                write_now = None
                if beside is not None:  # the files first: the row that commits after them is the job
                    write_now = beside.inline_puts(job.id, files)  # by the writer, before its INSERT
                    if write_now is None:
                        await beside.put_inputs(job.id, files)
                new = NewJob(
                    job,
                    files,
                    limits if limits and limits.any else None,
                    None if beside is None else beside.name,
                    write_now,
                )
                await self._creates.submit(new)
        except sqlite3.IntegrityError as exc:
            await self._forget_uncommitted(job.id)
            if "jobs_idempotency" in str(exc) or "idempotency_key" in str(exc):
                raise DuplicateRequestId(job.idempotency_key) from exc
            raise
        except Exception:
            await self._forget_uncommitted(job.id)
            raise
        finally:
            self._wal_written.set()

    async def _forget_uncommitted(self, job_id: str) -> None:
        """The files of a job whose insert failed. (A cancelled caller's insert may still commit:
        its files stay, for the row or for the orphan sweep.)"""
        if self._beside is not None:
            await self._beside.forget(job_id)

    async def stats(self, now: datetime) -> StoreStats:
        return await self._read(lambda c: sqlite_stats(c, now))

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._read(lambda c: c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return None if row is None else _job_from_row(row)

    async def claim_jobs(self, worker: str, limit: int, now: datetime, lease_until: datetime) -> list[Job]:
        def claim(conn: sqlite3.Connection) -> list[Job]:
            if self._policy.fair_share:
                return fair_claim(conn, worker, limit, _ts(lease_until), self._policy.priorities)
            rows = conn.execute(
                f"UPDATE jobs SET status = '{JobStatus.PROCESSING}', lease_owner = ?, lease_until = ?,"
                " attempts = attempts + 1, change_seq = change_seq + 1"
                f" WHERE id IN (SELECT id FROM jobs WHERE {_CLAIMABLE} ORDER BY created_at, id LIMIT ?)"
                f" AND {_CLAIMABLE} RETURNING *",
                (worker, _ts(lease_until), limit),
            ).fetchall()
            # RETURNING gives rows in the order they were updated, not the subquery's: sort them.
            return sorted((_job_from_row(r) for r in rows), key=lambda job: (job.created_at, job.id))

        claimed = await self._write(claim)
        for job in claimed:  # for watchers of the job (WatchJob)
            self._publish("claimed", job.id)
        return claimed

    async def renew_lease(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        return job_id in await self.renew_leases(worker, [job_id], lease_until)

    async def renew_leases(self, worker: str, job_ids: Collection[str], lease_until: datetime) -> set[str]:
        # The ids travel as one JSON array: one statement whatever their number.
        return await self._write(lambda c: renew_leases(c, worker, job_ids, _ts(lease_until)))

    async def release_job(self, job_id: str, worker: str) -> bool:
        # A release is not the job's fault: give the attempt back.
        return await self.requeue_job(job_id, worker, refund_attempt=True)

    async def requeue_job(self, job_id: str, worker: str, *, refund_attempt: bool = True) -> bool:
        attempts = "MAX(attempts - 1, 0)" if refund_attempt else "attempts"
        requeued = await self._write(
            lambda c: (
                c.execute(
                    f"UPDATE jobs SET status = '{JobStatus.PENDING}', lease_owner = NULL, lease_until = NULL,"
                    " change_seq = change_seq + 1,"
                    f" attempts = {attempts} WHERE id = ? AND {_REQUEUEABLE} AND lease_owner = ?",
                    (job_id, worker),
                ).rowcount
                == 1
            )
        )
        if requeued:
            self._publish("requeued", job_id)
        return requeued

    async def complete_job(
        self, job_id: str, worker: str, result: JobResult, outputs: Sequence[OutputBlob], now: datetime
    ) -> bool:
        def complete(conn: sqlite3.Connection, token: str | None) -> bool:
            with Transaction(conn):
                row = conn.execute(
                    f"UPDATE jobs SET status = '{JobStatus.COMPLETED}', status_code = 200, result = ?,"
                    " completed_at = ?, expires_at = ? + ttl_seconds, lease_owner = NULL, lease_until = NULL,"
                    " change_seq = change_seq + 1, outputs_token = ?"
                    f" WHERE id = ? AND {_COMPLETABLE} AND lease_owner = ? RETURNING *",
                    (result_json(result), _ts(now), _ts(now), token, job_id, worker),
                ).fetchone()
                if row is None:
                    return False
                if token is None:
                    for index, output in enumerate(outputs):
                        insert_chunks(conn, job_id, _OUTPUT, index, split(output.data))
                write_event(conn, self._webhook_plan, _job_from_row(row), now)
                return True

        if self._beside is None or not self._beside.takes_outputs(outputs):
            completed = await self._write(lambda c: complete(c, None))
        else:  # the outputs first: the row that commits after them completes the job
            with reported(self._health):
                completed = await self._beside.complete_with(
                    job_id, outputs, lambda token: self._write(lambda c: complete(c, token))
                )
        if completed:
            self._publish("completed", job_id)
        return completed

    async def fail_job(self, job_id: str, worker: str | None, error: JobError, now: datetime) -> bool:
        guard, args = (
            (f"{_FAILABLE_RUNNING} AND lease_owner = ?", (worker,))
            if worker is not None
            else (_FAILABLE_PENDING, ())
        )

        def fail(conn: sqlite3.Connection) -> bool:
            with Transaction(conn):
                row = conn.execute(
                    f"UPDATE jobs SET status = '{JobStatus.FAILED}', status_code = ?, error = ?,"
                    " completed_at = ?, expires_at = ? + ttl_seconds, lease_owner = NULL, lease_until = NULL,"
                    " change_seq = change_seq + 1"
                    f" WHERE id = ? AND {guard} RETURNING *",
                    (error.status_code or 500, error_json(error), _ts(now), _ts(now), job_id, *args),
                ).fetchone()
                if row is not None:
                    write_event(conn, self._webhook_plan, _job_from_row(row), now)
                return row is not None

        failed = await self._write(fail)
        if failed:
            self._publish("failed", job_id)
        return failed

    async def export_inputs(self, job_id: str, dest: Path) -> list[StagedFile]:
        job = await self.get_job(job_id)
        if job is None:
            return []
        if job.blob_store is not None:
            with reported(self._health):
                return await beside_of(self._beside, job.blob_store).export_inputs(job, dest)

        def export(conn: sqlite3.Connection) -> list[StagedFile]:
            staged = []
            for info in job.inputs:
                path = dest / f"{info.role}-{info.index}"
                with path.open("wb") as out:
                    for (data,) in conn.execute(
                        "SELECT data FROM blob_chunks WHERE job_id = ? AND kind = ? AND idx = ? ORDER BY seq",
                        (job_id, info.role, info.index),
                    ):
                        out.write(data)
                staged.append(StagedFile(info, path))
            return staged

        return await self._read(export)

    async def read_output(self, job_id: str, index: int) -> AsyncIterator[bytes]:
        token = await self._read(
            lambda c: c.execute("SELECT outputs_token FROM jobs WHERE id = ?", (job_id,)).fetchone()
        )
        if token is not None and token[0] is not None:
            with reported(self._health):
                async for data in beside_of(self._beside, None).read_output(job_id, token[0], index):
                    yield data
            return
        for seq in itertools.count():

            def chunk(conn: sqlite3.Connection, seq: int = seq) -> sqlite3.Row | None:
                row: sqlite3.Row | None = conn.execute(
                    "SELECT data FROM blob_chunks WHERE job_id = ? AND kind = ? AND idx = ? AND seq = ?",
                    (job_id, _OUTPUT, index, seq),
                ).fetchone()
                return row

            row = await self._read(chunk)
            if row is None:
                return
            yield bytes(row[0])

    async def output_url(self, job: Job, index: int, expires_in: timedelta) -> str | None:
        return None if self._beside is None else await self._beside.output_url(job, index, expires_in)

    async def reap_expired_leases(self, now: datetime, max_attempts: int, exhausted: JobError) -> ReapResult:
        reaped: list[StoreEvent] = []  # filled on the writer thread, published once committed

        def reap(conn: sqlite3.Connection) -> ReapResult:
            with Transaction(conn):
                stale = conn.execute(
                    f"SELECT id, attempts, ttl_seconds FROM jobs WHERE {_RUNNING} AND lease_until < ?",
                    (_ts(now),),
                ).fetchall()
                failed = 0
                for row in stale:
                    if row["attempts"] >= max_attempts:
                        ended = conn.execute(
                            f"UPDATE jobs SET status = '{JobStatus.FAILED}', status_code = ?, error = ?,"
                            " completed_at = ?, expires_at = ?, lease_owner = NULL, lease_until = NULL,"
                            " change_seq = change_seq + 1"
                            f" WHERE id = ? AND {_FAILABLE_RUNNING} RETURNING *",
                            (
                                exhausted.status_code,
                                error_json(exhausted),
                                _ts(now),
                                _ts(expiry(now, row["ttl_seconds"])),
                                row["id"],
                            ),
                        ).fetchone()
                        write_event(conn, self._webhook_plan, _job_from_row(ended), now)
                        failed += 1
                        reaped.append(StoreEvent("failed", row["id"]))
                    else:
                        conn.execute(
                            f"UPDATE jobs SET status = '{JobStatus.PENDING}', lease_owner = NULL,"
                            f" lease_until = NULL,"
                            f" change_seq = change_seq + 1 WHERE id = ? AND {_REQUEUEABLE}",
                            (row["id"],),
                        )
                        reaped.append(StoreEvent("requeued", row["id"]))
                return ReapResult(requeued=len(stale) - failed, failed=failed)

        result = await self._write(reap)
        for event in reaped:
            self._subscribers.publish(event)
        return result

    async def delete_expired(self, now: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> list[tuple[str, bool]]:
            with Transaction(conn):
                rows = conn.execute(
                    "SELECT id, blob_store IS NOT NULL OR outputs_token IS NOT NULL FROM jobs"
                    " WHERE expires_at <= ? LIMIT ?",
                    (_ts(now), limit),
                ).fetchall()
                for job_id, _ in rows:
                    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))  # its chunk rows go with it
                return [(job_id, bool(beside)) for job_id, beside in rows]

        deleted = await self._write(delete)
        if self._beside is not None:  # the rows are gone: their files in the blob store go after them
            await self._beside.forget_all([job_id for job_id, beside in deleted if beside])
        return len(deleted)

    async def collect_orphan_blobs(self, now: datetime) -> int:
        if self._beside is None:
            return 0

        def tokens(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, str | None]:
            marks = ", ".join("?" * len(ids))
            rows = conn.execute(f"SELECT id, outputs_token FROM jobs WHERE id IN ({marks})", list(ids))
            return {job_id: token for job_id, token in rows}

        with reported(self._health):
            return await self._beside.collect_orphans(lambda ids: self._read(lambda c: tokens(c, ids)), now)
