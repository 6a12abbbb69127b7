"""What every operation slice provides (see grpc_server.operations)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from grpc_server.config import ServerConfig
from grpc_server.domain.jobs import FileRole, Job, JobParams, JobResult, OutputBlob, RequestType
from grpc_server.images import ImageInfo
from grpc_server.providers.base import ImageInput, Provider

P = TypeVar("P", bound=JobParams)
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class SubmitShape:
    """What a submit carries besides its params, for the field rules."""

    images: int = 0
    has_mask: bool = False
    stream: bool = False


@dataclass(frozen=True)
class RunInputs:
    """A job's input files as the provider call receives them (exported for this run only)."""

    images: Sequence[ImageInput] = ()
    mask: ImageInput | None = None


class Operation(ABC, Generic[P, Outcome]):
    request_type: ClassVar[RequestType]
    proto_request_type: ClassVar[int]
    """The asyncgate.v1.RequestType number."""
    file_roles: ClassVar[frozenset[FileRole]] = frozenset()
    """The input files it takes; none means the job has no inputs to export."""

    @abstractmethod
    def params_from_proto(self, request: Any) -> P:
        """The request message of its Create RPC -> params (no rule checked yet)."""

    def streams(self, request: Any) -> bool:
        """Whether the request asked to stream (refused by the field rules where it exists)."""
        return False

    @abstractmethod
    def validate(self, params: P, shape: SubmitShape, config: ServerConfig) -> None:
        """Refuse the first rule the request breaks (InvalidArgument naming the field)."""

    def check_images(self, images: Sequence[ImageInfo], mask: ImageInfo | None) -> None:
        """Rules between the inspected files (a mask's size, say); none by default."""

    @abstractmethod
    async def call(self, provider: Provider, model: str, params: P, inputs: RunInputs) -> Outcome:
        """One attempt at one provider; `model` is the bare model name."""

    @abstractmethod
    def keep(
        self, job: Job, params: P, outcome: Outcome, served_by: str
    ) -> tuple[JobResult, list[OutputBlob]]:
        """What the store keeps of a successful answer: the result and its output blobs."""
