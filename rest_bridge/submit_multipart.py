"""The multipart submits: image edits (streamed to the server when large) and image variations.

An edit whose body is small goes as one unary CreateImageEditJob (one round trip, one
message; holding a small body is cheap); a large or unsized one streams into
UploadImageEditJob as it is read, never held whole. A variation takes one image, as
providers do, and always goes unary.
"""

from __future__ import annotations

import asyncio

import grpc
from aiohttp import web

from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import (
    CONFIG,
    JOBS,
    accepted_response,
    created_response,
    forwarded_metadata,
    job_options,
    was_replayed,
)
from rest_bridge.form import image_edit_form, image_variation_form
from rest_bridge.multipart import (
    EDIT_FILES,
    VARIATION_FILES,
    CollectedFiles,
    UploadSink,
    open_form,
    read_form,
)


async def submit_image_edit(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    options = job_options(request)
    unary = request.content_length is not None and request.content_length <= config.unary_max_body_bytes
    if not unary:
        # The caller is checked before a large body is read: a refused key costs no upload.
        await request.app[JOBS].CheckCaller(
            pb.CheckCallerRequest(), metadata=metadata, timeout=config.grpc_timeout_seconds
        )
    reader = await open_form(request, config)
    form = image_edit_form()
    if unary:
        files = CollectedFiles()
        await read_form(reader, config, form, EDIT_FILES, files)
        form.request.images.extend(files.images(pb.UPLOAD_FILE_ROLE_IMAGE))
        if masks := files.images(pb.UPLOAD_FILE_ROLE_MASK):
            form.request.mask.CopyFrom(masks[0])
        return await created_response(
            request.app[JOBS].CreateImageEditJob(
                pb.CreateImageEditJobRequest(request=form.request, options=options),
                metadata=metadata,
                timeout=config.grpc_timeout_seconds,
            )
        )
    call = request.app[JOBS].UploadImageEditJob(None, metadata=metadata, timeout=config.grpc_timeout_seconds)

    async def send(message: pb.UploadImageEditJobRequest) -> None:
        try:
            await call.write(message)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            # The server ended the call while we still wrote: a refusal mid-upload that it
            # stopped reading (past grpc_server.service.REFUSED_UPLOAD_DRAIN_BYTES). The failed
            # write only says "Internal error from Core"; the call has the real status, unless
            # grpc.aio overwrote it with that (grpc/grpc#36066).
            await call
            raise

    try:
        await read_form(reader, config, form, EDIT_FILES, UploadSink(send))
        await send(
            pb.UploadImageEditJobRequest(header=pb.UploadHeader(request=form.request, options=options))
        )
        await call.done_writing()
        response: pb.UploadImageEditJobResponse = await call
    except BaseException:
        call.cancel()
        raise
    return accepted_response(response.job, await was_replayed(call))


async def submit_image_variation(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    reader = await open_form(request, config)
    form, files = image_variation_form(), CollectedFiles()
    await read_form(reader, config, form, VARIATION_FILES, files)
    if images := files.images(pb.UPLOAD_FILE_ROLE_IMAGE):
        form.request.image.CopyFrom(images[0])
    return await created_response(
        request.app[JOBS].CreateImageVariationJob(
            pb.CreateImageVariationJobRequest(request=form.request, options=job_options(request)),
            metadata=metadata,
            timeout=config.grpc_timeout_seconds,
        )
    )
