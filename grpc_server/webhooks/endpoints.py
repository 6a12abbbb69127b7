"""Which configured endpoint a job names, and whether it wants an event."""

from __future__ import annotations

from collections.abc import Iterable

from grpc_server.config import WebhookEndpoint
from grpc_server.domain.errors import InvalidArgument
from grpc_server.store.base import JobStore

PARAM = "webhook"


class UnknownWebhook(ValueError):
    """A job names an endpoint that is not configured or is disabled (a 400 at submit)."""


def endpoint_named(endpoints: Iterable[WebhookEndpoint], name: str) -> WebhookEndpoint:
    """The enabled endpoint called `name`; UnknownWebhook, its message fit for the caller,
    otherwise (the configured names are not listed: they are the operator's business)."""
    for endpoint in endpoints:
        if endpoint.name == name:
            if not endpoint.enabled:
                raise UnknownWebhook(f"webhook endpoint {name!r} is disabled")
            return endpoint
    raise UnknownWebhook(f"no webhook endpoint is named {name!r}")


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """Whether the endpoint asked for this event type (and is enabled)."""
    return endpoint.enabled and event_type in endpoint.events


async def check_webhook(name: str, endpoints: Iterable[WebhookEndpoint], store: JobStore) -> None:
    """Refuse a submit naming an endpoint that is not configured, disabled in the configuration,
    or disabled in the store (it answered 410, on any replica): InvalidArgument, param `webhook`."""
    try:
        endpoint_named(endpoints, name)
    except UnknownWebhook as problem:
        raise InvalidArgument(str(problem), PARAM) from None
    if name in await store.disabled_webhook_endpoints():
        raise InvalidArgument(f"webhook endpoint {name!r} is disabled (it answered 410 Gone)", PARAM)
