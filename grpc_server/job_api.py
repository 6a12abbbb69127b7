"""What callers can do with jobs, independent of gRPC: submit, read, read outputs.

The servicer converts protos and calls these; every business rule of the
request path lives here or in domain/: validation before anything is stored,
the virtual key binding, expiry on read, capability checks on outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from grpc_server.capabilities import Capabilities
from grpc_server.config import ServerConfig, VirtualKey
from grpc_server.domain.jobs import (
    EmbeddingParams,
    ImageEditParams,
    ImageGenerationParams,
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
from grpc_server.domain.validation import validate_embedding, validate_image_edit, validate_image_generation
from grpc_server.errors import InvalidArgument, NotFound, OperationTypeMismatch, PermissionDenied, Unavailable
from grpc_server.images import check_mask, inspect_image
from grpc_server.keyring import KeyRing
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.staging import StagingFile
from grpc_server.store.base import JobStore, StagedFile, StoreUnavailable

INLINE_INSPECTION_BYTES = 256 * 1024
"""Requests with at most this many image bytes are checked on the event loop."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OutputStream:
    info: OutputInfo
    chunks: AsyncIterator[bytes]


class JobApi:
    def __init__(
        self,
        config: ServerConfig,
        store: JobStore,
        registry: ProviderRegistry,
        keyring: KeyRing,
        capabilities: Capabilities,
        on_submit: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self._store = store
        self._registry = registry
        self._keyring = keyring
        self.capabilities = capabilities
        self._on_submit = on_submit
        self._clock = clock

    async def submit_image_edit(
        self,
        params: ImageEditParams,
        files: list[StagingFile],
        headers: Mapping[str, str],
        *,
        stream: bool,
        ttl_seconds: int | None,
    ) -> Job:
        key = self._keyring.resolve(headers)
        images = [f for f in files if f.role == "image"]
        mask = next((f for f in files if f.role == "mask"), None)
        validate_image_edit(
            params,
            image_count=len(images),
            has_mask=mask is not None,
            stream=stream,
            max_images=self.config.max_images,
        )
        self._check_models(params, RequestType.IMAGE_EDIT, key)
        if sum(f.size for f in files) <= INLINE_INSPECTION_BYTES:
            inputs = self._inspect_files(images, mask)  # a fraction of a millisecond: not worth a thread
        else:
            inputs = await asyncio.to_thread(self._inspect_files, images, mask)
        return await self._accept(RequestType.IMAGE_EDIT, params, key, ttl_seconds, inputs)

    async def submit_image_generation(
        self,
        params: ImageGenerationParams,
        headers: Mapping[str, str],
        *,
        stream: bool,
        ttl_seconds: int | None,
    ) -> Job:
        key = self._keyring.resolve(headers)
        validate_image_generation(params, stream=stream)
        self._check_models(params, RequestType.IMAGE_GENERATION, key)
        return await self._accept(RequestType.IMAGE_GENERATION, params, key, ttl_seconds, [])

    async def submit_embedding(
        self, params: EmbeddingParams, headers: Mapping[str, str], *, ttl_seconds: int | None
    ) -> Job:
        key = self._keyring.resolve(headers)
        validate_embedding(params)
        self._check_models(params, RequestType.EMBEDDING, key)
        return await self._accept(RequestType.EMBEDDING, params, key, ttl_seconds, [])

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
        try:
            await self._store.create_job(job, inputs)
        except StoreUnavailable as exc:
            raise Unavailable("the job store is unavailable; try again") from exc
        self._on_submit()
        return job

    def _check_models(self, params: JobParams, request_type: RequestType, key: VirtualKey | None) -> None:
        """The key may use every model of the chain, and at least one of them can run the job."""
        allowed = key.allowed_models if key else ()
        for model in params.models():
            if not model_allowed(model, allowed):
                param = "model" if model == params.model else "fallbacks"
                raise PermissionDenied(f"this virtual key may not use model {model!r}", param)
        if not any(self._registry.supports(model, request_type) for model in params.models()):
            raise InvalidArgument(
                f"model {params.model!r} cannot run {request_type.value}: its provider is not configured"
                " or does not offer it (and no fallback does)",
                "model",
            )

    def _inspect_files(self, images: list[StagingFile], mask: StagingFile | None) -> list[StagedFile]:
        staged = []
        infos = []
        for f in [*images, *([mask] if mask else [])]:
            source = f.source
            info = inspect_image(
                source, param=f.param, label=f.label, max_pixels=self.config.max_image_pixels
            )
            infos.append(info)
            staged.append(
                StagedFile(
                    InputFile(
                        f.role, f.index, f.filename, info.content_type, f.size, info.width, info.height
                    ),
                    source,
                )
            )
        if mask is not None:
            check_mask(infos[-1], infos[0])
        return staged

    async def get_job(
        self, job_id: str, headers: Mapping[str, str], request_type: RequestType | None = None
    ) -> Job:
        key = self._keyring.resolve(headers)
        job = await self._readable_job(job_id, key.id if key else None)
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
            key = self._keyring.resolve(headers)
            job = await self._readable_job(job_id, key.id if key else None)
        info = job.result.stored_output(index) if job.result is not None else None
        if info is None:
            raise NotFound(f"job {job_id} has no stored image {index}")
        return OutputStream(info, self._store.read_output(job.id, index))

    async def _live_job(self, job_id: str) -> Job:
        try:
            job = await self._store.get_job(job_id)
        except StoreUnavailable as exc:
            raise Unavailable("the job store is unavailable; try again") from exc
        if job is None or job.is_expired(self._clock()):
            raise NotFound("job not found")
        return job

    async def _readable_job(self, job_id: str, key_id: str | None) -> Job:
        """The job, if this caller may read it; otherwise exactly as if it did not exist."""
        job = await self._live_job(job_id)
        if job.owner_key_id is not None and job.owner_key_id != key_id:
            raise NotFound("job not found")
        return job
