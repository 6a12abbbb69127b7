"""PostgreSQL for tests that run servers as subprocesses: a fresh database each.

    async with fresh_database() as dsn:     # postgresql://postgres@127.0.0.1:5432/t_<hex>
        ...                                 # point database_url at it (or at a proxy to it)

The database lives on the server named by ASYNCGATE_TEST_DATABASE_URL (the same variable
the store tests read); it is created from that server's `postgres` maintenance database
and dropped WITH (FORCE) on exit, so backends a killed server left behind do not keep it.
Where PostgreSQL is unreachable the test is skipped, except in CI (CI=true), where that
is a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from grpc_server.store.pg_connect import quote_ident
from tests.unavailable import unavailable

TEST_DATABASE_URL = os.environ.get("ASYNCGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
MAINTENANCE_DATABASE = "postgres"
CONNECT_TIMEOUT_SECONDS = 5.0


def with_database(dsn: str, database: str) -> str:
    """`dsn` naming another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_address(dsn: str, host: str, port: int) -> str:
    """`dsn` reaching the server through another address (e.g. a proxy), user and options kept."""
    parts = urlsplit(dsn)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def server_address(dsn: str = TEST_DATABASE_URL) -> tuple[str, int]:
    """(host, port) of the PostgreSQL server a DSN names."""
    parts = urlsplit(dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432


async def connect_or_skip(dsn: str = TEST_DATABASE_URL) -> asyncpg.Connection:
    """A connection to `dsn`'s database; skips the test (fails it in CI) when there is none."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        host, port = server_address(dsn)
        unavailable(f"PostgreSQL is not reachable at {host}:{port} ({exc})", f"PostgreSQL at {dsn}")


async def admin_connection() -> asyncpg.Connection:
    """A connection to the maintenance database; skips the test (fails it in CI) when there is none."""
    return await connect_or_skip(with_database(TEST_DATABASE_URL, MAINTENANCE_DATABASE))


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The DSN of a new, empty database (no schema: servers migrate it), dropped on exit."""
    admin = await admin_connection()
    name = f"t_{uuid.uuid4().hex}"
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        try:
            yield with_database(TEST_DATABASE_URL, name)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()
