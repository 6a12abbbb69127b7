"""Inspecting and redelivering an endpoint's events: admins only.

The gRPC methods ListWebhookDeliveries and RedeliverWebhook (mixed into the JobService
servicer) and the bridge's /v1/async/webhooks/{name}/deliveries paths on top of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import WebhookEndpoint
from grpc_server.domain.errors import NotFound, PermissionDenied, Unauthenticated
from grpc_server.errors import maps_errors
from grpc_server.keyring import KeyRing
from grpc_server.store.base import JobStore
from grpc_server.store.outbox import AttemptRecord, DeliveryRecord

DEFAULT_PAGE = 20
MAX_PAGE = 100


def _time(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _attempt(a: AttemptRecord) -> pb.WebhookAttempt:
    return pb.WebhookAttempt(
        attempt=a.attempt,
        start_time=_time(a.started_at),
        status=a.status or 0,
        error=a.error or "",
        duration_seconds=a.duration_seconds,
        excerpt=a.excerpt,
    )


def delivery_to_proto(d: DeliveryRecord) -> pb.WebhookDelivery:
    message = pb.WebhookDelivery(
        webhook_id=d.webhook_id,
        endpoint=d.endpoint,
        job_id=d.job_id,
        event_type=d.event_type,
        create_time=_time(d.created_at),
        state=d.state,
        last_status=d.last_status or 0,
        last_error=d.last_error or "",
        attempts=[_attempt(a) for a in d.attempts],
    )
    if d.next_attempt_at is not None:
        message.next_attempt_time.CopyFrom(_time(d.next_attempt_at))
    return message


class WebhookAdmin:
    def __init__(
        self,
        store: JobStore,
        endpoints: Iterable[WebhookEndpoint],
        keyring: KeyRing,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._names = {e.name for e in endpoints}
        self._keyring = keyring
        self._clock = clock

    def _check(self, headers: Mapping[str, str], endpoint: str) -> None:
        caller = self._keyring.identify(headers)
        if caller.key is None and not caller.admin:
            raise Unauthenticated("webhook deliveries are for admins: give an admin token")
        if not caller.admin:
            raise PermissionDenied("webhook deliveries are for admins only")
        if endpoint not in self._names:
            raise NotFound(f"no webhook endpoint is named {endpoint!r}")

    async def list(self, endpoint: str, page_size: int, headers: Mapping[str, str]) -> list[DeliveryRecord]:
        self._check(headers, endpoint)
        limit = DEFAULT_PAGE if page_size <= 0 else min(page_size, MAX_PAGE)
        return await self._store.list_webhook_deliveries(endpoint, limit)

    async def redeliver(self, endpoint: str, webhook_id: str, headers: Mapping[str, str]) -> DeliveryRecord:
        self._check(headers, endpoint)
        if not await self._store.redeliver_webhook(endpoint, webhook_id, self._clock()):
            raise NotFound(f"endpoint {endpoint!r} has no event {webhook_id!r}")
        (found,) = await self._store.list_webhook_deliveries(endpoint, 1, webhook_id)
        return found


@maps_errors
class WebhookRpcs:
    """The servicer's webhook methods (mixed into JobServicer)."""

    _webhooks: WebhookAdmin | None = None

    def _admin(self) -> WebhookAdmin:
        if self._webhooks is None:
            raise NotFound("no webhook endpoints are configured")
        return self._webhooks

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Any
    ) -> pb.ListWebhookDeliveriesResponse:
        found = await self._admin().list(request.endpoint, request.page_size, _headers(context))
        return pb.ListWebhookDeliveriesResponse(deliveries=[delivery_to_proto(d) for d in found])

    async def RedeliverWebhook(
        self, request: pb.RedeliverWebhookRequest, context: Any
    ) -> pb.RedeliverWebhookResponse:
        found = await self._admin().redeliver(request.endpoint, request.webhook_id, _headers(context))
        return pb.RedeliverWebhookResponse(delivery=delivery_to_proto(found))


def _headers(context: Any) -> dict[str, str]:
    from grpc_server.service import headers_of  # the servicer's module imports this one

    return headers_of(context)
