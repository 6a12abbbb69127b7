"""The shared store: PostgreSQL through an asyncpg connection pool, for several replicas.

Schema (grpc_server/store/migrations/0001_initial.sql, applied by grpc_server.store.migrate,
never by open()):

    jobs         id text PK, request_type, status ('pending' | 'processing' | 'completed' |
                 'failed'), model, owner_key_id, params / inputs / result / error (the
                 codec's JSON text), ttl_seconds, created_at / completed_at / expires_at /
                 lease_until (timestamptz), status_code, attempts, lease_owner;
                 partial indexes on the queue (pending by created_at), the leases
                 (processing by lease_until) and expiry
    blob_chunks  (job_id -> jobs.id, kind 'image' | 'mask' | 'output', idx, seq) PK,
                 data bytea of at most CHUNK_BYTES, stored uncompressed out of line

The columns and every guard mirror the SQLite backend, so one contract suite covers both.

Concurrency. Several replicas run the same dispatcher loops against one database:

* Claims lock the oldest pending rows with `FOR UPDATE SKIP LOCKED` and move them to
  processing in the same statement. A row another replica is claiming is skipped
  rather than waited for, so concurrent claimers take disjoint jobs without blocking
  each other, and a job is never handed out twice (the lock is held until commit,
  and the row is re-checked to be pending once locked).
* Outcomes (complete, fail, renew, release) are single guarded UPDATEs, compare-and-set
  on (status, lease_owner): a worker whose lease was reaped updates nothing.
* The reaper and the sweeper also select with `FOR UPDATE SKIP LOCKED`: when every
  replica reaps or sweeps at once, each expired row is handled (and counted) by
  exactly one of them, and none waits on another.
* Migrations are serialised by a transaction-scoped advisory lock (see migrate.py).

Blobs are written and read in CHUNK_BYTES rows, never held whole: an input is read from
its staged file one chunk at a time (in a thread) and inserted inside the create
transaction; read_output runs one short query per chunk, so a slow client never pins a
pooled connection; export_inputs streams each input through a server-side cursor.

Connection failures (refused, reset, timeouts, server shutting down, pool closed) raise
StoreUnavailable, so callers can answer UNAVAILABLE and retry.

Events (subscribe). Every write that submits a job, requeues it or ends it also runs
`pg_notify(channel, '<kind>:<job_id>')` in its own statement, hence its own transaction:
PostgreSQL delivers the notification when that transaction commits and drops it if it
rolls back. The channel is `asyncgate_events`, or `asyncgate_events_<schema>` for a store
on its own schema (channels are database-wide; schemas are not). A subscribed store holds
one dedicated connection (outside the pool, which would recycle it) that LISTENs on the
channel; see _Listener for how it survives losing that connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing, asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from grpc_server.domain.jobs import Job, JobError, JobResult, OutputBlob
from grpc_server.store.base import (
    CHUNK_BYTES,
    EVENT_KINDS,
    EventCallback,
    ReapResult,
    StagedFile,
    StoreEvent,
    StoreUnavailable,
    Subscribers,
)
from grpc_server.store.codec import JOB_COLUMNS, error_json, job_from_row, job_row, result_json

T = TypeVar("T")
_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(JOB_COLUMNS) + 1))}) RETURNING id"
)
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"  # subscriptable for mypy only

log = logging.getLogger("asyncgate.store")

CONNECT_TIMEOUT_SECONDS = 10.0
"""How long opening one connection may take before the database counts as unreachable."""
ACQUIRE_TIMEOUT_SECONDS = 30.0
"""How long an operation waits for a pooled connection (includes reconnecting)."""
CLOSE_TIMEOUT_SECONDS = 10.0

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (connect, acquire) is one too
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection that went away
    asyncpg.InterfaceError,  # the connection or the pool was closed under us
    asyncpg.CannotConnectNowError,  # the server is starting or stopping
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)

LISTEN_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
"""What may go wrong with the listener's connection: all of it retried, none of it fatal."""
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
LISTEN_HEARTBEAT_SECONDS = 30.0
"""How often an idle listener checks its connection: a silent network cut shows only when we speak."""

