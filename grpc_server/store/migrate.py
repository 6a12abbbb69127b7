"""The migration runner of both stores (the versions and the plan: store/migrations).

PostgreSQL: all pending migrations run in ONE transaction that first takes
`pg_advisory_xact_lock(MIGRATION_LOCK)`. Several replicas starting at once therefore
queue on that lock: the first applies everything and commits, the others then see the
versions recorded and apply nothing. A failing migration rolls back with all the others
of the run, so the schema is never left half-migrated. The lock is released by the
commit or rollback, even if the process dies.

SQLite: the same, in one BEGIN IMMEDIATE transaction (SQLite's single writer lock plays the
advisory lock's part), with foreign keys off while tables are rebuilt and every foreign key
checked before the commit. The store runs it when it opens.

    python -m grpc_server.store.migrate --dsn postgresql://user@host/db [--schema S]
    python -m grpc_server.store.migrate --config asyncgate.toml
    python -m grpc_server.store.migrate --sqlite data/asyncgate.sqlite3
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import asyncpg

from grpc_server.config import load_config
from grpc_server.store.base import StoreUnavailable
from grpc_server.store.migrations import VERSION_TABLE, Plan, SchemaError, plan
from grpc_server.store.pg_connect import CONNECT_TIMEOUT_SECONDS, quote_ident, session_settings, unavailable

MIGRATION_LOCK = 0x6173_796E_6367_7465
"""Advisory lock key ("asyncgte") held while migrating; one constant for every replica."""


async def migrate(dsn: str, *, schema: str | None = None) -> list[str]:
    """Bring a PostgreSQL database (and `schema`, created if given and missing) to the latest
    version; the versions applied. Raises StoreUnavailable when the database cannot be reached."""
    with unavailable():
        conn = await asyncpg.connect(
            dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=session_settings(schema)
        )
        try:
            return await _apply_postgres(conn, schema)
        finally:
            await conn.close()


async def _apply_postgres(conn: asyncpg.Connection, schema: str | None) -> list[str]:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        if schema is not None:
            # Under the lock: concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            # The session's search_path named a schema that may not have existed until now.
            await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        recorded = {r["version"] for r in await conn.fetch(f"SELECT version FROM {VERSION_TABLE}")}
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'jobs'"
            )
        }
        steps = plan("postgres", recorded, columns or None)
        for version in steps.adopted:
            await conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)", version)
        for migration in steps.to_apply:
            await conn.execute(migration.sql)  # no arguments: simple protocol, several statements
            await conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)", migration.version)
        return [m.version for m in steps.to_apply]


def migrate_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Bring an SQLite database (a connection in autocommit mode) to the latest version; the
    versions applied. sqlite3.OperationalError when the file cannot be written."""
    conn.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set before BEGIN
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = _apply_sqlite(conn)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise SchemaError(f"migrating would leave {len(broken)} rows without their job")
            conn.execute("COMMIT")
            return applied
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


def _apply_sqlite(conn: sqlite3.Connection) -> list[str]:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
        " version TEXT PRIMARY KEY,"
        " applied_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0))"  # epoch seconds
    )
    recorded = {r[0] for r in conn.execute(f"SELECT version FROM {VERSION_TABLE}")}
    columns = {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    steps: Plan = plan("sqlite", recorded, columns or None)
    for version in steps.adopted:
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (version,))
    for migration in steps.to_apply:
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (migration.version,))
    return [m.version for m in steps.to_apply]


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script one by one: executescript would COMMIT the migration's
    transaction first. sqlite3.complete_statement knows where one ends (strings, comments)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if any(line.strip() and not line.lstrip().startswith("--") for line in pending.splitlines()):
        raise SchemaError(f"an SQL statement does not end: {pending.strip()[:80]!r}")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m grpc_server.store.migrate",
        description="Apply pending asyncgate schema migrations to a PostgreSQL database or an SQLite file.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dsn", help="postgresql://user@host:port/database")
    source.add_argument(
        "--config", type=Path, help="server TOML file: its database_url, else its SQLite file in data_dir"
    )
    source.add_argument("--sqlite", type=Path, help="an SQLite database file (created if missing)")
    parser.add_argument("--schema", help="PostgreSQL: apply into this schema (created if missing)")
    return parser.parse_args(argv)


def _run_sqlite(path: Path) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        return migrate_sqlite(conn)
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    dsn: str | None = args.dsn
    sqlite_path: Path | None = args.sqlite
    if args.config is not None:
        config = load_config(args.config)
        dsn, sqlite_path = config.database_url, None if config.database_url else config.database_path
    try:
        if sqlite_path is not None:
            applied, where = _run_sqlite(sqlite_path), f" ({sqlite_path})"
        else:
            assert dsn is not None
            applied = asyncio.run(migrate(dsn, schema=args.schema))
            where = f" (schema {args.schema})" if args.schema else ""
    except StoreUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    except (SchemaError, sqlite3.Error) as exc:
        print(f"cannot migrate: {exc}", file=sys.stderr)
        return 1
    if applied:
        for version in applied:
            print(f"applied {version}{where}")
    else:
        print(f"up to date{where}: nothing to apply")
    return 0


if __name__ == "__main__":
    sys.exit(main())
