"""The webhook outbox as the stores hand it out: a claimed delivery, and the delivery log.

A row is `pending` (with the time of its next attempt) until an attempt delivers it
(`delivered`) or the schedule is spent or its endpoint answered 410 (`given_up`). A claim
leases the row to one deliverer; a deliverer that dies loses the row when the lease ends,
and any replica takes it again, under the same webhook-id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

DeliveryState = Literal["pending", "delivered", "given_up"]


@dataclass(frozen=True)
class ClaimedDelivery:
    """An event leased to one deliverer for one attempt."""

    webhook_id: str
    endpoint: str
    job_id: str
    event_type: str
    body: bytes
    attempts: int
    """Attempts made before this one."""


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as the log keeps it."""

    attempt: int
    started_at: datetime
    status: int | None
    error: str | None
    duration_seconds: float
    excerpt: str


@dataclass(frozen=True)
class AttemptOutcome:
    """What an attempt ended in: the record and the row's next state (next_attempt_at only
    when pending); disable_endpoint for a 410."""

    started_at: datetime
    status: int | None
    error: str | None
    duration_seconds: float
    excerpt: str
    state: DeliveryState
    next_attempt_at: datetime | None = None
    disable_endpoint: bool = False


@dataclass(frozen=True)
class DeliveryRecord:
    """An event of an endpoint's log, with its attempts (oldest first)."""

    webhook_id: str
    endpoint: str
    job_id: str
    event_type: str
    created_at: datetime
    state: DeliveryState
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    attempts: tuple[AttemptRecord, ...]


DELIVERY_COLUMNS = (
    "webhook_id, endpoint, job_id, event_type, created_at, state, next_attempt_at, last_status, last_error"
)
ATTEMPT_COLUMNS = "webhook_id, attempt, started_at, status, error, duration_seconds, excerpt"
