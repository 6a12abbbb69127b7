"""Answers to polls of ended jobs, reused: a poll of an ended job need not read the store again.

An ended job (completed, failed, cancelled) changes only by being retried (pending again),
deleted, or expiring. So once a poll has read an ended job, its answer is kept here with what
every later poll must still check itself: who owns the job (the caller's right to it is checked
on every poll, from the caller's own headers), its operation, and when it expires (checked
against the clock on every poll).

When an entry may answer without any store read depends on the store's events:

- SQLite: one server per file, and every write of this server publishes its event on the
  event loop after it commits, before the write's caller is answered. An entry is dropped at
  any event of its job (a retry's "requeued", "deleted", ...), so a deleted job is 404 and a
  retried one pending as soon as the delete or retry has answered. Entries answer at once.
- PostgreSQL (any store whose events may come late or be lost: other replicas write too, and
  NOTIFY reaches this one a moment after their commit, or never across a reconnect): entries
  never answer without a read. Every poll reads the job; the kept answer is reused only when
  the job read has the same change number (its state then is the one the answer renders), which
  saves the conversion but not the read. A delete or retry on another replica is seen at once.

A read can race an event: a poll reads an ended job, the job is deleted and its event heard,
then the read's result comes back. Such an answer is not kept: an entry is put only when no
event came while the job was read (a new job's "submitted" aside: it cannot concern an ended
job). An event of any job counts, so that no kind of event can be missed: at worst a put is
skipped and the next poll puts it.

Bounded in entries, least recently used out first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from grpc_server.domain.jobs import Job, RequestType
from grpc_server.store.base import StoreEvent

A = TypeVar("A")

MAX_ENTRIES = 4096
"""Measured about 1.4 KB of memory each for an embedding job's GetJob answer (a few KB for a job
with many images): some MB in all."""


@dataclass(frozen=True)
class Ended(Generic[A]):
    """What a poll of an ended job checks for itself, and the answer it then gives."""

    owner_key_id: str | None
    request_type: RequestType
    expires_at: datetime | None
    change_seq: int
    answer: A

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class EndedJobs(Generic[A]):
    def __init__(self, trusted: bool, max_entries: int = MAX_ENTRIES) -> None:
        self.trusted = trusted
        """Entries answer without a read (JobStore.hears_every_write); else only after one."""
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Ended[A]] = OrderedDict()
        self._events = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, job_id: str) -> Ended[A] | None:
        """The entry that may answer a poll of `job_id` without reading the store; None when
        there is none, or entries may not (not trusted)."""
        if not self.trusted:
            return None
        entry = self._entries.get(job_id)
        if entry is not None:
            self._entries.move_to_end(job_id)
        return entry

    def reading(self) -> int:
        """Call before reading a job to put its answer: the mark put() checks."""
        return self._events

    def kept(self, job: Job) -> A | None:
        """The answer kept for this very state of `job`, just read from the store."""
        entry = self._entries.get(job.id)
        if entry is None or entry.change_seq != job.change_seq:
            return None
        self._entries.move_to_end(job.id)
        return entry.answer

    def put(self, job: Job, answer: A, mark: int) -> None:
        """Keep the answer of an ended job read after reading() returned `mark`; not when an
        event came meanwhile (it may say that the job read is already gone or retried)."""
        if not job.is_terminal or mark != self._events:
            return
        self._entries[job.id] = Ended(
            job.owner_key_id, job.request_type, job.expires_at, job.change_seq, answer
        )
        self._entries.move_to_end(job.id)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def on_event(self, event: StoreEvent) -> None:
        """A store event: the job's entry goes (every entry, for "anything may have changed")."""
        if not event.job_id:
            self._events += 1
            self._entries.clear()
            return
        if event.kind != "submitted":  # a new job's event cannot concern a read begun before
            self._events += 1
        self._entries.pop(event.job_id, None)
