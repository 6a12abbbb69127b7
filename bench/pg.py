"""PostgreSQL for the bench: a fresh database per measurement, dropped afterwards.

The server is the one ASYNCGATE_BENCH_DATABASE_URL names (its maintenance database,
default postgresql://postgres@127.0.0.1:5432/postgres): each database is created from
there as bench_<hex> and dropped WITH (FORCE), so backends a killed server left behind
cannot keep it alive.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.procfs import postgres_backends
from grpc_server.store.pg_connect import quote_ident

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL = os.environ.get("ASYNCGATE_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)
CONNECT_TIMEOUT = 5.0


def with_database(dsn: str, database: str) -> str:
    """`dsn` naming another database on the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


BACKENDS = "postgres-backends"
"""The name the CPU time of a database's backends is reported under."""


def backends(dsn: str) -> Callable[[], list[int]]:
    """Finds the backends of the database `dsn` names (see Side.groups)."""
    return partial(postgres_backends, urlsplit(dsn).path.lstrip("/"))


async def unreachable(admin_url: str = ADMIN_URL) -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        connection = await asyncpg.connect(admin_url, timeout=CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"PostgreSQL at {urlsplit(admin_url).netloc} is not reachable: {exc}"
    await connection.close()
    return None


@asynccontextmanager
async def fresh_database(admin_url: str = ADMIN_URL) -> AsyncIterator[str]:
    """The DSN of a new, empty database (servers migrate it at start), dropped on exit."""
    admin = await asyncpg.connect(admin_url, timeout=CONNECT_TIMEOUT)
    name = f"bench_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        try:
            yield with_database(admin_url, name)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()
