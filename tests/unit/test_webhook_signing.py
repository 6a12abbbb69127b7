"""Signatures checked by an independent Standard Webhooks implementation (the
`standardwebhooks` package): one secret, every secret of a rotation, and what must fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from grpc_server.webhooks.signing import secret_key, signature, signed_headers

NEW = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD = "whsec_" + base64.b64encode(bytes(range(100, 124))).decode()
OTHER = "whsec_" + base64.b64encode(b"z" * 32).decode()
BODY = '{"type":"async_job.completed","data":{"id":"job_1","name":"é"}}'.encode()


def _now() -> int:
    return int(time.time())


def test_a_delivery_verifies_with_the_standard_webhooks_package() -> None:
    headers = signed_headers([NEW], "msg_1", _now(), BODY)
    assert Webhook(NEW).verify(BODY, headers) == {
        "type": "async_job.completed",
        "data": {"id": "job_1", "name": "é"},
    }
    assert headers["webhook-id"] == "msg_1"
    assert headers["content-type"] == "application/json"


def test_during_a_rotation_each_secret_verifies_and_there_is_one_signature_per_secret() -> None:
    headers = signed_headers([NEW, OLD], "msg_2", _now(), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    for secret in (NEW, OLD):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(BODY, headers)


def test_the_signature_is_the_hmac_of_id_timestamp_and_body_with_the_decoded_secret() -> None:
    timestamp = 1_700_000_000
    expected = hmac.new(bytes(range(32)), b"msg_3.1700000000." + BODY, hashlib.sha256).digest()
    assert signature(secret_key(NEW), "msg_3", timestamp, BODY) == "v1," + base64.b64encode(expected).decode()
    packaged = Webhook(NEW).sign("msg_3", datetime.fromtimestamp(timestamp, UTC), BODY)
    assert signature(secret_key(NEW), "msg_3", timestamp, BODY) == packaged


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp"],
)
def test_a_changed_body_id_or_timestamp_does_not_verify(change: str) -> None:
    now = _now()
    headers = signed_headers([NEW], "msg_4", now, BODY)
    body = BODY
    if change == "body":
        body = BODY.replace(b"job_1", b"job_2")
    elif change == "id":
        headers["webhook-id"] = "msg_5"
    else:
        headers["webhook-timestamp"] = str(now - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(body, headers)


def test_the_timestamp_header_is_unix_seconds() -> None:
    assert signed_headers([NEW], "msg_6", 1_700_000_123, BODY)["webhook-timestamp"] == "1700000123"


def test_an_old_timestamp_is_refused_by_receivers() -> None:
    """The sender signs each attempt at its own time; a stale one is what receivers refuse."""
    headers = signed_headers([NEW], "msg_7", _now() - 3600, BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(NEW).verify(BODY, headers)


@pytest.mark.parametrize("bad", ["", "whsec_", "k" * 40, "whsec_***"])
def test_a_malformed_secret_is_refused_without_showing_it(bad: str) -> None:
    with pytest.raises(ValueError) as caught:
        secret_key(bad)
    assert "***" not in str(caught.value) and "kkkk" not in str(caught.value)


@pytest.mark.parametrize("webhook_id", ["", "msg 1", "msg.1", "msg\n1"])
def test_a_webhook_id_that_would_break_the_signed_string_is_refused(webhook_id: str) -> None:
    with pytest.raises(ValueError, match="webhook-id"):
        signed_headers([NEW], webhook_id, _now(), BODY)


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signed_headers([], "msg_8", _now(), BODY)
