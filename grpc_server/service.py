"""The JobService servicer: convert, call JobApi, convert back. No business logic."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from grpc_server import convert
from grpc_server.errors import AsyncGateError, InvalidArgument, Unavailable, to_rpc_status
from grpc_server.job_api import JobApi
from grpc_server.staging import Staging
from grpc_server.store.base import StoreUnavailable

log = logging.getLogger("asyncgate.service")

Response = TypeVar("Response")
Handler = Callable[..., Awaitable[Response]]

_ROLES = {pb.UPLOAD_FILE_ROLE_IMAGE: "image", pb.UPLOAD_FILE_ROLE_MASK: "mask"}


def headers_of(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """Request metadata as lower-cased text headers (binary entries skipped)."""
    return {
        key.lower(): value
        for key, value in (context.invocation_metadata() or ())
        if isinstance(value, str) and not key.endswith("-bin")
    }


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: AsyncGateError) -> NoReturn:
    """End the call with the error's status and google.rpc details."""
    await context.abort_with_status(to_rpc_status(error))  # type: ignore[attr-defined]  # not in grpc-stubs
    raise AssertionError("unreachable: abort_with_status raises")


def _aborts_on_errors(method: Handler[Response]) -> Handler[Response]:
    """Turn AsyncGateError into a gRPC status with details; anything else is INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Response:
        try:
            return await method(self, request, context)
        except AsyncGateError as error:
            await abort(context, error)
        except StoreUnavailable as exc:
            await abort(context, Unavailable(f"the job store is unavailable; try again ({exc})"))

    return wrapper


REFUSED_UPLOAD_DRAIN_BYTES = 64 * 1024 * 1024
"""How much of an upload refused midway is still read (and dropped) before the call ends."""


async def _discard_rest(messages: AsyncIterator[pb.UploadImageEditJobRequest]) -> None:
    """Read what the client is still sending, up to REFUSED_UPLOAD_DRAIN_BYTES, so that the
    refusal ends the call after the client's last write. A call ended while a grpc.aio client
    is still writing makes that write fail, and grpc.aio then reports INTERNAL "Internal error
    from Core" in place of the status we sent (grpc/grpc#36066): the bridge answered 500 for a
    file over the limit instead of 413, now and then. A client that sends more than the bound
    gets the refusal at once, as before."""
    drained = 0
    async for message in messages:
        drained += message.ByteSize()
        if drained > REFUSED_UPLOAD_DRAIN_BYTES:
            return


def _ttl(options: pb.JobOptions) -> int | None:
    return options.result_ttl_seconds if options.HasField("result_ttl_seconds") else None


class JobServicer(pb_grpc.JobServiceServicer):
    def __init__(self, api: JobApi) -> None:
        self._api = api

    def _staging(self) -> Staging:
        config = self._api.config
        return Staging(
            config.staging_dir, max_file_bytes=config.max_image_bytes, max_images=config.max_images
        )

    @_aborts_on_errors
    async def CreateImageEditJob(
        self, request: pb.CreateImageEditJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateImageEditJobResponse:
        edit = request.request
        async with self._staging() as staging:
            for image in edit.images:
                staging.add_file("image", image.filename, image.content_type, image.data)
            if edit.HasField("mask"):
                staging.add_file("mask", edit.mask.filename, edit.mask.content_type, edit.mask.data)
            job = await self._api.submit_image_edit(
                convert.image_edit_params(edit),
                staging.finish(),
                headers_of(context),
                stream=edit.stream,
                ttl_seconds=_ttl(request.options),
            )
        return pb.CreateImageEditJobResponse(job=convert.job_to_proto(job, self._api.capabilities))

    @_aborts_on_errors
    async def UploadImageEditJob(
        self,
        request_iterator: AsyncIterable[pb.UploadImageEditJobRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.UploadImageEditJobResponse:
        header: pb.UploadHeader | None = None
        messages = aiter(request_iterator)
        async with self._staging() as staging:
            try:
                async for message in messages:
                    part = message.WhichOneof("part")
                    if part == "chunk":
                        staging.write(message.chunk)
                    elif part == "file":
                        role = _ROLES.get(message.file.role)
                        if role is None:
                            raise InvalidArgument("file role must be IMAGE or MASK", "file.role")
                        staging.start_file(role, message.file.filename, message.file.content_type)  # type: ignore[arg-type]
                    elif part == "header":
                        if header is not None:
                            raise InvalidArgument("the upload header was sent twice", "header")
                        header = message.header
            except AsyncGateError:
                await _discard_rest(messages)
                raise
            if header is None:
                raise InvalidArgument("the upload carried no header", "header")
            job = await self._api.submit_image_edit(
                convert.image_edit_params(header.request),
                staging.finish(),
                headers_of(context),
                stream=header.request.stream,
                ttl_seconds=_ttl(header.options),
            )
        return pb.UploadImageEditJobResponse(job=convert.job_to_proto(job, self._api.capabilities))

    @_aborts_on_errors
    async def CreateImageGenerationJob(
        self, request: pb.CreateImageGenerationJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateImageGenerationJobResponse:
        job = await self._api.submit_image_generation(
            convert.image_generation_params(request.request),
            headers_of(context),
            stream=request.request.stream,
            ttl_seconds=_ttl(request.options),
        )
        return pb.CreateImageGenerationJobResponse(job=convert.job_to_proto(job, self._api.capabilities))

    async def CreateImageVariationJob(
        self, request: pb.CreateImageVariationJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateImageVariationJobResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "image variations are being wired in")
        raise AssertionError("unreachable: abort raises")

    @_aborts_on_errors
    async def CreateEmbeddingJob(
        self, request: pb.CreateEmbeddingJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateEmbeddingJobResponse:
        job = await self._api.submit_embedding(
            convert.embedding_params(request.request), headers_of(context), ttl_seconds=_ttl(request.options)
        )
        return pb.CreateEmbeddingJobResponse(job=convert.job_to_proto(job, self._api.capabilities))

    @_aborts_on_errors
    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetJobResponse:
        request_type = convert.REQUEST_TYPE_FROM_PROTO.get(request.request_type)
        job = await self._api.get_job(request.id, headers_of(context), request_type)
        return pb.GetJobResponse(job=convert.job_to_proto(job, self._api.capabilities))

    async def ReadJobOutput(
        self, request: pb.ReadJobOutputRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.ReadJobOutputResponse]:
        try:
            output = await self._api.open_output(
                request.job_id, request.index, headers_of(context), request.access_token
            )
        except AsyncGateError as error:
            await abort(context, error)
        first = True
        try:
            async for chunk in output.chunks:
                if first:
                    yield pb.ReadJobOutputResponse(
                        content_type=output.info.content_type, size_bytes=output.info.size_bytes, chunk=chunk
                    )
                    first = False
                else:
                    yield pb.ReadJobOutputResponse(chunk=chunk)
        except StoreUnavailable as exc:  # the store went away mid-stream: the client may retry
            await abort(context, Unavailable(f"the job store is unavailable; try again ({exc})"))
