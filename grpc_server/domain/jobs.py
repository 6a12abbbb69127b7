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
from typing import Any, Literal, Self, cast


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
"""A job in one of these has ended: nothing moves it on except a retry (failed, cancelled)."""


class RequestType(StrEnum):
    IMAGE_EDIT = "image_edit"
    IMAGE_GENERATION = "image_generation"
    EMBEDDING = "embedding"
    IMAGE_VARIATION = "image_variation"


IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
"""How long a request id names the job it made: a replay after that makes a new job."""
CANCELLED_STATUS_CODE = 499
"""A cancelled job's status_code (the client closed the request, as nginx counts it)."""


def new_job_id() -> str:
    """A random UUID v4: 122 random bits, so ids cannot be guessed."""
    return str(uuid.uuid4())


class _Params:
    """JSON round trip and the model chain, shared by every request's parameters."""

    model: str
    fallbacks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict. Shallow (the values are shared, not copied): it is
        serialized at once, on every submit, where asdict's deep copy cost four times as much."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        doc["fallbacks"] = list(self.fallbacks)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in doc.items() if k in known}
        values["fallbacks"] = tuple(values.get("fallbacks", ()))
        return cls(**values)

    def models(self) -> tuple[str, ...]:
        """The chain to try: the primary model, then each fallback in order."""
        return (self.model, *self.fallbacks)


@dataclass(frozen=True)
class ImageEditParams(_Params):
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


@dataclass(frozen=True)
class ImageGenerationParams(_Params):
    """Every field of an image generation request."""

    model: str
    prompt: str = ""
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: str = "url"
    background: str | None = None
    moderation: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    partial_images: int | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    user: str | None = None
    fallbacks: tuple[str, ...] = ()
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageVariationParams(_Params):
    """Every field of an image variation request except the image bytes."""

    model: str
    n: int | None = None
    size: str | None = None
    response_format: str = "url"
    user: str | None = None
    fallbacks: tuple[str, ...] = ()
    extra_params: dict[str, str] = field(default_factory=dict)


EmbeddingInput = str | list[str] | list[int] | list[list[int]]