EVENT_CHANNEL = "asyncgate_events"
_MAX_CHANNEL_BYTES = 63  # NAMEDATALEN - 1: LISTEN would truncate a longer name, pg_notify reject it

_OUTPUT = "output"


_REAP_EVENT = "CASE WHEN status = 'failed' THEN 'failed' ELSE 'requeued' END"
"""The event of a row the reaper wrote: failed when out of attempts, else requeued."""


def _expiry(now: str) -> str:
    """SQL for when a job finishing at parameter `now` expires: its TTL counts from then."""
    return f"{now}::timestamptz + jobs.ttl_seconds * interval '1 second'"


@contextmanager
def unavailable() -> Iterator[None]:
    """Turn the database being unreachable into StoreUnavailable; let everything else through."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        if isinstance(exc, ValueError):  # asyncpg's DataError, ClientConfigurationError: our bugs
            raise
        raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted so that any schema name is taken literally."""
    return '"' + name.replace('"', '""') + '"'


def event_channel(schema: str | None) -> str:
    """The NOTIFY channel of a store: one per schema, as channels span the whole database."""
    if schema is None:
        return EVENT_CHANNEL
    channel = f"{EVENT_CHANNEL}_{schema}"
    if len(channel.encode()) > _MAX_CHANNEL_BYTES:
        channel = f"{EVENT_CHANNEL}_{hashlib.sha256(schema.encode()).hexdigest()[:32]}"
    return channel


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def parse_event(payload: str) -> StoreEvent | None:
    """'<kind>:<job_id>' as published by the stores; None for anything else (a newer replica's kind)."""
    kind, sep, job_id = payload.partition(":")
    if not sep or kind not in EVENT_KINDS:
        return None
    return StoreEvent(kind, job_id)  # type: ignore[arg-type]  # checked against EVENT_KINDS


def session_settings(schema: str | None) -> dict[str, str]:
    """Connection settings; with a schema, unqualified names resolve there and only there."""
    settings = {"application_name": "asyncgate"}
    if schema is not None:
        settings["search_path"] = quote_ident(schema)
    return settings


class _LocalFileError(Exception):
    """A staged or exported file failed: the caller's OSError, not the database's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


async def _local(fn: Callable[..., T], *args: object) -> T:
    """Run blocking file I/O in a thread, marking its OSError as local."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as exc:
        raise _LocalFileError(exc) from exc


def _job_from_record(record: asyncpg.Record) -> Job:
    return job_from_row(dict(record), record["created_at"], record["completed_at"], record["expires_at"])


