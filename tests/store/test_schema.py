"""One schema story: the same versions, constraints and indexes in both dialects, the status
CHECK tied to the domain's JobStatus, and databases made before versions were recorded
adopted and brought to the latest version with their jobs intact."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

from grpc_server.domain.jobs import InputFile, Job, JobStatus, RequestType
from grpc_server.store.base import CHUNK_BYTES, StagedFile
from grpc_server.store.codec import JOB_COLUMNS, job_row
from grpc_server.store.migrate import migrate, migrate_sqlite
from grpc_server.store.migrations import BASELINE, DIALECTS, SchemaError, migrations
from grpc_server.store.pg_connect import quote_ident
from grpc_server.store.sqlite import SQLiteStore
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import fresh_schema, postgres_store
from tests.store.legacy_schemas import LEGACY_POSTGRES_SCHEMA, LEGACY_SQLITE_SCHEMA
from tests.store.test_store_contract import LEASE, T0, _job, _result

SQLITE_VERSIONS = [m.version for m in migrations("sqlite")]
POSTGRES_VERSIONS = [m.version for m in migrations("postgres")]


class Raw(Protocol):
    """Plain SQL on a migrated database, `?` placeholders in both dialects."""

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def value(self, sql: str, *args: Any) -> Any: ...


class _SQLiteRaw:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        self.conn.execute(sql, args)

    async def value(self, sql: str, *args: Any) -> Any:
        return self.conn.execute(sql, args).fetchone()[0]


class _PostgresRaw:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @staticmethod
    def _numbered(sql: str) -> str:
        parts = sql.split("?")
        return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(self._numbered(sql), *args)

    async def value(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(self._numbered(sql), *args)


CONSTRAINT_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


@pytest.fixture(params=DIALECTS)
async def raw(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, Raw]]:
    """A freshly migrated database of each dialect, with foreign keys enforced."""
    if request.param == "sqlite":
        conn = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
        try:
            migrate_sqlite(conn)
            yield "sqlite", _SQLiteRaw(conn)
        finally:
            conn.close()
        return
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        pg = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": quote_ident(schema)})
        try:
            yield "postgres", _PostgresRaw(pg)
        finally:
            await pg.close()


def _time(dialect: str, when: datetime) -> Any:
    return when.timestamp() if dialect == "sqlite" else when


async def _insert_job(
    dialect: str,
    db: Raw,
    job: Job,
    status: str | None = None,
    *,
    legacy: bool = False,
    last_column: str | None = None,
) -> None:
    """`legacy`: into a schema of before 0003 (only the columns it had); `last_column`: into a
    schema whose jobs have the columns up to that one."""
    last = "created_at" if legacy else last_column
    count = JOB_COLUMNS.index(last) + 1 if last is not None else len(JOB_COLUMNS)
    values = list(job_row(job, [], _time(dialect, job.created_at)))[:count]
    if status is not None:
        values[JOB_COLUMNS.index("status")] = status
    columns = ", ".join(JOB_COLUMNS[:count])
    await db.execute(f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * count)})", *values)


def test_both_dialects_have_the_same_versions() -> None:
    assert SQLITE_VERSIONS == POSTGRES_VERSIONS
    assert SQLITE_VERSIONS[0] == BASELINE


async def test_the_status_check_allows_exactly_the_domain_statuses(raw: tuple[str, Raw]) -> None:
    dialect, db = raw
    for status in JobStatus:
        await _insert_job(dialect, db, _job(), status.value)
    with pytest.raises(CONSTRAINT_ERRORS):
        await _insert_job(dialect, db, _job(), "archived")  # not a status of the domain
    assert await db.value("SELECT count(*) FROM jobs") == len(JobStatus)


async def test_no_request_type_is_refused(raw: tuple[str, Raw]) -> None:
    dialect, db = raw
    for request_type in RequestType:
        job = _job()
        await db.execute("DELETE FROM jobs")
        await _insert_job(dialect, db, job)
        await db.execute("UPDATE jobs SET request_type = ? WHERE id = ?", request_type.value, job.id)
        assert await db.value("SELECT request_type FROM jobs WHERE id = ?", job.id) == request_type.value


async def test_blob_chunks_belong_to_their_job(raw: tuple[str, Raw]) -> None:
    dialect, db = raw
    job = _job()
    await _insert_job(dialect, db, job)
    insert_chunk = "INSERT INTO blob_chunks (job_id, kind, idx, seq, data) VALUES (?, ?, 0, 0, ?)"
    await db.execute(insert_chunk, job.id, "image", b"x")
    with pytest.raises(CONSTRAINT_ERRORS):
        await db.execute(insert_chunk, "no-such-job", "image", b"x")
    with pytest.raises(CONSTRAINT_ERRORS):
        await db.execute(insert_chunk, job.id, "thumbnail", b"x")
    await db.execute("DELETE FROM jobs WHERE id = ?", job.id)
    assert await db.value("SELECT count(*) FROM blob_chunks") == 0  # ON DELETE CASCADE


async def _index_names(dialect: str, db: Raw) -> set[str]:
    if dialect == "sqlite":
        sql = "SELECT group_concat(name) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:
        sql = (
            "SELECT string_agg(indexname, ',') FROM pg_indexes"
            " WHERE schemaname = current_schema() AND indexname NOT LIKE '%pkey'"
        )
    return set(str(await db.value(sql)).split(","))


async def test_both_dialects_have_the_same_indexes(tmp_path: Path) -> None:
    names: dict[str, set[str]] = {}
    predicates: dict[str, list[str]] = {}
    conn = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    try:
        migrate_sqlite(conn)
        names["sqlite"] = await _index_names("sqlite", _SQLiteRaw(conn))
        predicates["sqlite"] = [
            r[0].split(" WHERE ")[-1]
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"
            )
        ]
    finally:
        conn.close()
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        pg = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": quote_ident(schema)})
        try:
            names["postgres"] = await _index_names("postgres", _PostgresRaw(pg))
            definitions = await pg.fetch(
                "SELECT indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND indexdef LIKE '% WHERE %'"
            )
            predicates["postgres"] = [
                r["indexdef"].split(" WHERE ")[-1].strip("()").replace("::text", "") for r in definitions
            ]
        finally:
            await pg.close()
    assert (
        names["sqlite"]
        == names["postgres"]
        == {
            "jobs_queue",
            "jobs_leases",
            "jobs_expiry",
            "jobs_idempotency",
            "jobs_by_owner",
            "jobs_by_owner_type_status",
            "jobs_owner_queue",
            "jobs_owner_running",
            "webhook_outbox_due",
            "webhook_outbox_by_endpoint",
            "webhook_outbox_finished",
        }
    )
    assert (
        sorted(predicates["sqlite"])
        == sorted(predicates["postgres"])
        == [
            "expires_at IS NOT NULL",
            "idempotency_key IS NOT NULL",
            "state <> 'pending'",
            "state = 'pending'",
            "status = 'pending'",
            "status = 'pending'",
            "status = 'processing'",
            "status = 'processing'",
        ]
    )


# Adoption: databases made before versions were recorded.


@contextlib.contextmanager
def _legacy_sqlite_file(path: Path) -> Iterator[sqlite3.Connection]:
    """A file as the store of 85ac66c left it: its inline schema, WAL mode, no versions."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(LEGACY_SQLITE_SCHEMA)
        yield conn
    finally:
        conn.close()