@dataclass(frozen=True)
class EmbeddingParams(_Params):
    """Every field of an embeddings request."""

    model: str
    input: EmbeddingInput = ""
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None
    fallbacks: tuple[str, ...] = ()
    extra_params: dict[str, Any] = field(default_factory=dict)

    def inputs(self) -> list[str] | list[list[int]]:
        """The input as a list of items: texts, or token-id lists."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and all(isinstance(v, int) for v in value):
            return [cast(list[int], value)]  # one input as token ids
        return cast(list[str] | list[list[int]], value)


JobParams = ImageEditParams | ImageGenerationParams | EmbeddingParams | ImageVariationParams
PARAMS_BY_TYPE: dict[
    RequestType,
    type[ImageEditParams] | type[ImageGenerationParams] | type[EmbeddingParams] | type[ImageVariationParams],
] = {
    RequestType.IMAGE_EDIT: ImageEditParams,
    RequestType.IMAGE_GENERATION: ImageGenerationParams,
    RequestType.EMBEDDING: EmbeddingParams,
    RequestType.IMAGE_VARIATION: ImageVariationParams,
}


def params_from_json(request_type: RequestType, doc: dict[str, Any]) -> JobParams:
    return PARAMS_BY_TYPE[request_type].from_json(doc)


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
    """The error object of docs/rest-api.md §6."""

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
class OutputInfo:
    """What a stored output is: its media type and length."""

    content_type: str
    size_bytes: int


VECTORS_CONTENT_TYPE = "application/vnd.asyncgate.float32le"
"""An embedding job's stored vectors: count x dimensions little-endian float32, row by row."""


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

    @property
    def stored_indexes(self) -> tuple[int, ...]:
        """The indexes of the outputs kept with the job (images not answered by URL)."""
        return tuple(image.stored_index for image in self.images if image.stored_index is not None)

    def stored_output(self, index: int) -> OutputInfo | None:
        for image in self.images:
            if image.stored_index == index:
                return OutputInfo(image.content_type, image.size_bytes)
        return None

    def to_json(self) -> dict[str, Any]:
        doc = {"kind": "image", **asdict(self)}
        doc["images"] = [asdict(i) for i in self.images]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageResult:
        doc = {k: v for k, v in doc.items() if k != "kind"}
        return cls(
            **{
                **doc,
                "images": tuple(ResultImage(**i) for i in doc["images"]),
                "extra_fields": ExtraFields(**doc["extra_fields"]),
            }
        )


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors are stored as output 0: count x dimensions little-endian float32."""

    model: str
    count: int
    dimensions: int
    encoding_format: str
    extra_fields: ExtraFields
    prompt_tokens: int = 0
    total_tokens: int = 0

    stored_indexes = (0,)
    """The vectors are output 0."""

    def stored_output(self, index: int) -> OutputInfo | None:
        if index != 0:
            return None
        return OutputInfo(VECTORS_CONTENT_TYPE, self.count * self.dimensions * 4)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "embedding", **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EmbeddingResult:
        values = {k: v for k, v in doc.items() if k != "kind"}
        return cls(**{**values, "extra_fields": ExtraFields(**doc["extra_fields"])})


JobResult = ImageResult | EmbeddingResult


def result_from_json(doc: dict[str, Any]) -> JobResult:
    if doc.get("kind") == "embedding":
        return EmbeddingResult.from_json(doc)
    return ImageResult.from_json(doc)


@dataclass(frozen=True)
class Job:
    id: str
    request_type: RequestType
    status: JobStatus
    params: JobParams
    created_at: datetime
    ttl_seconds: int
    owner_key_id: str | None = None
    inputs: tuple[InputFile, ...] = ()
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    status_code: int = 0
    result: JobResult | None = None
    error: JobError | None = None
    attempts: int = 0
    """Claims so far, over the job's whole life (a retry does not reset it)."""
    labels: dict[str, str] = field(default_factory=dict)
    change_seq: int = 1
    """The job's change number: 1 when created, one more at each change of status or attempt."""
    idempotency_key: str | None = None
    """The caller's request id (Idempotency-Key): with owner_key_id, unique among live keys."""
    request_hash: str | None = None
    """A digest of the request that made the job, to tell a replay from a reused key."""
    webhook: str | None = None
    """The configured webhook endpoint told when the job ends (x-bf-async-webhook)."""
    queue_position: int | None = None
    """Pending jobs only, computed on read: how many pending jobs would be claimed before it."""
    blob_store: str | None = None
    """Where its input files are kept: None, in the job database; else the name of the blob store
    beside it ("directory", "s3")."""
    outputs_token: str | None = None
    """None: its outputs (if any) are in the job database; else they are in the blob store, under
    keys made with this token (store.blobs_beside)."""
    output_urls: dict[int, str] = field(default_factory=dict)
    """Completed jobs only, computed on read when the blob store gives them: a pre-signed URL
    serving each stored output directly, by output index, valid until the job expires."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def is_expired(self, now: datetime) -> bool:
        """Expiry is enforced on read, before any sweeper has run."""
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class OutputBlob:
    """Bytes a job produced (an image, or an embedding job's vectors), kept with the job."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class ModelRef:
    """A `provider/model` string, parsed once: the provider's configured name and the model
    as that provider knows it (which may itself contain slashes: `compatible/org/model`)."""

    provider: str
    name: str

    @classmethod
    def parse(cls, model: str) -> ModelRef | None:
        """None when `model` is not of the form `provider/model` (or has stray whitespace)."""
        provider, sep, name = model.partition("/")
        if not sep or not provider or not name or provider.strip() != provider or name.strip() != name:
            return None
        return cls(provider, name)

    def __str__(self) -> str:
        return f"{self.provider}/{self.name}"


def cancelled_error(job: Job, event_id: str) -> JobError:
    """The error object a cancelled job carries: inner code `cancelled`, status 499."""
    return JobError(
        status_code=CANCELLED_STATUS_CODE,
        message="the job was cancelled",
        type="cancelled",
        code="cancelled",
        event_id=event_id,
        is_gateway_error=True,
        extra_fields=served_extra_fields(job, job.params.model),
    )


def served_extra_fields(job: Job, model: str) -> ExtraFields:
    """The extra_fields of a result or error: who served (or failed) the job, and as what."""
    ref = ModelRef.parse(model)
    provider, name = (ref.provider, ref.name) if ref else ("", model)
    return ExtraFields(provider=provider, model_requested=name, request_type=job.request_type.value)
