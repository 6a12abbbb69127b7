"""job_labels, the rows the label filter reads (migration 0006), on both dialects: filled from
the jobs already there when the migration runs, written at each insert of a labelled job (and
at none of an unlabelled one), removed with the job."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from grpc_server.store.migrate import migrate, migrate_sqlite
from grpc_server.store.migrations import VERSION_TABLE, migrations
from grpc_server.store.pg_connect import quote_ident
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import fresh_schema
from tests.store.test_schema import Raw, _insert_job, _PostgresRaw, _SQLiteRaw
from tests.store.test_store_contract import _job

BEFORE = "0005_fair_share"
LAST_COLUMN_AT_0005 = "webhook"
"""The last of the columns a new job's row sets that the jobs table had at 0005."""
LABELS = "SELECT job_id, key, value, owner_key_id FROM job_labels ORDER BY job_id, key"


@asynccontextmanager
async def _at_0005(dialect: str, tmp_path: Path) -> AsyncIterator[tuple[Raw, asyncpg.Connection | None]]:
    """A database migrated up to 0005 (versions recorded), and its PostgreSQL connection."""
    steps = [m for m in migrations("sqlite" if dialect == "sqlite" else "postgres") if m.version <= BEFORE]
    if dialect == "sqlite":
        conn = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
        try:
            conn.execute(f"CREATE TABLE {VERSION_TABLE} (version TEXT PRIMARY KEY, applied_at REAL)")
            for m in steps:
                conn.executescript(m.sql)
                conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (m.version,))
            yield _SQLiteRaw(conn), None
        finally:
            conn.close()
        return
    async with fresh_schema() as schema:
        admin = await asyncpg.connect(TEST_DATABASE_URL)
        await admin.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        await admin.close()
        pg = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": quote_ident(schema)})
        try:
            await pg.execute(
                f"CREATE TABLE {VERSION_TABLE} (version text PRIMARY KEY, applied_at timestamptz)"
            )
            for m in steps:
                await pg.execute(m.sql)
                await pg.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)", m.version)
            await pg.execute(f"SET search_path TO {quote_ident(schema)}")
            yield _PostgresRaw(pg), pg
        finally:
            await pg.close()


async def _rows(dialect: str, db: Raw, pg: asyncpg.Connection | None) -> list[tuple[str | None, ...]]:
    if pg is not None:
        return [tuple(r) for r in await pg.fetch(LABELS)]
    assert isinstance(db, _SQLiteRaw)
    return [tuple(r) for r in db.conn.execute(LABELS)]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_label_rows_follow_the_jobs_from_before_the_migration_on(dialect: str, tmp_path: Path) -> None:
    async with _at_0005(dialect, tmp_path) as (db, pg):
        old = replace(_job(), labels={"team": "a", "env": "prod"})
        await _insert_job(dialect, db, old, last_column=LAST_COLUMN_AT_0005)
        await _insert_job(dialect, db, replace(_job(), owner_key_id="vk-b"), last_column=LAST_COLUMN_AT_0005)
        later = [
            m.version
            for m in migrations("sqlite" if dialect == "sqlite" else "postgres")
            if m.version > BEFORE
        ]
        assert later[0] == "0006_list_indexes"
        if pg is None:
            assert isinstance(db, _SQLiteRaw)
            assert migrate_sqlite(db.conn) == later
        else:
            schema = await pg.fetchval("SELECT current_schema()")
            assert await migrate(TEST_DATABASE_URL, schema=schema) == later
        assert await _rows(dialect, db, pg) == sorted(
            [(old.id, "env", "prod", "vk-a"), (old.id, "team", "a", "vk-a")]
        )

        new = replace(_job(), owner_key_id=None, labels={"k.1": "v=1"})  # keyless: the owner ''
        await _insert_job(dialect, db, new)
        assert (new.id, "k.1", "v=1", "") in await _rows(dialect, db, pg)
        await db.execute("DELETE FROM jobs WHERE id = ?", old.id)
        assert await _rows(dialect, db, pg) == [(new.id, "k.1", "v=1", "")]
        await db.execute("DELETE FROM jobs")
        assert await _rows(dialect, db, pg) == []
