"""The shared store: PostgreSQL through an asyncpg connection pool, for several replicas.

Schema (grpc_server/store/migrations/postgres, applied by grpc_server.store.migrate, never by
open()):

    jobs         id text PK, request_type, status ('pending' | 'processing' | 'completed' |
                 'failed'), model, owner_key_id, params / inputs / result / error (the
                 codec's JSON text), ttl_seconds, created_at / completed_at / expires_at /
                 lease_until (timestamptz), status_code, attempts, lease_owner;
                 partial indexes on the queue (pending by created_at), the leases
                 (processing by lease_until) and expiry
    blob_chunks  (job_id -> jobs.id ON DELETE CASCADE, kind 'image' | 'mask' | 'output', idx, seq) PK,
                 data bytea of at most CHUNK_BYTES, stored uncompressed out of line

The columns and every guard mirror the SQLite backend, so one contract suite covers both.

Concurrency. Several replicas run the same dispatcher loops against one database:

* Claims lock the oldest pending rows with `FOR UPDATE SKIP LOCKED` and move them to
  processing in the same statement. A row another replica is claiming is skipped
  rather than waited for, so concurrent claimers take disjoint jobs without blocking
  each other, and a job is never handed out twice (the lock is held until commit,
  and the row is re-checked to be pending once locked).
* Outcomes (complete, fail, renew, release, requeue) are single guarded UPDATEs,
  compare-and-set on (status, lease_owner), the status guards made from the state table
  (see guards): a worker whose lease was reaped updates nothing. One UPDATE renews every
  lease a worker holds (renew_leases, the ids as one array parameter).
* The reaper and the sweeper also select with `FOR UPDATE SKIP LOCKED`: when every
  replica reaps or sweeps at once, each expired row is handled (and counted) by
  exactly one of them, and none waits on another.
* Migrations are serialised by a transaction-scoped advisory lock (see migrate.py).

Files: with a blob store (`blobs`, see blobs_beside), new jobs' files are kept there and the
rows name it (except outputs small enough to stay with the row, see blobs_beside); without
one (or for jobs stored before), in blob_chunks. There they are
written and read in CHUNK_BYTES rows, never held whole: an input is read from
its staged file one chunk at a time (in a thread) and inserted inside the create
transaction; read_output runs one short query per chunk, so a slow client never pins a
pooled connection; export_inputs streams each input through a server-side cursor.

Connection failures (refused, reset, timeouts, server shutting down, pool closed) raise
StoreUnavailable, so callers can answer UNAVAILABLE and retry.

Events (subscribe): LISTEN/NOTIFY, see pg_events. Every write that submits, requeues or ends
a job publishes in the same transaction, so only committed writes are heard.

Health: failures of any operation are told to watch_health() at once; a full disk on the
database server (SQLSTATE 53100) or, with a scratch directory, on this server's data
directory raises StoreFull.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg

from grpc_server.blobs.base import BlobStore
from grpc_server.domain.jobs import Job, JobError, JobResult, JobStatus, OutputBlob
from grpc_server.store.admission import AdmissionLimits, KeyPolicy
from grpc_server.store.base import (
    DuplicateRequestId,
    EventCallback,
    HealthCallback,
    HealthReports,
    ReapResult,
    StagedFile,
    StoreFull,
    StoreUnavailable,
    Subscribers,
)
from grpc_server.store.blobs_beside import BlobsBeside, beside_of
from grpc_server.store.codec import JOB_COLUMNS, error_json, job_row, result_json
from grpc_server.store.disk import is_no_space, probe_space
from grpc_server.store.fair_share import FAIR_ORDER_TAIL, POSTGRES_CANDIDATES
from grpc_server.store.guards import in_status, moving_to
from grpc_server.store.migrate import migrate
from grpc_server.store.pg_blobs import (
    Connection,
    LocalFileError,
    export_blob,
    file_chunks,
    insert_blob,
    memory_chunks,
)
from grpc_server.store.pg_connect import (
    CLOSE_TIMEOUT_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    CONNECTION_ERRORS,
    READ_ONLY_MESSAGE,
    NoResetConnection,
    session_settings,
    unavailable,
)
from grpc_server.store.pg_events import Listener, event_channel
from grpc_server.store.pg_jobs import PostgresJobApi, check_limits, job_from_record
from grpc_server.store.pg_outbox import PostgresWebhooks, write_event
from grpc_server.store.stats import StoreStats, postgres_stats

_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(JOB_COLUMNS) + 1))}) RETURNING id"
)

ACQUIRE_TIMEOUT_SECONDS = 30.0
"""How long an operation waits for a pooled connection (includes reconnecting)."""
_OUTPUT = "output"

# The compare-and-set guards, from the state table (see guards).
_CLAIMABLE = moving_to(JobStatus.PROCESSING)
_REQUEUEABLE = moving_to(JobStatus.PENDING, only_from=JobStatus.PROCESSING)
_COMPLETABLE = moving_to(JobStatus.COMPLETED)
_FAILABLE_RUNNING = moving_to(JobStatus.FAILED, only_from=JobStatus.PROCESSING)
_FAILABLE_PENDING = moving_to(JobStatus.FAILED, only_from=JobStatus.PENDING)
_RUNNING = in_status(JobStatus.PROCESSING)
_CLAIMABLE_ROW = moving_to(JobStatus.PROCESSING, column="jobs.status")
_REAPABLE_ROW = (  # a reaped job goes back to the queue, or fails when out of attempts
    f"{moving_to(JobStatus.PENDING, column='jobs.status')}"
    f" AND {moving_to(JobStatus.FAILED, only_from=JobStatus.PROCESSING, column='jobs.status')}"
)

_REAP_EVENT = f"CASE WHEN status = '{JobStatus.FAILED}' THEN 'failed' ELSE 'requeued' END"
"""The event of a row the reaper wrote: failed when out of attempts, else requeued."""


def _expiry(now: str) -> str:
    """SQL for when a job finishing at parameter `now` expires: its TTL counts from then."""
    return f"{now}::timestamptz + jobs.ttl_seconds * interval '1 second'"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_job_from_record = job_from_record
T = TypeVar("T")


class PostgresStore(PostgresJobApi, PostgresWebhooks):
    hears_every_write = False  # other replicas write; NOTIFY comes late, or not across a reconnect

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        scratch_dir: Path | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        """`scratch_dir`: where this server writes uploads and job inputs (its data directory);
        ping() then also checks that it can take another chunk. `blobs`: where new jobs' files
        go (opened and closed with this store); None: into the database, as blob_chunks rows."""
        self.dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._channel = event_channel(schema)
        self._subscribers = Subscribers()
        self._listener: Listener | None = None
        self._health = HealthReports()
        self._scratch_dir = scratch_dir
        self._policy = KeyPolicy()
        self._beside = None if blobs is None else BlobsBeside(blobs)

    async def open(self) -> None:
        """Connect the pool (no migration: see grpc_server.store.factory.prepare_store)."""
        if self._pool is not None:
            return
        with unavailable():
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings=session_settings(self.schema),
                connection_class=NoResetConnection,
            )
        try:
            if self._beside is not None:
                await self._beside.store.open()
            await self.ping()  # with min_size=0 the pool has not connected yet
        except StoreUnavailable:
            await self.close()
            raise

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        self._subscribers.clear()
        self._health.clear()
        if self._beside is not None:
            await self._beside.store.close()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_SECONDS)
        except CONNECTION_ERRORS:  # a dead server or a stuck connection: drop them all
            pool.terminate()

    async def subscribe(self, on_event: EventCallback) -> None:
        """Listen on this store's channel (from the first call on). Returns once listening, or,
        when the database cannot be reached, once that is logged: the listener keeps trying."""
        self._subscribers.add(on_event)
        if self._listener is None:
            self._listener = Listener(self.dsn, self.schema, self._channel, self._subscribers.publish)
            await self._listener.start()

    @property
    def listener_pid(self) -> int | None:
        """The server process of the listening connection, if it is connected (diagnostics, tests)."""
        return None if self._listener is None else self._listener.pid

    def _notify(self, kind: str) -> str:
        """SQL publishing `kind` for the row `id` of the statement it is in (a literal kind, or
        SQL text computing one): queued by that statement's transaction, sent on its commit."""
        return f"pg_notify({_quote_literal(self._channel)}, {kind} || ':' || id)"

    def _publishing(self, kind: str, write: str) -> str:
        """`write` (... RETURNING id) that also publishes `kind` for each row it wrote."""
        return f"WITH written AS ({write}) SELECT id, {self._notify(_quote_literal(kind))} FROM written"

    async def migrate(self) -> list[str]:
        """Apply pending migrations to this store's database and schema; the versions applied."""
        return await migrate(self.dsn, schema=self.schema)

    def watch_health(self, on_change: HealthCallback) -> None:
        self._health.watch(on_change)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; the database's failures (and full local disks) raised as the store's
        and told to watch_health()."""
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        try:
            with unavailable():
                async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                    yield conn
        except LocalFileError as exc:
            if not is_no_space(exc.error):
                raise exc.error from None  # a staged file that is gone, say: the caller's own error
            full = StoreFull()
            self._health.failed(full)
            raise full from exc.error
        except StoreUnavailable as exc:
            self._health.failed(exc)
            raise
        self._health.succeeded()

    async def ping(self) -> None:
        """The database answers and accepts writes (not a standby, not read-only), and the scratch
        directory, if any, can take another chunk."""
        # All inside the connection block: one report to watch_health, not a success first.
        async with self._connection() as conn:
            writable = await conn.fetchval(
                "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"
            )
            if not writable:
                raise StoreUnavailable(READ_ONLY_MESSAGE)
            if self._scratch_dir is not None:
                await asyncio.to_thread(probe_space, self._scratch_dir)
            if self._beside is not None:
                await self._beside.store.ping()

    def use_key_policy(self, policy: KeyPolicy) -> None:
        self._policy = policy

    async def create_job(self, job: Job, files: Sequence[StagedFile]) -> None:
        # A staged file that fails rolls the transaction back; the caller sees the file's own error.
        limits = self._policy.limits_of(job.owner_key_id)
        beside = self._beside
        try:
            if beside is not None:  # the files first: the row that commits after them is the job
                await self._reporting(beside.put_inputs(job.id, files))
            await self._insert_job(job, files, limits if limits and limits.any else None)
        except asyncpg.UniqueViolationError as exc:
            await self._forget_uncommitted(job.id)
            if exc.constraint_name == "jobs_idempotency":
                raise DuplicateRequestId(job.idempotency_key) from exc
            raise
        except Exception:
            await self._forget_uncommitted(job.id)
            raise

    async def _forget_uncommitted(self, job_id: str) -> None:
        """The files of a job whose insert failed. (A cancelled caller's insert may have committed:
        its files stay, for the row or for the orphan sweep.)"""
        if self._beside is not None:
            await self._beside.forget(job_id)

    async def _reporting(self, blob_work: Awaitable[T]) -> T:
        """Blob store work, its failures told to watch_health() like the database's."""
        try:
            return await blob_work
        except StoreUnavailable as exc:
            self._health.failed(exc)
            raise

    async def _insert_job(
        self, job: Job, files: Sequence[StagedFile], limits: AdmissionLimits | None
    ) -> None:
        blob_store = None if self._beside is None else self._beside.name
        insert = self._publishing("submitted", _INSERT_JOB)
        row = job_row(job, files, job.created_at, blob_store)
        if limits is None and (blob_store is not None or not files):
            # One statement is a transaction of its own: no BEGIN and COMMIT round trips.
            async with self._connection() as conn:
                await conn.execute(insert, *row)
            return
        async with self._connection() as conn, conn.transaction():
            if limits is not None:
                await check_limits(conn, job, limits)
            # Published on commit only, so after the blobs below are in too.
            await conn.execute(insert, *row)
            for staged in files if blob_store is None else ():
                source = staged.source
                chunks = memory_chunks(source) if isinstance(source, bytes) else file_chunks(source)
                await insert_blob(conn, job.id, staged.info.role, staged.info.index, chunks)

    async def stats(self, now: datetime) -> StoreStats:
        async with self._connection() as conn:
            return await postgres_stats(conn, now)

    async def get_job(self, job_id: str) -> Job | None:
        async with self._connection() as conn:
            record = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        return None if record is None else _job_from_record(record)

    async def claim_jobs(self, worker: str, limit: int, now: datetime, lease_until: datetime) -> list[Job]:
        # MATERIALIZED: the CTE locking the pending rows runs exactly once, never re-scanned
        # by the join; SKIP LOCKED lets concurrent claimers pass over each other's rows.
        policy = self._policy
        if policy.fair_share:  # keys take turns (see fair_share); $4, $5: their priorities
            chosen, order = POSTGRES_CANDIDATES, f"_priority DESC, _turn, {FAIR_ORDER_TAIL}"
            extra: tuple[object, ...] = (list(policy.priorities), list(policy.priorities.values()))
            returned = "jobs.*, next.priority AS _priority, next.turn AS _turn"
        else:
            chosen = (
                "WITH next AS MATERIALIZED ("
                f"  SELECT id FROM jobs WHERE {_CLAIMABLE} ORDER BY created_at, id LIMIT $3"
                "  FOR UPDATE SKIP LOCKED)"
            )
            order, extra, returned = "created_at, id", (), "jobs.*"
        async with self._connection() as conn:
            records = await conn.fetch(
                f"{chosen}, claimed AS ("
                f"  UPDATE jobs SET status = '{JobStatus.PROCESSING}', lease_owner = $1, lease_until = $2,"
                "  attempts = attempts + 1, change_seq = jobs.change_seq + 1"
                f"  FROM next WHERE jobs.id = next.id AND {_CLAIMABLE_ROW} RETURNING {returned}"
                f") SELECT *, {self._notify(_quote_literal('claimed'))} AS _event"  # for WatchJob
                f" FROM claimed ORDER BY {order}",
                worker,
                lease_until,
                limit,
                *extra,
            )
        return [_job_from_record(r) for r in records]

    async def _guarded_update(self, sql: str, *args: object) -> bool:
        """One compare-and-set UPDATE ... RETURNING id (first column): True when it matched its row."""
        async with self._connection() as conn:
            return await conn.fetchval(sql, *args) is not None

    async def renew_lease(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        return job_id in await self.renew_leases(worker, [job_id], lease_until)

    async def renew_leases(self, worker: str, job_ids: Collection[str], lease_until: datetime) -> set[str]:
        if not job_ids:
            return set()
        async with self._connection() as conn:
            records = await conn.fetch(
                f"UPDATE jobs SET lease_until = $3 WHERE id = ANY($1::text[]) AND {_RUNNING}"
                " AND lease_owner = $2 RETURNING id",
                list(job_ids),
                worker,
                lease_until,
            )
        return {r["id"] for r in records}

    async def release_job(self, job_id: str, worker: str) -> bool:
        # A release is not the job's fault: give the attempt back.
        return await self.requeue_job(job_id, worker, refund_attempt=True)

    async def requeue_job(self, job_id: str, worker: str, *, refund_attempt: bool = True) -> bool:
        attempts = "GREATEST(attempts - 1, 0)" if refund_attempt else "attempts"
        return await self._guarded_update(
            self._publishing(
                "requeued",
                f"UPDATE jobs SET status = '{JobStatus.PENDING}', lease_owner = NULL, lease_until = NULL,"
                " change_seq = change_seq + 1,"
                f" attempts = {attempts} WHERE id = $1 AND {_REQUEUEABLE} AND lease_owner = $2 RETURNING id",
            ),
            job_id,
            worker,
        )

    async def complete_job(
        self, job_id: str, worker: str, result: JobResult, outputs: Sequence[OutputBlob], now: datetime
    ) -> bool:
        if self._beside is None or not self._beside.takes_outputs(outputs):
            return await self._complete(job_id, worker, result, outputs, now, None)
        # The outputs first: the row that commits after them completes the job.
        return await self._reporting(
            self._beside.complete_with(
                job_id, outputs, lambda token: self._complete(job_id, worker, result, outputs, now, token)
            )
        )

    async def _complete(
        self,
        job_id: str,
        worker: str,
        result: JobResult,
        outputs: Sequence[OutputBlob],
        now: datetime,
        token: str | None,
    ) -> bool:
        async with self._connection() as conn, conn.transaction():
            updated = await conn.fetchrow(
                self._published(
                    "completed",
                    f"UPDATE jobs SET status = '{JobStatus.COMPLETED}', status_code = 200, result = $3,"
                    f" completed_at = $4, expires_at = {_expiry('$4')},"
                    " lease_owner = NULL, lease_until = NULL, change_seq = change_seq + 1, outputs_token = $5"
                    f" WHERE id = $1 AND {_COMPLETABLE} AND lease_owner = $2 RETURNING *",
                ),
                job_id,
                worker,
                result_json(result),
                now,
                token,
            )
            if updated is None:
                return False
            for index, output in enumerate(outputs if token is None else ()):
                await insert_blob(conn, job_id, _OUTPUT, index, memory_chunks(output.data))
            await write_event(conn, self._webhook_plan, job_from_record(updated), now)
            return True

    async def fail_job(self, job_id: str, worker: str | None, error: JobError, now: datetime) -> bool:
        guard = f"{_FAILABLE_RUNNING} AND lease_owner = $5" if worker is not None else _FAILABLE_PENDING
        extra = (worker,) if worker is not None else ()
        async with self._connection() as conn, conn.transaction():
            failed = await conn.fetchrow(
                self._published(
                    "failed",
                    f"UPDATE jobs SET status = '{JobStatus.FAILED}', status_code = $2, error = $3,"
                    f" completed_at = $4, expires_at = {_expiry('$4')},"
                    " lease_owner = NULL, lease_until = NULL, change_seq = change_seq + 1"
                    f" WHERE id = $1 AND {guard} RETURNING *",
                ),
                job_id,
                error.status_code or 500,
                error_json(error),
                now,
                *extra,
            )
            if failed is not None:
                await write_event(conn, self._webhook_plan, job_from_record(failed), now)
        return failed is not None

    async def export_inputs(self, job_id: str, dest: Path) -> list[StagedFile]:
        # One snapshot for the job row and all its chunks: a concurrent sweep cannot tear it.
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            record = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
            if record is None:
                return []
            job = _job_from_record(record)
            if job.blob_store is not None:
                return await self._reporting(beside_of(self._beside, job.blob_store).export_inputs(job, dest))
            staged = []
            for info in job.inputs:
                path = dest / f"{info.role}-{info.index}"
                await export_blob(conn, job_id, info.role, info.index, path)
                staged.append(StagedFile(info, path))
            return staged

    async def read_output(self, job_id: str, index: int) -> AsyncIterator[bytes]:
        # One query per chunk, each on a connection borrowed just for it: the caller may
        # take its time between chunks without holding a pooled connection.
        async with self._connection() as conn:
            token = await conn.fetchval("SELECT outputs_token FROM jobs WHERE id = $1", job_id)
        if token is not None:
            async for chunk in beside_of(self._beside, None).read_output(job_id, token, index):
                yield chunk
            return
        seq = 0
        while True:
            async with self._connection() as conn:
                data = await conn.fetchval(
                    "SELECT data FROM blob_chunks WHERE job_id = $1 AND kind = $2 AND idx = $3 AND seq = $4",
                    job_id,
                    _OUTPUT,
                    index,
                    seq,
                )
            if data is None:
                return
            yield bytes(data)
            seq += 1

    async def output_url(self, job: Job, index: int, expires_in: timedelta) -> str | None:
        return None if self._beside is None else await self._beside.output_url(job, index, expires_in)

    async def reap_expired_leases(self, now: datetime, max_attempts: int, exhausted: JobError) -> ReapResult:
        # One statement: rows another reaper (or a finishing worker) holds are skipped,
        # so every expired lease is requeued or failed, and counted, exactly once.
        spent = "jobs.attempts >= $2"
        async with self._connection() as conn, conn.transaction():
            records = await conn.fetch(
                "WITH stale AS MATERIALIZED ("
                f"  SELECT id FROM jobs WHERE {_RUNNING} AND lease_until < $1"
                "  FOR UPDATE SKIP LOCKED"
                "), reaped AS (UPDATE jobs SET"
                f" status = CASE WHEN {spent} THEN '{JobStatus.FAILED}' ELSE '{JobStatus.PENDING}' END,"
                f" status_code = CASE WHEN {spent} THEN $3 ELSE jobs.status_code END,"
                f" error = CASE WHEN {spent} THEN $4 ELSE jobs.error END,"
                f" completed_at = CASE WHEN {spent} THEN $1 ELSE jobs.completed_at END,"
                f" expires_at = CASE WHEN {spent} THEN {_expiry('$1')} ELSE jobs.expires_at END,"
                " lease_owner = NULL, lease_until = NULL, change_seq = change_seq + 1"
                f" FROM stale WHERE jobs.id = stale.id AND {_REAPABLE_ROW} RETURNING jobs.*"
                f") SELECT *, {self._notify(_REAP_EVENT)} AS _event FROM reaped",
                now,
                max_attempts,
                exhausted.status_code,
                error_json(exhausted),
            )
            for record in records:
                if record["status"] == JobStatus.FAILED:
                    await write_event(conn, self._webhook_plan, job_from_record(record), now)
        failed = sum(1 for r in records if r["status"] == JobStatus.FAILED)
        return ReapResult(requeued=len(records) - failed, failed=failed)

    async def delete_expired(self, now: datetime, limit: int) -> int:
        async with self._connection() as conn, conn.transaction():
            # SKIP LOCKED: sweepers on other replicas take other rows instead of the same ones.
            rows = await conn.fetch(
                "SELECT id, blob_store IS NOT NULL OR outputs_token IS NOT NULL AS beside FROM jobs"
                " WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                now,
                limit,
            )
            ids = [r["id"] for r in rows]
            if ids:
                # Explicitly, not only by the cascade: a schema not yet migrated past 0001 has none.
                await conn.execute("DELETE FROM blob_chunks WHERE job_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", ids)
        if self._beside is not None:  # the rows are gone: their files in the blob store go after them
            await self._beside.forget_all([r["id"] for r in rows if r["beside"]])
        return len(ids)

    async def collect_orphan_blobs(self, now: datetime) -> int:
        if self._beside is None:
            return 0

        async def tokens(ids: Sequence[str]) -> dict[str, str | None]:
            async with self._connection() as conn:
                rows = await conn.fetch(
                    "SELECT id, outputs_token FROM jobs WHERE id = ANY($1::text[])", list(ids)
                )
            return {r["id"]: r["outputs_token"] for r in rows}

        return await self._reporting(self._beside.collect_orphans(tokens, now))