async def test_an_sqlite_file_of_the_inline_schema_is_adopted_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "asyncgate.sqlite3"
    job = _job()
    image = os.urandom(CHUNK_BYTES + 10)
    info = InputFile("image", 0, "a.png", "image/png", len(image), 8, 8)
    with _legacy_sqlite_file(path) as conn:
        await _insert_job("sqlite", _SQLiteRaw(conn), job, legacy=True)
        conn.execute(
            "UPDATE jobs SET inputs = ? WHERE id = ?", (job_row(job, [StagedFile(info, image)], 0)[6], job.id)
        )
        chunks = [(job.id, "image", 0, 0, image[:CHUNK_BYTES]), (job.id, "image", 0, 1, image[CHUNK_BYTES:])]
        conn.executemany("INSERT INTO blob_chunks VALUES (?, ?, ?, ?, ?)", chunks)
        conn.execute("INSERT INTO blob_chunks VALUES ('gone', 'output', 0, 0, x'00')")  # an orphan

    store = SQLiteStore(path)
    await store.open()
    try:
        adopted = await store.get_job(job.id)
        assert adopted is not None and adopted.params == job.params and adopted.status == JobStatus.PENDING
        (tmp_path / "out").mkdir()
        [exported] = await store.export_inputs(job.id, tmp_path / "out")
        assert exported.path.read_bytes() == image
        [claimed] = await store.claim_jobs("w", 1, T0, T0 + LEASE)  # and it runs as any job
        assert await store.complete_job(claimed.id, "w", _result(job, 0), [], T0)
    finally:
        await store.close()

    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == SQLITE_VERSIONS
        assert conn.execute("SELECT count(*) FROM blob_chunks WHERE job_id = 'gone'").fetchone() == (0,)
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE jobs SET status = 'archived'")  # not a status of the domain
        assert migrate_sqlite(conn) == []  # adopted once, for good


