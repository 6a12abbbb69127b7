"""The REST bridge's job envelope (docs/rest-api.md §2, §9) -> the client's Job."""

from __future__ import annotations

import base64
import struct
from datetime import datetime
from typing import Any, cast

from asyncgate.client.types import (
    Embedding,
    EmbeddingsResult,
    ImageData,
    ImagesResult,
    Job,
    JobError,
    JobStatus,
    RequestType,
)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _float32(value: float) -> float:
    """The float32 the server stored, as gRPC's raw vectors give it (JSON carries its
    shortest decimal, which reads back as that float32)."""
    return cast(float, struct.unpack("<f", struct.pack("<f", value))[0])


def _embedding(value: Any) -> list[float]:
    if isinstance(value, str):  # encoding_format base64: little-endian float32
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [_float32(float(x)) for x in value]


def _result(body: dict[str, Any]) -> ImagesResult | EmbeddingsResult:
    extra = body.get("extra_fields") or {}
    if body.get("object") == "list":
        usage = body.get("usage") or {}
        return EmbeddingsResult(
            data=tuple(Embedding(item["index"], _embedding(item["embedding"])) for item in body["data"]),
            model=body.get("model", ""),
            prompt_tokens=usage.get("prompt_tokens", 0),
            total_tokens=usage.get("total_tokens", 0),
            provider=extra.get("provider", ""),
        )
    return ImagesResult(
        created=body.get("created", 0),
        data=tuple(
            ImageData(
                url=item.get("url"), b64_json=item.get("b64_json"), revised_prompt=item.get("revised_prompt")
            )
            for item in body.get("data", ())
        ),
        size=body.get("size"),
        background=body.get("background"),
        output_format=body.get("output_format"),
        quality=body.get("quality"),
        provider=extra.get("provider", ""),
        model=extra.get("model_requested", ""),
    )


def _error(body: dict[str, Any]) -> JobError:
    inner = body.get("error") or {}
    return JobError(
        message=inner.get("message", ""),
        type=inner.get("type", body.get("type", "")),
        code=inner.get("code"),
        param=inner.get("param"),
        status_code=body.get("status_code", 0),
    )


def to_job(body: dict[str, Any], request_type: RequestType | None = None) -> Job:
    """A Job from an envelope; `request_type` fills in what a submit's short answer leaves out."""
    return Job(
        id=body["id"],
        status=cast(JobStatus, body["status"]),
        created_at=cast(datetime, _time(body["created_at"])),
        request_type=body.get("request_type", request_type),
        completed_at=_time(body.get("completed_at")),
        expires_at=_time(body.get("expires_at")),
        status_code=body.get("status_code"),
        result=_result(body["result"]) if isinstance(body.get("result"), dict) else None,
        error=_error(body["error"]) if isinstance(body.get("error"), dict) else None,
        attempt=body.get("attempt", 0),
        queue_position=body.get("queue_position"),
        labels=dict(body.get("labels") or {}),
    )
