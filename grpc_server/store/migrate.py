"""Versioned PostgreSQL schema migrations.

Migrations are the `NNNN_name.sql` files of grpc_server/store/migrations (shipped as
package data), applied in order; each one's version (the file name without `.sql`)
is recorded in `schema_migrations (version text primary key, applied_at timestamptz)`.

All pending migrations run in ONE transaction that first takes
`pg_advisory_xact_lock(MIGRATION_LOCK)`. Several replicas starting at once therefore
queue on that lock: the first applies everything and commits, the others then see the
versions recorded and apply nothing. A failing migration rolls back with all the others
of the run, so the schema is never left half-migrated. The lock is released by the
commit or rollback, even if the process dies.

    python -m grpc_server.store.migrate --dsn postgresql://user@host/db [--schema S]
    python -m grpc_server.store.migrate --config asyncgate.toml
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from grpc_server.config import load_config
from grpc_server.store.base import StoreUnavailable
from grpc_server.store.postgres import CONNECT_TIMEOUT_SECONDS, quote_ident, session_settings, unavailable

MIGRATION_LOCK = 0x6173_796E_6367_7465
"""Advisory lock key ("asyncgte") held while migrating; one constant for every replica."""

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged migrations, in the order they apply."""
    found: list[Migration] = []
    for entry in resources.files("grpc_server.store.migrations").iterdir():
        if entry.name.endswith(".sql"):
            if not _NAME.match(entry.name):
                raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
            found.append(Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    numbers = [m.version[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two migrations share a number: {numbers}")
    return found


async def migrate(dsn: str, *, schema: str | None = None) -> list[str]:
    """Apply the pending migrations (creating `schema` if given and missing); the versions applied.

    Raises StoreUnavailable when the database cannot be reached.
    """
    with unavailable():
        conn = await asyncpg.connect(
            dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=session_settings(schema)
        )
        try:
            return await _apply(conn, schema)
        finally:
            await conn.close()


async def _apply(conn: asyncpg.Connection, schema: str | None) -> list[str]:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        if schema is not None:
            # Under the lock: concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            # The session's search_path named a schema that may not have existed until now.
            await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)  # no arguments: simple protocol, several statements
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)
            applied.append(migration.version)
        return applied


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m grpc_server.store.migrate",
        description="Apply pending asyncgate schema migrations to a PostgreSQL database.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dsn", help="postgresql://user@host:port/database")
    source.add_argument("--config", type=Path, help="server TOML file whose database_url to use")
    parser.add_argument("--schema", help="apply into this schema (created if missing)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    dsn: str | None = args.dsn
    if dsn is None:
        dsn = load_config(args.config).database_url
        if dsn is None:
            print(f"{args.config}: no database_url configured", file=sys.stderr)
            return 2
    try:
        applied = asyncio.run(migrate(dsn, schema=args.schema))
    except StoreUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    where = f" (schema {args.schema})" if args.schema else ""
    if applied:
        for version in applied:
            print(f"applied {version}{where}")
    else:
        print(f"up to date{where}: nothing to apply")
    return 0


if __name__ == "__main__":
    sys.exit(main())
