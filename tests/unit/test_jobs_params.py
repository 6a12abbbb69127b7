"""What the job paths read from requests: Prefer: wait, Last-Event-ID, the list's parameters,
the submit's Idempotency-Key and labels; each bad value a 400 naming it."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, MultiDict

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.config import CONFIG, BridgeConfig
from rest_bridge.errors import BridgeError
from rest_bridge.jobs_params import (
    last_event_id,
    list_request,
    preferred_wait,
    with_submit_headers,
)


def _request(config: BridgeConfig = BridgeConfig(), /, **headers: str) -> object:  # noqa: B008  # frozen
    app = web.Application()
    app[CONFIG] = config
    return make_mocked_request("GET", "/", headers=CIMultiDict(headers), app=app)


@pytest.mark.parametrize(
    ("prefer", "wait"),
    [
        ("wait=5", 5),
        ("respond-async, wait=7", 7),
        ("WAIT = 3", 3),
        ("wait=999", BridgeConfig().max_wait_seconds),
        ("x=1", None),
    ],
)
def test_prefer_wait(prefer: str, wait: int | None) -> None:
    assert preferred_wait(_request(Prefer=prefer)) == wait  # type: ignore[arg-type]


def test_prefer_wait_is_capped_by_the_bridge_setting() -> None:
    longer = BridgeConfig(max_wait_seconds=300)
    assert preferred_wait(_request(longer, Prefer="wait=999")) == 300  # type: ignore[arg-type]
    assert preferred_wait(_request(longer, Prefer="wait=120")) == 120  # type: ignore[arg-type]


def test_last_event_id() -> None:
    assert last_event_id(_request()) == 0  # type: ignore[arg-type]
    assert last_event_id(_request(**{"Last-Event-ID": "4"})) == 4  # type: ignore[arg-type]
    with pytest.raises(BridgeError) as refused:
        last_event_id(_request(**{"Last-Event-ID": "x"}))  # type: ignore[arg-type]
    assert refused.value.param == "Last-Event-ID"


def test_submit_headers_become_job_options() -> None:
    request = _request(**{"Idempotency-Key": "order-42", "x-asyncgate-labels": "team=search, env=prod"})
    options = with_submit_headers(pb.JobOptions(), request)  # type: ignore[arg-type]
    assert options.request_id == "order-42" and dict(options.labels) == {"team": "search", "env": "prod"}


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"Idempotency-Key": "x" * 256}, "Idempotency-Key"),
        ({"Idempotency-Key": "caf\u00e9"}, "Idempotency-Key"),
        ({"x-asyncgate-labels": "novalue"}, "labels"),
        ({"x-asyncgate-labels": "a=1,a=2"}, "labels"),
    ],
)
def test_bad_submit_headers_are_refused_naming_them(headers: dict[str, str], param: str) -> None:
    with pytest.raises(BridgeError) as refused:
        with_submit_headers(pb.JobOptions(), _request(**headers))  # type: ignore[arg-type]
    assert (refused.value.status, refused.value.param) == (400, param)


def test_list_parameters() -> None:
    query = MultiDict(
        [
            ("status", "failed"),
            ("status", "cancelled"),
            ("type", "embedding"),
            ("label", "team=a"),
            ("page_size", "5"),
            ("created_after", "2026-12-01T00:00:00Z"),
        ]
    )
    listing = list_request(query)
    assert list(listing.statuses) == [job_pb.JOB_STATUS_FAILED, job_pb.JOB_STATUS_CANCELLED]
    assert listing.request_type == job_pb.REQUEST_TYPE_EMBEDDING and dict(listing.labels) == {"team": "a"}
    assert listing.page_size == 5 and listing.create_time_after.seconds == 1796083200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", "done"),
        ("type", "video"),
        ("label", "team"),
        ("page_size", "101"),
        ("page_size", "x"),
        ("created_before", "yesterday"),
        ("created_after", "2026-12-01T00:00:00"),  # no offset: not RFC 3339
    ],
)
def test_bad_list_parameters_are_refused_naming_them(name: str, value: str) -> None:
    with pytest.raises(BridgeError) as refused:
        list_request(MultiDict([(name, value)]))
    assert (refused.value.status, refused.value.param) == (400, name)
