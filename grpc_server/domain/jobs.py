"""The job and everything stored with it, as plain frozen dataclasses.

These are what the store persists and the dispatcher runs; proto conversion
lives in grpc_server.convert, JSON (de)serialisation for the store lives here
so that every backend stores the same documents.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class RequestType(StrEnum):
    IMAGE_EDIT = "image_edit"
    IMAGE_GENERATION = "image_generation"
    EMBEDDING = "embedding"


def new_job_id() -> str:
    """A random UUID v4: 122 random bits, so ids cannot be guessed."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ImageEditParams:
    """Every field of an image edit request except the image bytes."""

    model: str
    prompt: str = ""
    type: str | None = None
    n: int | None = None
    size: str | None = None
    response_format: str = "url"
    background: str | None = None
    input_fidelity: str | None = None
    partial_images: int | None = None
    quality: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    num_inference_steps: int | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    user: str | None = None
    fallbacks: tuple[str, ...] = ()
    extra_params: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["fallbacks"] = list(self.fallbacks)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageEditParams:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["fallbacks"] = tuple(values.get("fallbacks", ()))
        values["extra_params"] = dict(values.get("extra_params", {}))
        return cls(**values)

    def models(self) -> tuple[str, ...]:
        """The chain to try: the primary model, then each fallback in order."""
        return (self.model, *self.fallbacks)


FileRole = Literal["image", "mask"]


@dataclass(frozen=True)
class InputFile:
    """An input image or mask kept with the job (bytes live in the store)."""

    role: FileRole
    index: int
    filename: str
    content_type: str
    size_bytes: int
    width: int
    height: int


@dataclass(frozen=True)
class ExtraFields:
    provider: str = ""
    model_requested: str = ""
    request_type: str = ""


@dataclass(frozen=True)
class JobError:
    """The error object of CONTRACT section 6."""

    status_code: int
    message: str
    type: str = ""
    code: str = ""
    param: str = ""
    event_id: str = ""
    is_gateway_error: bool = False
    extra_fields: ExtraFields = field(default_factory=ExtraFields)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobError:
        extra = ExtraFields(**doc.get("extra_fields", {}))
        return cls(**{**doc, "extra_fields": extra})


@dataclass(frozen=True)
class ResultImage:
    """One image of a result: stored bytes (by output index) or a provider URL."""

    stored_index: int | None = None
    url: str | None = None
    content_type: str = ""
    size_bytes: int = 0
    revised_prompt: str | None = None


@dataclass(frozen=True)
class ImageResult:
    created: int
    images: tuple[ResultImage, ...]
    response_format: str
    extra_fields: ExtraFields
    usage: dict[str, Any] | None = None
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["images"] = [asdict(i) for i in self.images]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageResult:
        return cls(
            **{
                **doc,
                "images": tuple(ResultImage(**i) for i in doc["images"]),
                "extra_fields": ExtraFields(**doc["extra_fields"]),
            }
        )


@dataclass(frozen=True)
class Job:
    id: str
    request_type: RequestType
    status: JobStatus
    params: ImageEditParams
    created_at: datetime
    ttl_seconds: int
    owner_key_id: str | None = None
    inputs: tuple[InputFile, ...] = ()
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    status_code: int = 0
    result: ImageResult | None = None
    error: JobError | None = None
    attempts: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status in (JobStatus.COMPLETED, JobStatus.FAILED)

    def is_expired(self, now: datetime) -> bool:
        """Expiry is enforced on read, before any sweeper has run."""
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class OutputImage:
    """Image bytes a provider produced, to be kept with the job."""

    data: bytes
    content_type: str


def split_model(model: str) -> tuple[str, str] | None:
    """`provider/model` -> (provider, model); None when not of that form.

    The model part may itself contain slashes (`openai-compatible/org/model`).
    """
    provider, sep, name = model.partition("/")
    if not sep or not provider or not name or provider.strip() != provider or name.strip() != name:
        return None
    return provider, name
