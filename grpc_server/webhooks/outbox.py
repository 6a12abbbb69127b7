"""What the job store writes into the webhook outbox when a job ends.

The store calls a WebhookPlan inside the transaction that writes the job's terminal state,
with the job as it now is: the plan says which event (if any) to store, with its webhook-id
fixed now (the same on every retry) and its body built now (the same bytes on every retry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from grpc_server.config import WebhookEndpoint
from grpc_server.domain.jobs import Job
from grpc_server.webhooks.envelope import job_envelope
from grpc_server.webhooks.events import event_body, event_type_for, new_webhook_id


@dataclass(frozen=True)
class OutboxEvent:
    """One event to deliver: a new outbox row."""

    webhook_id: str
    endpoint: str
    job_id: str
    event_type: str
    body: bytes


WebhookPlan = Callable[[Job], OutboxEvent | None]
"""A job that has just ended -> the event to store with it, or None."""


def no_webhooks(job: Job) -> OutboxEvent | None:
    """The plan of a server with no endpoints configured."""
    return None


class EndpointPlan:
    """The plan for the configured endpoints: an event when the job names an endpoint that is
    configured, enabled and wants the event's type (a job that named one that has since been
    removed from the configuration sends nothing)."""

    def __init__(self, endpoints: Iterable[WebhookEndpoint]) -> None:
        self._endpoints = {e.name: e for e in endpoints}

    def __call__(self, job: Job) -> OutboxEvent | None:
        endpoint = self._endpoints.get(job.webhook or "")
        event_type = event_type_for(job.status.value)
        if endpoint is None or event_type is None or not endpoint.enabled:
            return None
        if event_type not in endpoint.events:
            return None
        at = job.completed_at
        if at is None:
            raise ValueError(f"job {job.id} ended without completed_at")
        body = event_body(event_type, job_envelope(job), at, endpoint.max_result_bytes)
        return OutboxEvent(new_webhook_id(), endpoint.name, job.id, event_type, body)
