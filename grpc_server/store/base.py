"""The store protocol: everything the server and dispatcher need to persist.

Every write that moves a job between states is a compare-and-set guarded by the
job's current status (and, for a running job, by the lease holder), so a
worker that lost its lease can never overwrite an outcome.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from grpc_server.domain.jobs import InputFile, Job, JobError, JobResult, OutputBlob
from grpc_server.store.stats import StoreStats

if TYPE_CHECKING:
    from grpc_server.jobs_list import ListQuery
    from grpc_server.store.admission import KeyPolicy
    from grpc_server.store.outbox import AttemptOutcome, ClaimedDelivery, DeliveryRecord
    from grpc_server.webhooks.outbox import WebhookPlan

CHUNK_BYTES = 1024 * 1024
"""Blobs are stored and streamed in chunks of this size, never held whole."""

log = logging.getLogger("asyncgate.store")


@dataclass(frozen=True)
class StagedFile:
    """An input file, validated, waiting to be stored with its job: on local disk
    (large uploads, and inputs exported for a provider) or in memory (small ones)."""

    info: InputFile
    source: Path | bytes

    @property
    def path(self) -> Path:
        """The file on disk; only for files exported from the store."""
        assert isinstance(self.source, Path), "an in-memory input has no path"
        return self.source


@dataclass(frozen=True)
class ReapResult:
    requeued: int
    failed: int


class StoreUnavailable(Exception):
    """The store cannot be reached right now; the caller may retry."""


class StoreFull(StoreUnavailable):
    """A write failed because there is no disk space left (the data directory's, or the
    database server's); the caller may retry once space is freed. The message says so
    without the paths or the system's own error text."""

    def __init__(
        self, message: str = "the store is full: no disk space left to write on this server"
    ) -> None:
        super().__init__(message)


class DuplicateRequestId(Exception):
    """create_job found the job's request id (idempotency key) taken, for the same owner, by
    another job: the caller reads that job (job_by_request_id) instead."""


HealthCallback = Callable[[StoreUnavailable | None], None]
"""Told at once when a store operation fails (the error) and when one succeeds again (None)."""


class HealthReports:
    """The health callbacks given to watch_health(). Every failure is reported (each may be news
    to a listener that has since seen a good ping); a success only when it ends a failure."""

    def __init__(self) -> None:
        self._callbacks: list[HealthCallback] = []
        self._failing = False

    def watch(self, on_change: HealthCallback) -> None:
        self._callbacks.append(on_change)

    def clear(self) -> None:
        self._callbacks.clear()

    def failed(self, error: StoreUnavailable) -> None:
        self._failing = True
        self._tell(error)

    def succeeded(self) -> None:
        if self._failing:
            self._failing = False
            self._tell(None)

    def _tell(self, problem: StoreUnavailable | None) -> None:
        for on_change in list(self._callbacks):
            try:
                on_change(problem)
            except Exception:
                log.exception("a store health watcher failed")


EventKind = Literal["submitted", "claimed", "completed", "failed", "requeued", "cancelled", "deleted"]
EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))


@dataclass(frozen=True)
class StoreEvent:
    """Something happened to a job, on this replica or another: "submitted" (new and pending),
    "claimed" (now processing), "requeued" (pending again: handed back, or retried), "completed",
    "failed" or "cancelled" (terminal), "deleted" (gone). An empty job_id means
    "anything may have changed" (sent after events may have been lost): re-check the queue."""

    kind: EventKind
    job_id: str


EventCallback = Callable[[StoreEvent], None]


class Subscribers:
    """The callbacks given to subscribe(). Each runs on the event loop, must not block, and
    cannot break the write (or the other callbacks) that published the event: errors are logged."""

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []

    def add(self, on_event: EventCallback) -> None:
        self._callbacks.append(on_event)

    def clear(self) -> None:
        self._callbacks.clear()

    def publish(self, event: StoreEvent) -> None:
        for on_event in list(self._callbacks):
            try:
                on_event(event)
            except Exception:
                log.exception("a store event subscriber failed on %s", event)


