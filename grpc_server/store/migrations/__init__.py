"""The versioned schema of both stores: `<dialect>/NNNN_name.sql`, applied in order.

Each dialect has the same versions (a test holds them together), so that both stores
always have the same tables, constraints and indexes. A database records the versions it
has in `schema_migrations (version, applied_at)`. Databases made before versions were
recorded (SQLite files of the inline schema; a PostgreSQL schema made from 0001 by hand)
have a jobs table and no recorded version: they are at BASELINE, which is recorded as
adopted, and the versions after it are applied.

This module only reads and plans; grpc_server.store.migrate runs the plan on a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Dialect = Literal["postgres", "sqlite"]
DIALECTS: tuple[Dialect, ...] = ("postgres", "sqlite")

VERSION_TABLE = "schema_migrations"
BASELINE = "0001_initial"
"""The schema every store had before versions were recorded."""
BASELINE_JOB_COLUMNS = frozenset(
    {
        "id",
        "request_type",
        "status",
        "model",
        "owner_key_id",
        "params",
        "inputs",
        "ttl_seconds",
        "created_at",
        "completed_at",
        "expires_at",
        "status_code",
        "result",
        "error",
        "attempts",
        "lease_owner",
        "lease_until",
    }
)
"""The columns of BASELINE's jobs table: an unversioned jobs table with others is not ours."""

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaError(Exception):
    """The database holds a schema this code cannot adopt or migrate."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


@dataclass(frozen=True)
class Plan:
    adopted: tuple[str, ...]
    """Versions already present though not recorded (BASELINE, for an unversioned database)."""
    to_apply: tuple[Migration, ...]


def migrations(dialect: Dialect) -> list[Migration]:
    """The packaged migrations of one dialect, in the order they apply."""
    found: list[Migration] = []
    for entry in (resources.files(__name__) / dialect).iterdir():
        if entry.name.endswith(".sql"):
            if not _NAME.match(entry.name):
                raise ValueError(f"migration file {dialect}/{entry.name!r} is not named NNNN_name.sql")
            found.append(Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    numbers = [m.version[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two {dialect} migrations share a number: {numbers}")
    return found


def plan(dialect: Dialect, recorded: set[str], job_columns: set[str] | None) -> Plan:
    """What to do to a database that recorded `recorded` and whose jobs table has `job_columns`
    (None: no jobs table)."""
    adopted: tuple[str, ...] = ()
    if not recorded and job_columns is not None:
        if job_columns != BASELINE_JOB_COLUMNS:
            raise SchemaError(
                "the database has a jobs table that asyncgate did not make (no recorded schema version,"
                f" columns {sorted(job_columns)}): use another database or schema"
            )
        adopted = (BASELINE,)
    done = recorded | set(adopted)
    return Plan(adopted, tuple(m for m in migrations(dialect) if m.version not in done))
