"""The JobService servicer: convert, call JobApi, convert back. No business logic.

Every method is wrapped by grpc_server.errors.maps_errors: whatever it raises becomes a
status there, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import grpc

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from grpc_server import convert
from grpc_server.domain.errors import AsyncGateError, IdleTimeout, InvalidArgument
from grpc_server.domain.jobs import Job
from grpc_server.errors import maps_errors
from grpc_server.job_api import JobApi
from grpc_server.operations.base import Operation
from grpc_server.operations.registry import (
    BY_PROTO,
    EMBEDDING,
    IMAGE_EDIT,
    IMAGE_GENERATION,
    IMAGE_VARIATION,
)
from grpc_server.staging import Staging, StagingFile
from grpc_server.uploads import UploadBudget, UploadReader
from grpc_server.webhooks.admin import WebhookAdmin, WebhookRpcs

Context = grpc.aio.ServicerContext[Any, Any]

REPLAYED_METADATA = "idempotent-replayed"
"""Trailing metadata of a create answered with the job an earlier request (same request_id) made."""

_ROLES = {pb.UPLOAD_FILE_ROLE_IMAGE: "image", pb.UPLOAD_FILE_ROLE_MASK: "mask"}


def headers_of(context: Context) -> dict[str, str]:
    """Request metadata as lower-cased text headers (binary entries skipped)."""
    return {
        key.lower(): value
        for key, value in (context.invocation_metadata() or ())
        if isinstance(value, str) and not key.endswith("-bin")
    }


REFUSED_UPLOAD_DRAIN_BYTES = 64 * 1024 * 1024
"""How much of an upload refused midway is still read (and dropped) before the call ends."""


async def _discard_rest(reader: UploadReader[pb.UploadImageEditJobRequest]) -> None:
    """Read what the client is still sending, up to REFUSED_UPLOAD_DRAIN_BYTES, so that the
    refusal ends the call after the client's last write. A call ended while a grpc.aio client
    is still writing makes that write fail, and grpc.aio then reports INTERNAL "Internal error
    from Core" in place of the status we sent (grpc/grpc#36066): the bridge answered 500 for a
    file over the limit instead of 413, now and then. A client that sends more than the bound,
    or goes quiet, gets the refusal at once. Nothing drained is kept."""
    drained = 0
    try:
        while (message := await reader.next()) is not None:
            drained += message.ByteSize()
            if drained > REFUSED_UPLOAD_DRAIN_BYTES:
                return
    except AsyncGateError:
        return


def _ttl(options: pb.JobOptions) -> int | None:
    return options.result_ttl_seconds if options.HasField("result_ttl_seconds") else None


def _inline_images(
    images: Iterable[common_pb.InputImage], mask: common_pb.InputImage | None
) -> list[tuple[str, common_pb.InputImage]]:
    return [*(("image", image) for image in images), *([("mask", mask)] if mask is not None else [])]


@maps_errors
class JobServicer(WebhookRpcs, pb_grpc.JobServiceServicer):
    def __init__(self, api: JobApi, webhooks: WebhookAdmin | None = None) -> None:
        self._api = api
        self._webhooks = webhooks
        self._uploads = UploadBudget(api.config.max_staged_upload_bytes)

    def _staging(self) -> Staging:
        config = self._api.config
        return Staging(
            config.staging_dir, max_file_bytes=config.max_image_bytes, max_images=config.max_images
        )

    async def _create(
        self,
        operation: Operation[Any, Any],
        request: Any,
        options: pb.JobOptions,
        context: Context,
        files: list[tuple[str, common_pb.InputImage]] | None = None,
    ) -> Job:
        """A Create RPC: the caller checked first, then the inline files staged, then submit."""
        headers = headers_of(context)
        self._api.caller(headers)
        params = operation.params_from_proto(request)
        async with self._staging() as staging:
            for role, image in files or []:
                staging.add_file(role, image.filename, image.content_type, image.data)  # type: ignore[arg-type]
            return await self._submit(operation, params, staging.finish(), headers, request, options, context)

    async def _submit(
        self,
        operation: Operation[Any, Any],
        params: Any,
        files: list[StagingFile],
        headers: dict[str, str],
        request: Any,
        options: pb.JobOptions,
        context: Context | None = None,
    ) -> Job:
        accepted = await self._api.submit(
            operation,
            params,
            files,
            headers,
            stream=operation.streams(request),
            ttl_seconds=_ttl(options),
            request_id=options.request_id,
            labels=dict(options.labels),
            webhook=options.webhook,
        )
        if accepted.replayed and context is not None:
            context.set_trailing_metadata(((REPLAYED_METADATA, "true"),))
        return accepted.job

    def _proto(self, job: Job) -> Any:
        return convert.job_to_proto(job, self._api.capabilities)

    async def CreateImageEditJob(
        self, request: pb.CreateImageEditJobRequest, context: Context
    ) -> pb.CreateImageEditJobResponse:
        edit = request.request
        files = _inline_images(edit.images, edit.mask if edit.HasField("mask") else None)
        job = await self._create(IMAGE_EDIT, edit, request.options, context, files)
        return pb.CreateImageEditJobResponse(job=self._proto(job))

    async def UploadImageEditJob(
        self, request_iterator: AsyncIterable[pb.UploadImageEditJobRequest], context: Context
    ) -> pb.UploadImageEditJobResponse:
        headers = headers_of(context)
        reader = UploadReader(
            aiter(request_iterator), self._uploads, self._api.config.upload_idle_timeout_seconds
        )
        header: pb.UploadHeader | None = None
        try:
            async with self._staging() as staging:
                try:
                    self._api.caller(headers)  # before any byte is staged
                    while (message := await reader.next()) is not None:
                        header = self._take_upload_part(message, staging, reader, header)
                except AsyncGateError as refused:
                    reader.release()
                    if not isinstance(refused, IdleTimeout):  # an idle client sends nothing more
                        await _discard_rest(reader)
                    raise
                if header is None:
                    raise InvalidArgument("the upload carried no header", "header")
                params = IMAGE_EDIT.params_from_proto(header.request)
                job = await self._submit(
                    IMAGE_EDIT, params, staging.finish(), headers, header.request, header.options, context
                )
        finally:
            reader.release()
        return pb.UploadImageEditJobResponse(job=self._proto(job))

    @staticmethod
    def _take_upload_part(
        message: pb.UploadImageEditJobRequest,
        staging: Staging,
        reader: UploadReader[pb.UploadImageEditJobRequest],
        header: pb.UploadHeader | None,
    ) -> pb.UploadHeader | None:
        """One message of an upload; the header, once it has come."""
        part = message.WhichOneof("part")
        if part == "chunk":
            reader.hold(len(message.chunk), "image")
            staging.write(message.chunk)
        elif part == "file":
            role = _ROLES.get(message.file.role)
            if role is None:
                raise InvalidArgument("file role must be IMAGE or MASK", "file.role")
            staging.start_file(role, message.file.filename, message.file.content_type)  # type: ignore[arg-type]
        elif part == "header":
            if header is not None:
                raise InvalidArgument("the upload header was sent twice", "header")
            return message.header
        return header

    async def CheckCaller(self, request: pb.CheckCallerRequest, context: Context) -> pb.CheckCallerResponse:
        self._api.check_caller(headers_of(context), request.model.strip() or None)
        return pb.CheckCallerResponse()

    async def CreateImageGenerationJob(
        self, request: pb.CreateImageGenerationJobRequest, context: Context
    ) -> pb.CreateImageGenerationJobResponse:
        job = await self._create(IMAGE_GENERATION, request.request, request.options, context)
        return pb.CreateImageGenerationJobResponse(job=self._proto(job))

    async def CreateImageVariationJob(
        self, request: pb.CreateImageVariationJobRequest, context: Context
    ) -> pb.CreateImageVariationJobResponse:
        variation = request.request
        files = _inline_images([variation.image] if variation.HasField("image") else [], None)
        job = await self._create(IMAGE_VARIATION, variation, request.options, context, files)
        return pb.CreateImageVariationJobResponse(job=self._proto(job))

    async def CreateEmbeddingJob(
        self, request: pb.CreateEmbeddingJobRequest, context: Context
    ) -> pb.CreateEmbeddingJobResponse:
        job = await self._create(EMBEDDING, request.request, request.options, context)
        return pb.CreateEmbeddingJobResponse(job=self._proto(job))

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.GetJobResponse:
        operation = BY_PROTO.get(request.request_type)
        if operation is None and request.request_type:
            raise InvalidArgument(
                f"invalid request_type value: {request.request_type} (not a known enum number)",
                "request_type",
            )
        # The same answer object for every poll of an ended job (JobApi.poll): never changed after.
        return await self._api.poll(
            request.id,
            headers_of(context),
            operation.request_type if operation else None,
            self._get_job_answer,
        )

    def _get_job_answer(self, job: Job) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=self._proto(job))

    async def ReadJobOutput(
        self, request: pb.ReadJobOutputRequest, context: Context
    ) -> AsyncIterator[pb.ReadJobOutputResponse]:
        output = await self._api.open_output(
            request.job_id, request.index, headers_of(context), request.access_token
        )
        first = True
        async for chunk in output.chunks:
            if first:
                yield pb.ReadJobOutputResponse(
                    content_type=output.info.content_type, size_bytes=output.info.size_bytes, chunk=chunk
                )
                first = False
            else:
                yield pb.ReadJobOutputResponse(chunk=chunk)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.CancelJobResponse:
        job = await self._api.cancel_job(request.id, headers_of(context))
        return pb.CancelJobResponse(job=self._proto(job))

    async def RetryJob(self, request: pb.RetryJobRequest, context: Context) -> pb.RetryJobResponse:
        job = await self._api.retry_job(request.id, headers_of(context))
        return pb.RetryJobResponse(job=self._proto(job))

    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Context) -> pb.DeleteJobResponse:
        await self._api.delete_job(request.id, headers_of(context))
        return pb.DeleteJobResponse()

    async def WaitJob(self, request: pb.WaitJobRequest, context: Context) -> pb.WaitJobResponse:
        timeout = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else None
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = remaining if timeout is None else min(timeout, remaining)
        job = await self._api.wait_job(request.id, headers_of(context), timeout)
        return pb.WaitJobResponse(job=self._proto(job))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.WatchJobResponse]:
        async for job in self._api.watch_job(request.id, headers_of(context), request.after_change_number):
            yield pb.WatchJobResponse(job=self._proto(job))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        page = await self._api.list_jobs(convert.list_query(request), headers_of(context))
        return pb.ListJobsResponse(
            jobs=[self._proto(job) for job in page.jobs], next_page_token=page.next_page_token
        )