def _split(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    return (view[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES))


async def _file_chunks(path: Path) -> AsyncGenerator[bytes, None]:
    f: IO[bytes] = await _local(path.open, "rb")
    try:
        while chunk := await _local(f.read, CHUNK_BYTES):
            yield chunk
    finally:
        f.close()


async def _memory_chunks(data: bytes) -> AsyncGenerator[memoryview, None]:
    for chunk in _split(data):
        yield chunk


async def _insert_blob(
    conn: Connection, job_id: str, kind: str, index: int, chunks: AsyncGenerator[bytes | memoryview, None]
) -> None:
    """Insert one blob chunk by chunk; an empty blob is one empty chunk, so it still exists."""
    seq = 0
    async with aclosing(chunks):
        async for chunk in chunks:
            await conn.execute(
                "INSERT INTO blob_chunks (job_id, kind, idx, seq, data) VALUES ($1, $2, $3, $4, $5)",
                job_id,
                kind,
                index,
                seq,
                chunk,
            )
            seq += 1
    if seq == 0:
        await conn.execute(
            "INSERT INTO blob_chunks (job_id, kind, idx, seq, data) VALUES ($1, $2, $3, 0, '')",
            job_id,
            kind,
            index,
        )


class PostgresStore:
    def __init__(self, dsn: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._channel = event_channel(schema)
        self._subscribers = Subscribers()
        self._listener: _Listener | None = None

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
            )
        try:
            await self.ping()  # with min_size=0 the pool has not connected yet
        except StoreUnavailable:
            await self.close()
            raise

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        self._subscribers.clear()
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
            self._listener = _Listener(self.dsn, self.schema, self._channel, self._subscribers.publish)
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
        from grpc_server.store.migrate import migrate  # migrate.py imports this module

        return await migrate(self.dsn, schema=self.schema)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        with unavailable():
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                yield conn

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def create_job(self, job: Job, files: Sequence[StagedFile]) -> None:
        try:
            async with self._connection() as conn, conn.transaction():
                # Published on commit only, so after the blobs below are in too.
                await conn.execute(
                    self._publishing("submitted", _INSERT_JOB),
                    *job_row(job, files, job.created_at),
                )
                for staged in files:
                    source = staged.source
                    chunks = _memory_chunks(source) if isinstance(source, bytes) else _file_chunks(source)
                    await _insert_blob(conn, job.id, staged.info.role, staged.info.index, chunks)
        except _LocalFileError as exc:  # rolled back; the caller sees the file's own error
            raise exc.error from None

    async def get_job(self, job_id: str) -> Job | None:
        async with self._connection() as conn:
            record = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        return None if record is None else _job_from_record(record)

    async def claim_jobs(self, worker: str, limit: int, now: datetime, lease_until: datetime) -> list[Job]:
        # MATERIALIZED: the CTE locking the oldest pending rows runs exactly once, never
        # re-scanned by the join; SKIP LOCKED lets concurrent claimers pass over each other's rows.
        async with self._connection() as conn:
            records = await conn.fetch(
                "WITH next AS MATERIALIZED ("
                "  SELECT id FROM jobs WHERE status = 'pending' ORDER BY created_at LIMIT $3"
                "  FOR UPDATE SKIP LOCKED"
                "), claimed AS ("
                "  UPDATE jobs SET status = 'processing', lease_owner = $1, lease_until = $2,"
                "  attempts = attempts + 1"
                "  FROM next WHERE jobs.id = next.id AND jobs.status = 'pending' RETURNING jobs.*"
                ") SELECT * FROM claimed ORDER BY created_at, id",
                worker,
                lease_until,
                limit,
            )
        return [_job_from_record(r) for r in records]

    async def _guarded_update(self, sql: str, *args: object) -> bool:
        """One compare-and-set UPDATE ... RETURNING id (first column): True when it matched its row."""
        async with self._connection() as conn:
            return await conn.fetchval(sql, *args) is not None

    async def renew_lease(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        return await self._guarded_update(
            "UPDATE jobs SET lease_until = $3"
            " WHERE id = $1 AND status = 'processing' AND lease_owner = $2 RETURNING id",
            job_id,
            worker,
            lease_until,
        )

    async def release_job(self, job_id: str, worker: str) -> bool:
        # A release is not the job's fault: give the attempt back.
        return await self._guarded_update(
            self._publishing(
                "requeued",
                "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
                " attempts = GREATEST(attempts - 1, 0)"
                " WHERE id = $1 AND status = 'processing' AND lease_owner = $2 RETURNING id",
            ),
            job_id,
            worker,
        )

    async def complete_job(
        self, job_id: str, worker: str, result: JobResult, outputs: Sequence[OutputBlob], now: datetime
    ) -> bool:
        async with self._connection() as conn, conn.transaction():
            updated = await conn.fetchval(
                self._publishing(
                    "completed",
                    "UPDATE jobs SET status = 'completed', status_code = 200, result = $3, completed_at = $4,"
                    f" expires_at = {_expiry('$4')}, lease_owner = NULL, lease_until = NULL"
                    " WHERE id = $1 AND status = 'processing' AND lease_owner = $2 RETURNING id",
                ),
                job_id,
                worker,
                result_json(result),
                now,
            )
            if updated is None:
                return False
            for index, output in enumerate(outputs):
                await _insert_blob(conn, job_id, _OUTPUT, index, _memory_chunks(output.data))
            return True

    async def fail_job(self, job_id: str, worker: str | None, error: JobError, now: datetime) -> bool:
        guard = "status = 'processing' AND lease_owner = $5" if worker is not None else "status = 'pending'"
        extra = (worker,) if worker is not None else ()
        return await self._guarded_update(
            self._publishing(
                "failed",
                "UPDATE jobs SET status = 'failed', status_code = $2, error = $3, completed_at = $4,"
                f" expires_at = {_expiry('$4')}, lease_owner = NULL, lease_until = NULL"
                f" WHERE id = $1 AND {guard} RETURNING id",
            ),
            job_id,
            error.status_code or 500,
            error_json(error),
            now,
            *extra,
        )

    async def export_inputs(self, job_id: str, dest: Path) -> list[StagedFile]:
        try:
            # One snapshot for the job row and all its chunks: a concurrent sweep cannot tear it.
            async with (
                self._connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                record = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
                if record is None:
                    return []
                staged = []
                for info in _job_from_record(record).inputs:
                    path = dest / f"{info.role}-{info.index}"
                    await _export_blob(conn, job_id, info.role, info.index, path)
                    staged.append(StagedFile(info, path))
                return staged
        except _LocalFileError as exc:
            raise exc.error from None

    async def read_output(self, job_id: str, index: int) -> AsyncIterator[bytes]:
        # One query per chunk, each on a connection borrowed just for it: the caller may
        # take its time between chunks without holding a pooled connection.
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

    async def reap_expired_leases(self, now: datetime, max_attempts: int, exhausted: JobError) -> ReapResult:
        # One statement: rows another reaper (or a finishing worker) holds are skipped,
        # so every expired lease is requeued or failed, and counted, exactly once.
        spent = "jobs.attempts >= $2"
        async with self._connection() as conn:
            records = await conn.fetch(
                "WITH stale AS MATERIALIZED ("
                "  SELECT id FROM jobs WHERE status = 'processing' AND lease_until < $1"
                "  FOR UPDATE SKIP LOCKED"
                "), reaped AS (UPDATE jobs SET"
                f" status = CASE WHEN {spent} THEN 'failed' ELSE 'pending' END,"
                f" status_code = CASE WHEN {spent} THEN $3 ELSE jobs.status_code END,"
                f" error = CASE WHEN {spent} THEN $4 ELSE jobs.error END,"
                f" completed_at = CASE WHEN {spent} THEN $1 ELSE jobs.completed_at END,"
                f" expires_at = CASE WHEN {spent} THEN {_expiry('$1')} ELSE jobs.expires_at END,"
                " lease_owner = NULL, lease_until = NULL"
                " FROM stale WHERE jobs.id = stale.id AND jobs.status = 'processing'"
                " RETURNING jobs.id, jobs.status"
                f") SELECT status, {self._notify(_REAP_EVENT)} FROM reaped",
                now,
                max_attempts,
                exhausted.status_code,
                error_json(exhausted),
            )
        failed = sum(1 for r in records if r["status"] == "failed")
        return ReapResult(requeued=len(records) - failed, failed=failed)

    async def delete_expired(self, now: datetime, limit: int) -> int:
        async with self._connection() as conn, conn.transaction():
            # SKIP LOCKED: sweepers on other replicas take other rows instead of the same ones.
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM jobs WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2"
                    " FOR UPDATE SKIP LOCKED",
                    now,
                    limit,
                )
            ]
            if ids:
                await conn.execute("DELETE FROM blob_chunks WHERE job_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", ids)
            return len(ids)


async def _export_blob(conn: Connection, job_id: str, kind: str, index: int, path: Path) -> None:
    """Stream one blob into `path` through a server-side cursor, a chunk per fetch."""
    out: IO[bytes] = await _local(path.open, "wb")
    try:
        async for record in conn.cursor(
            "SELECT data FROM blob_chunks WHERE job_id = $1 AND kind = $2 AND idx = $3 ORDER BY seq",
            job_id,
            kind,
            index,
            prefetch=1,
        ):
            await _local(out.write, record["data"])
    finally:
        await _local(out.close)


class _Listener:
    """One dedicated connection LISTENing on a store's channel, for as long as the store is open.

    When that connection is lost (server restart, network cut, terminated backend) a background
    task reconnects with backoff, logging once per outage. Notifications sent meanwhile are
    lost (PostgreSQL queues them only for sessions listening when they commit), so every
    reconnection is followed by StoreEvent("submitted", ""): subscribers re-check the queue.
    A connection that dies silently (no FIN) is found by a heartbeat query.
    """

    def __init__(self, dsn: str, schema: str | None, channel: str, deliver: EventCallback) -> None:
        self._dsn = dsn
        self._schema = schema
        self._channel = channel
        self._deliver = deliver
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: BaseException | None = None

    @property
    def pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def start(self) -> None:
        """Connect once (so that on return, if the database is up, no commit goes unheard); then
        watch and reconnect in the background."""
        connected = await self._connect()
        if not connected:
            log.warning(
                "cannot listen for store events (%s); retrying, the safety poll covers meanwhile",
                self._last_error,
            )
        self._task = asyncio.create_task(self._guarded_run(deaf=not connected), name="asyncgate-store-events")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._disconnect()

    async def _connect(self) -> bool:
        """Open a connection and LISTEN on it; False (the error kept for the log) if that fails."""
        lost = asyncio.Event()
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=session_settings(self._schema)
            )
        except LISTEN_ERRORS as exc:
            self._last_error = exc
            return False
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, self._on_notification)
        except BaseException as exc:  # cancelled by stop() included: never leak the connection
            conn.terminate()
            if not isinstance(exc, LISTEN_ERRORS):
                raise
            self._last_error = exc
            return False
        self._conn, self._lost = conn, lost
        return True

    async def _disconnect(self, *, graceful: bool = True) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        if not graceful:  # a connection that stopped answering would only make close() wait
            conn.terminate()
            return
        try:
            await conn.close(timeout=CLOSE_TIMEOUT_SECONDS)
        except LISTEN_ERRORS:
            conn.terminate()

    async def _guarded_run(self, deaf: bool) -> None:
        try:
            await self._run(deaf)
        except Exception:  # a bug: say so, the safety poll still covers
            log.exception("stopped listening for store events")

    async def _run(self, deaf: bool) -> None:
        """`deaf`: not listening now, an outage already logged."""
        delay = RECONNECT_MIN_SECONDS
        while True:
            if deaf:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                if not await self._connect():
                    continue
                log.info("listening for store events again")
                deaf = False
                delay = RECONNECT_MIN_SECONDS
                self._deliver(StoreEvent("submitted", ""))  # work may have arrived while deaf
            await self._until_lost()
            await self._disconnect(graceful=False)
            log.warning(
                "lost the store event connection (%s); reconnecting, the safety poll covers meanwhile",
                self._last_error,
            )
            deaf = True

    async def _until_lost(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                async with asyncio.timeout(LISTEN_HEARTBEAT_SECONDS):
                    await self._lost.wait()
                self._last_error = ConnectionError("the connection was closed")
                return
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    await conn.fetchval("SELECT 1")
            except TimeoutError:
                self._last_error = TimeoutError("no answer to a heartbeat")
                return
            except LISTEN_ERRORS as exc:
                self._last_error = exc
                return

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        event = parse_event(payload) if isinstance(payload, str) else None
        if event is None:
            log.debug("ignoring store event %r", payload)
            return
        self._deliver(event)
