"""SQLite connections in WAL mode, and the checkpoints the store takes off the commit path.

With SQLite's automatic checkpoint the commit that crosses the threshold copies the WAL into
the database and fsyncs it, holding every submit queued behind it for tens of milliseconds
(measured: the writer thread was blocked there while the machine sat 40% idle). The store's
commits checkpoint only as a backstop (WAL_BACKSTOP_FACTOR); its checkpointer thread copies
committed pages with PASSIVE checkpoints, which run beside the writer, and once the WAL is
large and copied, the writer copies the few pages written since, so that its next
transaction starts the WAL over. Durability is unchanged: the same pages are synced before
the WAL is reused, by whichever thread copied them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

WAL_RESTART_BYTES = 256 * 1024 * 1024
"""WAL size past which the writer restarts it (once the checkpointer has caught up), and to
which the file is cut back after a burst. Each restart holds the writer for tens of
milliseconds (it copies what the last background round missed, then waits for two fsyncs), so
it is done rarely: under sustained submits 256 MB gave 10% more throughput than 64 MB."""
WAL_BACKSTOP_FACTOR = 2
"""Should the checkpointer fall behind (starved of CPU, say), a commit that takes the WAL past
this many times WAL_RESTART_BYTES checkpoints it itself, as SQLite would by default: the WAL
stays bounded whatever the checkpointer's scheduling."""


def connect(path: Path, synchronous: str, wal_restart_bytes: int = WAL_RESTART_BYTES) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: durable across process crashes; FULL adds an fsync per commit.
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    # The checkpointer's job (see the module docstring); commits checkpoint only as a backstop.
    (page_bytes,) = conn.execute("PRAGMA page_size").fetchone()
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_FACTOR * wal_restart_bytes // page_bytes}")
    conn.execute(f"PRAGMA journal_size_limit={wal_restart_bytes}")
    return conn


@dataclass(frozen=True)
class Checkpoint:
    """What `PRAGMA wal_checkpoint` reports."""

    busy: bool
    wal_pages: int
    copied_pages: int

    @classmethod
    def run(cls, conn: sqlite3.Connection, mode: str) -> Checkpoint:
        busy, wal_pages, copied_pages = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return cls(bool(busy), wal_pages, copied_pages)

    @property
    def caught_up(self) -> bool:
        return not self.busy and self.copied_pages == self.wal_pages


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