async def test_an_unversioned_jobs_table_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "other.sqlite3", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, cron TEXT)")
        with pytest.raises(SchemaError, match="jobs table that asyncgate did not make"):
            migrate_sqlite(conn)
        assert conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'"
        ).fetchone() == (0,)  # rolled back whole


async def test_stores_opening_one_legacy_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "asyncgate.sqlite3"
    with _legacy_sqlite_file(path):
        pass
    stores = [SQLiteStore(path) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == SQLITE_VERSIONS


async def _legacy_postgres_schema(schema: str, *, recorded: bool) -> Job:
    """A schema as 85ac66c's runner made it (recorded) or as 0001 applied by hand; one job in it."""
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        await conn.execute(f"SET search_path TO {quote_ident(schema)}")
        await conn.execute(LEGACY_POSTGRES_SCHEMA)
        if recorded:
            await conn.execute(
                "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now());"
                " INSERT INTO schema_migrations (version) VALUES ('0001_initial')"
            )
        job = _job()
        await _insert_job("postgres", _PostgresRaw(conn), job, legacy=True)
        await conn.execute(
            "INSERT INTO blob_chunks (job_id, kind, idx, seq, data) VALUES ($1, 'image', 0, 0, 'png')", job.id
        )
        return job
    finally:
        await conn.close()


@pytest.mark.parametrize("recorded", [True, False], ids=["migrated-then", "by-hand"])
async def test_a_postgres_schema_of_before_is_adopted_and_migrated(recorded: bool) -> None:
    async with fresh_schema() as schema:
        job = await _legacy_postgres_schema(schema, recorded=recorded)
        assert await migrate(TEST_DATABASE_URL, schema=schema) == POSTGRES_VERSIONS[1:]
        assert await migrate(TEST_DATABASE_URL, schema=schema) == []
        async with postgres_store(schema) as store:
            kept = await store.get_job(job.id)
            assert kept is not None and kept.params == job.params
        conn = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": quote_ident(schema)})
        try:
            versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in versions] == POSTGRES_VERSIONS
            await conn.execute("DELETE FROM jobs WHERE id = $1", job.id)  # 0001 alone refused this
            assert await conn.fetchval("SELECT count(*) FROM blob_chunks") == 0
        finally:
            await conn.close()


async def test_the_migrate_command_migrates_an_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "asyncgate.sqlite3"
    with _legacy_sqlite_file(path):
        pass
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grpc_server.store.migrate",
        "--sqlite",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert out.decode().splitlines() == [f"applied {v} ({path})" for v in SQLITE_VERSIONS[1:]]


def test_a_legacy_row_time_is_stored_as_epoch_seconds() -> None:
    """The REAL times of the inline schema are what 0002 copies: seconds since the epoch, UTC."""
    assert _time("sqlite", datetime(1970, 1, 1, 0, 1, tzinfo=UTC)) == 60.0
