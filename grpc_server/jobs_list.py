"""ListJobs: the query, and page tokens for keyset paging on (created_at, id), newest first.

A token names the last job of a page; the next page holds the jobs strictly before it in
that order, so jobs created meanwhile (newer, hence before the first page) are never listed
on a later page and no job is listed twice."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import Job, JobStatus, RequestType

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str


@dataclass(frozen=True)
class ListQuery:
    owner_key_id: str | None = None
    """Set by the API from the caller's key; None only where every job may be listed."""
    statuses: tuple[JobStatus, ...] = ()
    request_type: RequestType | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    after: Cursor | None = None


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_page_token: str


def page_size(requested: int, param: str = "page_size") -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"invalid {param}: {requested} (allowed: 1 to {MAX_PAGE_SIZE})", param)
    return requested


def encode_token(job: Job) -> str:
    document = {"t": job.created_at.isoformat(), "id": job.id}
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def decode_token(token: str, param: str = "page_token") -> Cursor | None:
    if not token:
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return Cursor(datetime.fromisoformat(document["t"]), str(document["id"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument(f"invalid {param}: not a token this server gave", param) from None
