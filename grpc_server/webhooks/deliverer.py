"""The delivery loop: claim due events from the outbox, send each, record what happened.

Any number of replicas run it against one store: a claim leases an event to this deliverer
(PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: its single writer) until the endpoint's timeout
plus LEASE_MARGIN_SECONDS, so no two replicas send one event at once, and an event whose
deliverer died (its lease ended) is taken again by any replica, under the same webhook-id.
The loop wakes at once when a job ends on this replica, else every poll_seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from grpc_server.config import WebhookEndpoint
from grpc_server.metrics import WEBHOOK_DELIVERIES
from grpc_server.store.base import JobStore, StoreEvent, StoreUnavailable
from grpc_server.store.outbox import AttemptOutcome, ClaimedDelivery
from grpc_server.webhooks.schedule import Delivered, DisableEndpoint, GiveUp, RetryAt, decide
from grpc_server.webhooks.sender import Attempt, WebhookSender

log = logging.getLogger("asyncgate.webhooks")

LEASE_MARGIN_SECONDS = 10.0
"""A claim's lease outlasts the endpoint's timeout by this much (the wait for a turn, the write)."""
POLL_SECONDS = 1.0
BATCH = 32
"""Events in flight at once, per server (each endpoint also has its own max_concurrency)."""
ENDED = frozenset({"completed", "failed", "cancelled", ""})
REMOVED = "endpoint_removed"
"""The error of an event whose endpoint is no longer configured: given up, nothing sent."""


class Deliverer:
    def __init__(
        self,
        store: JobStore,
        endpoints: Iterable[WebhookEndpoint],
        sender: WebhookSender,
        clock: Callable[[], datetime],
        *,
        poll_seconds: float = POLL_SECONDS,
        lease_margin_seconds: float = LEASE_MARGIN_SECONDS,
        batch: int = BATCH,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._endpoints = {e.name: e for e in endpoints}
        self._sender = sender
        self._clock = clock
        self._poll = poll_seconds
        self._batch = batch
        self._jitter = jitter
        longest = max((e.timeout_seconds for e in self._endpoints.values()), default=0.0)
        self._lease = timedelta(seconds=longest + lease_margin_seconds)
        self.worker_id = f"webhooks-{uuid.uuid4()}"
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def on_store_event(self, event: StoreEvent) -> None:
        """A job ended here (its event may be due now), or events may have been missed."""
        if event.kind in ENDED:
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled: claim what is due and send it; the sends in flight are cancelled
        with the loop (their leases end, and any replica sends them again)."""
        try:
            while True:
                self._wake.clear()
                room = self._batch - len(self._in_flight)
                if room > 0:
                    for claimed in await self._claim(room):
                        task = asyncio.create_task(
                            self._deliver(claimed), name=f"webhook {claimed.webhook_id}"
                        )
                        self._in_flight.add(task)
                        task.add_done_callback(self._finished)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # room for another

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        now = self._clock()
        try:
            return await self._store.claim_webhooks(self.worker_id, limit, now, now + self._lease)
        except StoreUnavailable as problem:
            log.warning("webhook claim failed (%s); retrying", problem)
            return []

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        endpoint = self._endpoints.get(claimed.endpoint)
        if endpoint is None or not endpoint.enabled:
            now = self._clock()
            reason = (
                "the endpoint is no longer configured" if endpoint is None else "the endpoint is disabled"
            )
            outcome = AttemptOutcome(now, None, REMOVED, 0.0, reason, "given_up")
        else:
            attempt = await self._sender.send(endpoint, claimed.webhook_id, claimed.body)
            outcome = self._outcome(endpoint, claimed, attempt)
        WEBHOOK_DELIVERIES.labels(claimed.endpoint, _outcome_label(outcome)).inc()
        try:
            if not await self._store.record_webhook_attempt(claimed.webhook_id, self.worker_id, outcome):
                log.warning("webhook %s: lease lost before its attempt was recorded", claimed.webhook_id)
        except StoreUnavailable as problem:  # the lease ends and the event is sent again
            log.warning("webhook %s: attempt not recorded (%s)", claimed.webhook_id, problem)

    def _outcome(
        self, endpoint: WebhookEndpoint, claimed: ClaimedDelivery, attempt: Attempt
    ) -> AttemptOutcome:
        decision = decide(
            claimed.attempts + 1,
            attempt.outcome,
            attempt.retry_after,
            self._clock(),
            self._jitter(),
            endpoint.retry_schedule_seconds,
        )
        record = (
            attempt.started_at,
            attempt.status,
            attempt.error,
            attempt.duration_seconds,
            attempt.excerpt,
        )
        match decision:
            case Delivered():
                return AttemptOutcome(*record, "delivered")
            case RetryAt(at):
                return AttemptOutcome(*record, "pending", next_attempt_at=at)
            case GiveUp():
                return AttemptOutcome(*record, "given_up")
            case DisableEndpoint():
                log.warning("webhook endpoint %s answered 410: disabled", endpoint.name)
                return AttemptOutcome(*record, "given_up", disable_endpoint=True)


def _outcome_label(outcome: AttemptOutcome) -> str:
    if outcome.disable_endpoint:
        return "disabled"
    return "retry" if outcome.state == "pending" else outcome.state
