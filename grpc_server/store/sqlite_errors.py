"""What the SQLite store's failures mean to its callers, told to its health watchers at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from grpc_server.store.base import HealthReports, StoreFull, StoreUnavailable
from grpc_server.store.disk import is_no_space

SQLITE_FULL = 13
"""The primary result code of "database or disk is full"."""


def store_error(exc: sqlite3.OperationalError) -> StoreUnavailable:
    """A full disk, or a store that cannot serve now (busy, unreadable, read-only)."""
    if exc.sqlite_errorcode & 0xFF == SQLITE_FULL:
        return StoreFull()
    return StoreUnavailable(f"the SQLite store cannot serve this now: {exc}")


@contextmanager
def reported(health: HealthReports) -> Iterator[None]:
    """Map SQLite's and the disk's failures to the store's (StoreFull, StoreUnavailable) and tell
    `health` of each failure, and of a success after one."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        error = store_error(exc)
        health.failed(error)
        raise error from exc
    except OSError as exc:
        if not is_no_space(exc):
            raise  # a staged file that is gone, say: the caller's, not the store's
        full = StoreFull()
        health.failed(full)
        raise full from exc
    except StoreUnavailable as exc:
        health.failed(exc)
        raise
    health.succeeded()
