"""The webhook delivery paths (admins only): an endpoint's events with their attempts, and
redelivering one. A caller without a key or token is 401, any other non-admin 403 (the
server decides; its errors map as every path's do)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import CONFIG, JOBS, forwarded_metadata
from rest_bridge.envelope import rfc3339
from rest_bridge.errors import BridgeError

WEBHOOKS_PATH = "/v1/async/webhooks"
MAX_LIMIT = 100


def _time(stamp: Timestamp, present: bool = True) -> str | None:
    return rfc3339(stamp) if present else None


def attempt_json(a: pb.WebhookAttempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "started_at": rfc3339(a.start_time),
        "status": a.status or None,
        "error": a.error or None,
        "duration_ms": round(a.duration_seconds * 1000),
        "excerpt": a.excerpt,
    }


def delivery_json(d: pb.WebhookDelivery) -> dict[str, Any]:
    return {
        "webhook_id": d.webhook_id,
        "endpoint": d.endpoint,
        "job_id": d.job_id,
        "type": d.event_type,
        "created_at": rfc3339(d.create_time),
        "state": d.state,
        "last_status": d.last_status or None,
        "last_error": d.last_error or None,
        "next_attempt_at": _time(d.next_attempt_time, d.HasField("next_attempt_time")),
        "attempts": [attempt_json(a) for a in d.attempts],
    }


def _limit(request: web.Request) -> int:
    value = request.query.get("limit", "")
    if not value:
        return 0
    if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= MAX_LIMIT:  # ASCII digits only
        raise BridgeError(400, f"invalid limit: {value!r} (a whole number from 1 to {MAX_LIMIT})", "limit")
    return int(value)


async def list_deliveries(request: web.Request) -> web.StreamResponse:
    reply = await request.app[JOBS].ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(endpoint=request.match_info["name"], page_size=_limit(request)),
        metadata=forwarded_metadata(request),
        timeout=request.app[CONFIG].grpc_timeout_seconds,
    )
    return web.json_response({"object": "list", "data": [delivery_json(d) for d in reply.deliveries]})


async def redeliver(request: web.Request) -> web.StreamResponse:
    reply = await request.app[JOBS].RedeliverWebhook(
        pb.RedeliverWebhookRequest(
            endpoint=request.match_info["name"], webhook_id=request.match_info["webhook_id"]
        ),
        metadata=forwarded_metadata(request),
        timeout=request.app[CONFIG].grpc_timeout_seconds,
    )
    return web.json_response(delivery_json(reply.delivery), status=202)


def add_webhook_routes(app: web.Application) -> None:
    deliveries = f"{WEBHOOKS_PATH}/{{name}}/deliveries"
    app.router.add_get(deliveries, list_deliveries, name="webhook_deliveries", allow_head=False)
    app.router.add_post(f"{deliveries}/{{webhook_id}}/redeliver", redeliver, name="webhook_redeliver")
