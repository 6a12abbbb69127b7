"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

The key is the secret's bytes after `whsec_`, base64-decoded. During a rotation every
secret signs, and `webhook-signature` carries one signature per secret, space-separated,
so a receiver holding either the old or the new secret accepts the delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from grpc_server.config_checks import WEBHOOK_SECRET_PREFIX, webhook_secret_bytes

CONTENT_TYPE = "application/json"
USER_AGENT = "asyncgate-webhooks/1"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; ValueError (never showing it) otherwise."""
    key = webhook_secret_bytes(secret)
    if not key:
        raise ValueError(f"a webhook secret must be {WEBHOOK_SECRET_PREFIX}<base64>")
    return key


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,...` signature of a delivery's id, timestamp (unix seconds) and exact body."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt: id, timestamp and a signature per secret."""
    if not secrets:
        raise ValueError("a webhook needs at least one signing secret")
    if not webhook_id or any(c in webhook_id for c in " .\r\n"):
        raise ValueError("a webhook-id must be non-empty, without spaces, dots or line breaks")
    signatures = " ".join(signature(secret_key(secret), webhook_id, timestamp, body) for secret in secrets)
    return {
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
