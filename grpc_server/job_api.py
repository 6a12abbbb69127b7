"""What callers can do with jobs, independent of gRPC: submit, read, read outputs.

The servicer converts protos and calls these; every business rule of the request path
lives here, in domain/ or in the operation's slice: the field rules before anything is
stored, the virtual key binding, expiry on read, capability checks on outputs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from grpc_server.capabilities import Capabilities
from grpc_server.config import ServerConfig, VirtualKey
from grpc_server.domain.errors import (
    InvalidArgument,
    NotFound,
    OperationTypeMismatch,
    PermissionDenied,
)
from grpc_server.domain.jobs import (
    InputFile,
    Job,
    JobParams,
    JobStatus,
    OutputInfo,
    RequestType,
    new_job_id,
)
from grpc_server.domain.keys import model_allowed
from grpc_server.domain.ttl import resolve_ttl
from grpc_server.image_work import ImageWork
from grpc_server.images import ImageInfo, inspect_image
from grpc_server.keyring import Caller, KeyRing
from grpc_server.operations.base import Operation, SubmitShape
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.staging import StagingFile
from grpc_server.store.base import JobStore, StagedFile


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OutputStream:
    info: OutputInfo
    chunks: AsyncIterator[bytes]


def _check_allowed(key: VirtualKey | None, model: str, param: str) -> None:
    if not model_allowed(model, key.allowed_models if key else ()):
        raise PermissionDenied(f"this virtual key may not use model {model!r}", param)


class JobApi:
    def __init__(
        self,
        config: ServerConfig,
        store: JobStore,
        registry: ProviderRegistry,
        keyring: KeyRing,
        capabilities: Capabilities,
        image_work: ImageWork,
        on_submit: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self._store = store
        self._registry = registry
        self._keyring = keyring
        self.capabilities = capabilities
        self._image_work = image_work
        self._on_submit = on_submit
        self._clock = clock

    def caller(self, headers: Mapping[str, str]) -> VirtualKey | None:
        """The caller's virtual key (None when keyless and allowed); raises when refused.
        Checked from headers alone, so an upload can be refused before its body is read."""
        return self._keyring.resolve(headers)

    def check_caller(self, headers: Mapping[str, str], model: str | None) -> None:
        """Refuse the caller as a submit would, from its key (and the model, when known) alone."""
        key = self.caller(headers)
        if model is not None:
            _check_allowed(key, model, "model")

    async def submit(
        self,
        operation: Operation[Any, Any],
        params: JobParams,
        files: Sequence[StagingFile],
        headers: Mapping[str, str],
        *,
        stream: bool = False,
        ttl_seconds: int | None = None,
    ) -> Job:
        """Check a request against every rule, then persist it as a pending job."""
        key = self.caller(headers)
        images = [f for f in files if f.role == "image"]
        mask = next((f for f in files if f.role == "mask"), None)
        operation.validate(params, SubmitShape(len(images), mask is not None, stream), self.config)
        self._check_models(params, operation.request_type, key)
        inputs = await self._inspect_files(operation, images, mask) if files else []
        return await self._accept(operation.request_type, params, key, ttl_seconds, inputs)

    async def _accept(
        self,
        request_type: RequestType,
        params: JobParams,
        key: VirtualKey | None,
        ttl_seconds: int | None,
        inputs: list[StagedFile],
    ) -> Job:
        """Persist a validated job with its inputs, then wake the dispatcher."""
        job = Job(
            id=new_job_id(),
            request_type=request_type,
            status=JobStatus.PENDING,
            params=params,
            created_at=self._clock(),
            ttl_seconds=resolve_ttl(
                ttl_seconds, self.config.default_ttl_seconds, self.config.max_ttl_seconds
            ),
            owner_key_id=key.id if key else None,
            inputs=tuple(s.info for s in inputs),
        )
        await self._store.create_job(job, inputs)
        self._on_submit()
        return job

    def _check_models(self, params: JobParams, request_type: RequestType, key: VirtualKey | None) -> None:
        """The key may use every model of the chain, and at least one of them can run the job."""
        for model in params.models():
            _check_allowed(key, model, "model" if model == params.model else "fallbacks")
        if not any(self._registry.supports(model, request_type) for model in params.models()):
            raise InvalidArgument(
                f"model {params.model!r} cannot run {request_type.value}: its provider is not configured"
                " or does not offer it (and no fallback does)",
                "model",
            )

    async def _inspect_files(
        self, operation: Operation[Any, Any], images: list[StagingFile], mask: StagingFile | None
    ) -> list[StagedFile]:
        """Every file identified and verified on the image threads, within the pixel budget."""
        files = [*images, *([mask] if mask else [])]
        infos = [await self._image_work.run(self._inspect, f) for f in files]
        operation.check_images(infos[: len(images)], infos[-1] if mask else None)
        return [
            StagedFile(
                InputFile(f.role, f.index, f.filename, info.content_type, f.size, info.width, info.height),
                f.source,
            )
            for f, info in zip(files, infos, strict=True)
        ]

    def _inspect(self, staged: StagingFile) -> ImageInfo:
        return inspect_image(
            staged.source,
            param=staged.param,
            label=staged.label,
            max_pixels=self.config.max_image_pixels,
            reserve=self._image_work.budget.reserve,
        )

    async def get_job(
        self, job_id: str, headers: Mapping[str, str], request_type: RequestType | None = None
    ) -> Job:
        job = await self._readable_job(job_id, self._keyring.identify(headers))
        if request_type is not None and job.request_type != request_type:
            raise OperationTypeMismatch()
        return job

    async def open_output(
        self, job_id: str, index: int, headers: Mapping[str, str], token: str
    ) -> OutputStream:
        if token:
            if not self.capabilities.verify(job_id, index, token):
                raise PermissionDenied("invalid image token", "token")
            job = await self._live_job(job_id)
        else:
            job = await self._readable_job(job_id, self._keyring.identify(headers))
        info = job.result.stored_output(index) if job.result is not None else None
        if info is None:
            raise NotFound(f"job {job_id} has no stored image {index}")
        return OutputStream(info, self._store.read_output(job.id, index))

    async def _live_job(self, job_id: str) -> Job:
        job = await self._store.get_job(job_id)
        if job is None or job.is_expired(self._clock()):
            raise NotFound("job not found")
        return job

    async def _readable_job(self, job_id: str, caller: Caller) -> Job:
        """The job, if this caller may read it; otherwise exactly as if it did not exist."""
        job = await self._live_job(job_id)
        if not caller.may_read(job.owner_key_id):
            raise NotFound("job not found")
        return job
