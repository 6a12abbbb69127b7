"""The options a caller may give any new job beyond its TTL: a request id (idempotency key) and
labels. Their rules, and the digest that tells a replay of a request from another request."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping, Sequence

from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import JobParams, RequestType
from grpc_server.store.base import CHUNK_BYTES, StagedFile

MAX_REQUEST_ID_LENGTH = 255
MAX_LABELS = 16
MAX_LABEL_VALUE_LENGTH = 255
_LABEL_KEY = re.compile(r"[a-z0-9_.-]{1,63}")


def check_request_id(request_id: str, param: str = "request_id") -> str | None:
    """The request id, or None when absent; 1 to 255 printable ASCII characters."""
    if not request_id:
        return None
    if len(request_id) > MAX_REQUEST_ID_LENGTH or not (request_id.isascii() and request_id.isprintable()):
        raise InvalidArgument(
            f"invalid {param}: 1 to {MAX_REQUEST_ID_LENGTH} printable ASCII characters are allowed", param
        )
    return request_id


def check_labels(labels: Mapping[str, str], param: str = "labels") -> dict[str, str]:
    """At most 16; keys [a-z0-9_.-]{1,63}; values up to 255 characters without commas."""
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"invalid labels: at most {MAX_LABELS} are allowed, got {len(labels)}", param)
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise InvalidArgument(f"invalid label key {key!r}: 1 to 63 characters of [a-z0-9_.-]", param)
        if len(value) > MAX_LABEL_VALUE_LENGTH or "," in value:
            raise InvalidArgument(
                f"invalid value of label {key!r}: at most {MAX_LABEL_VALUE_LENGTH} characters, no commas",
                param,
            )
    return dict(labels)


def _file_digest(staged: StagedFile) -> str:
    digest = hashlib.sha256()
    if isinstance(staged.source, bytes):
        digest.update(staged.source)
    else:
        with staged.source.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


async def request_digest(
    request_type: RequestType,
    params: JobParams,
    files: Sequence[StagedFile],
    ttl_seconds: int | None,
    labels: Mapping[str, str],
) -> str:
    """SHA-256 of everything a request asks for: its operation, fields, options and files."""
    file_digests = [(f.info.role, f.info.index, await asyncio.to_thread(_file_digest, f)) for f in files]
    document = {
        "request_type": request_type.value,
        "params": params.to_json(),
        "ttl_seconds": ttl_seconds,
        "labels": dict(sorted(labels.items())),
        "files": file_digests,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()