class JobStore(Protocol):
    hears_every_write: bool
    """True when every write to this store's data is this process's own and publishes its event
    before its caller is answered (SQLite: one server per file); False where other replicas
    write too and their events may come late or be lost (PostgreSQL)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, on_event: EventCallback) -> None:
        """Deliver events from every replica sharing this store until close(): a job submitted
        (StoreEvent(kind="submitted", job_id)), a job that reached a terminal state or went back
        to the queue (kind="completed" | "failed" | "requeued"). Best effort: a lost event only
        delays work until the safety poll. Embedded stores deliver nothing across processes.

        Events are published only for writes that committed, after the commit. on_event runs on
        the event loop and must not block. StoreEvent("submitted", "") means events may have been
        missed (the listener reconnected): re-check the queue."""
        ...

    def watch_health(self, on_change: HealthCallback) -> None:
        """Call on_change(error) as soon as an operation fails with StoreUnavailable (StoreFull when
        the disk is full), and on_change(None) when one succeeds after that, until close(). On the
        event loop; must not block. A success may be a read while writes still fail: ping() decides."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve requests, StoreFull when it cannot
        write for lack of disk space: ping checks that writing is possible, not only reading."""
        ...

    def use_key_policy(self, policy: KeyPolicy) -> None:
        """The virtual keys' limits (create_job) and priorities (claim_jobs) from now on; until
        called: no limits, fair share with every key at priority 0."""
        ...

    async def create_job(self, job: Job, files: Sequence[StagedFile]) -> None:
        """Persist a new pending job and all its input files in one transaction. Raises
        DuplicateRequestId when another job of the same owner holds its idempotency_key, and
        RateLimited / TooManyJobsInFlight (nothing written) when the owner is at a limit of the
        key policy, counted in that transaction with the owner's submits serialized
        (store.admission)."""
        ...

    async def stats(self, now: datetime) -> StoreStats:
        """Queue depth and ages at `now` (grpc_server.store.stats), for the metrics endpoint."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def claim_jobs(self, worker: str, limit: int, now: datetime, lease_until: datetime) -> list[Job]:
        """Move up to `limit` pending jobs to processing under a lease: with the key policy's
        fair_share, keys take turns (store.fair_share); else oldest first. Oldest first within
        a key either way."""
        ...

    async def renew_lease(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        """Extend a lease; False when the worker no longer holds it."""
        ...

    async def renew_leases(self, worker: str, job_ids: Collection[str], lease_until: datetime) -> set[str]:
        """Extend the leases of `job_ids` in one statement, each only while `worker` holds it and
        the job is running; the ids renewed (a missing id: that lease is lost). Empty: no statement."""
        ...

    async def release_job(self, job_id: str, worker: str) -> bool:
        """Give a running job back to the queue (graceful shutdown): requeue_job, attempt refunded."""
        ...

    async def requeue_job(self, job_id: str, worker: str, *, refund_attempt: bool = True) -> bool:
        """processing -> pending with the lease cleared, only while `worker` holds the lease; with
        refund_attempt the claim's attempt is given back (a local fault, not the job's). Publishes
        "requeued". False when the worker no longer holds the lease."""
        ...

    async def complete_job(
        self, job_id: str, worker: str, result: JobResult, outputs: Sequence[OutputBlob], now: datetime
    ) -> bool:
        """processing -> completed, with the output images; False if the lease was lost."""
        ...

    async def fail_job(self, job_id: str, worker: str | None, error: JobError, now: datetime) -> bool:
        """-> failed. With a worker: only while it holds the lease; without: only if pending."""
        ...

    async def export_inputs(self, job_id: str, dest: Path) -> list[StagedFile]:
        """Write a job's input files into `dest`, chunk by chunk."""
        ...

    def read_output(self, job_id: str, index: int) -> AsyncIterator[bytes]:
        """The bytes of one output image, in chunks."""
        ...

    async def output_url(self, job: Job, index: int, expires_in: timedelta) -> str | None:
        """A URL that serves output `index` of completed `job` directly from the blob store for
        `expires_in` (pre-signed), or None when its blob store gives none."""
        ...

    async def reap_expired_leases(self, now: datetime, max_attempts: int, exhausted: JobError) -> ReapResult:
        """Return jobs whose lease expired to the queue; fail those out of attempts."""
        ...

    async def delete_expired(self, now: datetime, limit: int) -> int:
        """Delete up to `limit` expired jobs and their blobs; the number deleted."""
        ...

    async def collect_orphan_blobs(self, now: datetime) -> int:
        """Delete the blobs of the blob store beside this store that no row references and that
        are older than a grace period (store.blobs_beside); how many. 0 without a blob store."""
        ...

    # The job API (cancel, retry, delete, list position, request ids).

    async def cancel_job(self, job_id: str, error: JobError, now: datetime) -> Job | None:
        """pending | processing -> cancelled with `error` (status 499), the lease cleared so that
        no worker's outcome can be written after it; publishes "cancelled" (the worker running it,
        on any replica, aborts its call). The job as it now is; None when it had already ended
        (or is gone): compare-and-set, so a cancel racing an outcome leaves exactly one."""
        ...

    async def retry_job(self, job_id: str) -> Job | None:
        """failed | cancelled -> pending, its outcome dropped and its inputs kept; publishes
        "requeued". The job as it now is; None when it was not failed or cancelled."""
        ...

    async def delete_job(self, job_id: str) -> bool:
        """Delete the job, its inputs and outputs at once; publishes "deleted"."""
        ...

    async def queue_position(self, job: Job) -> int:
        """How many pending jobs the claims would take before this pending one, in the claim's
        order: the fair order under the key policy's fair_share (store.fair_share), else oldest
        first."""
        ...

    async def job_by_request_id(self, owner_key_id: str | None, key: str) -> Job | None:
        """The job whose request id (idempotency key) is `key` for this owner (None: keyless)."""
        ...

    async def list_jobs(self, query: ListQuery) -> list[Job]:
        """Up to query.page_size + 1 jobs matching the query, newest first (created_at, id)."""
        ...

    async def forget_stale_request_id(self, owner_key_id: str | None, key: str, now: datetime) -> bool:
        """Free `key` if the job holding it was made IDEMPOTENCY_WINDOW_SECONDS or more before
        `now`; True when it was freed (a new job may take it)."""
        ...

    # Webhook deliveries (the outbox: grpc_server.store.outbox).

    def use_webhooks(self, plan: WebhookPlan) -> None:
        """From now on, every write of a terminal state (complete, fail, cancel, the reaper's
        fail) stores the event `plan` makes of the job in the same transaction."""
        ...

    async def claim_webhooks(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` pending events due at `now` (of endpoints not disabled), oldest
        due first, to `worker` until `lease_until`; rows leased to another are skipped."""
        ...

    async def record_webhook_attempt(self, webhook_id: str, worker: str, outcome: AttemptOutcome) -> bool:
        """Append the attempt and move the event to outcome.state (and next_attempt_at), the lease
        cleared, disabling its endpoint for a 410; one transaction. False when `worker` no longer
        holds the lease (nothing written)."""
        ...

    async def disabled_webhook_endpoints(self) -> set[str]:
        """The endpoints disabled by a 410, on any replica."""
        ...

    async def list_webhook_deliveries(
        self, endpoint: str, limit: int, webhook_id: str | None = None
    ) -> list[DeliveryRecord]:
        """The endpoint's newest `limit` events (only `webhook_id`, when given), each with its
        attempts."""
        ...

    async def redeliver_webhook(self, endpoint: str, webhook_id: str, now: datetime) -> bool:
        """Make the event pending again, due at `now` (its webhook-id and body unchanged); False
        when the endpoint has no such event."""
        ...

    async def delete_finished_webhooks(self, created_before: datetime, limit: int) -> int:
        """Delete up to `limit` events that are delivered or given up and were created before
        `created_before`, oldest first, with their attempts; how many. Pending ones are kept
        however old."""
        ...
