"""What the client hands back: frozen dataclasses shaped like OpenAI's answers.

Both transports build the same objects, so code written against one runs on the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
RequestType = Literal["image_edit", "image_generation", "image_variation", "embedding"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class OutputRef:
    """Where one stored output lives on the server: its index and its access token."""

    index: int
    token: str


@dataclass(frozen=True)
class ImageData:
    """One result image: a URL (REST, or a provider's own URL), inline base64 (when asked
    for `b64_json` over REST), or a stored output read with `download_outputs`."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    output: OutputRef | None = None


@dataclass(frozen=True)
class ImagesResult:
    """OpenAI's images answer, plus who served it."""

    created: int
    data: tuple[ImageData, ...]
    size: str | None = None
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    provider: str = ""
    model: str = ""


@dataclass(frozen=True)
class Embedding:
    index: int
    embedding: list[float]
    object: str = "embedding"


@dataclass(frozen=True)
class EmbeddingsResult:
    """OpenAI's embeddings list, vectors always as floats (the float32 values the server stored)."""

    data: tuple[Embedding, ...]
    model: str
    prompt_tokens: int = 0
    total_tokens: int = 0
    provider: str = ""
    object: str = "list"


@dataclass(frozen=True)
class JobError:
    """Why a job failed (or `code="cancelled"` for a cancelled one): the provider's error as
    it gave it, or asyncgate's own."""

    message: str
    type: str = ""
    code: str | None = None
    param: str | None = None
    status_code: int = 0


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    created_at: datetime
    request_type: RequestType | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    status_code: int | None = None
    result: ImagesResult | EmbeddingsResult | None = None
    error: JobError | None = None
    attempt: int = 0
    queue_position: int | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the job has ended (completed, failed or cancelled); it never changes again."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    """One page of `list`: newest first; `next_page_token` is None on the last page."""

    jobs: tuple[Job, ...]
    next_page_token: str | None = None


@dataclass(frozen=True)
class InputFile:
    """An image to upload: its bytes and, optionally, a file name and content type."""

    data: bytes
    filename: str = "image.png"
    content_type: str = "application/octet-stream"
