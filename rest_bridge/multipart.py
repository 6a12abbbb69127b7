"""Streams a multipart image edit form into the gRPC upload, one chunk at a time.

File parts are forwarded as they are read (never held whole); text fields are
collected (they are small, and bounded) and sent as the upload header at the
end. Body limits are enforced as bytes arrive, so an oversized body is answered
413 as soon as it crosses the limit.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import aiohttp.multipart
from aiohttp import BodyPartReader, MultipartReader, web

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.config import BridgeConfig
from rest_bridge.disposition import name_and_filename
from rest_bridge.errors import BridgeError
from rest_bridge.form import FILE_FIELDS, ImageEditForm

T = TypeVar("T")
Send = Callable[[pb.UploadImageEditJobRequest], Awaitable[None]]

_ROLE = {
    "image": pb.UPLOAD_FILE_ROLE_IMAGE,
    "image[]": pb.UPLOAD_FILE_ROLE_IMAGE,
    "mask": pb.UPLOAD_FILE_ROLE_MASK,
}


def _malformed(detail: object) -> BridgeError:
    return BridgeError(400, f"failed to parse multipart form: {detail}")


class _Budget:
    """Counts body bytes against the limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def spend(self, n: int, param: str) -> None:
        self.used += n
        if self.used > self.limit:
            raise BridgeError(413, f"request body larger than the limit of {self.limit} bytes", param)


async def open_form(request: web.Request, config: BridgeConfig) -> MultipartReader:
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise BridgeError(413, f"request body larger than the limit of {config.max_body_bytes} bytes")
    if request.content_type != "multipart/form-data":
        raise _malformed(f"expected multipart/form-data, got {request.content_type or 'no content type'}")
    return await _parse(request.multipart())


async def forward_form(
    reader: MultipartReader, config: BridgeConfig, send: Send, options: pb.JobOptions
) -> None:
    """Send every part of the form, then the header with the text fields."""
    budget = _Budget(config.max_body_bytes)
    form = ImageEditForm()
    masks = 0
    while (part := await _parse(reader.next())) is not None:
        if not isinstance(part, BodyPartReader):
            raise _malformed("nested multipart bodies are not supported")
        name, filename = _disposition(part)
        if not name:
            raise _malformed("a part has no name")
        if name == "mask" and (masks := masks + 1) > 1:
            raise BridgeError(400, "mask was given more than once (expected once)", "mask")
        if name in FILE_FIELDS:
            await _forward_file(part, name, filename, config, budget, send)
        elif filename is not None:
            raise BridgeError(400, f"unexpected file field {name!r} (expected image, image[] or mask)", name)
        else:
            form.add(name, await _read_text(part, name, config, budget))
    await send(pb.UploadImageEditJobRequest(header=pb.UploadHeader(request=form.request, options=options)))


async def _parse(step: Awaitable[T]) -> T:
    """Await one step of the multipart parser; whatever it raises means a malformed body."""
    try:
        return await step
    except BridgeError:
        raise
    except Exception as exc:  # the parser raises ValueError, AssertionError, HttpProcessingError, ...
        raise _malformed(exc) from exc


def _disposition(part: BodyPartReader) -> tuple[str | None, str | None]:
    """The part's name and filename (BodyPartReader.name and .filename would parse the header
    once each), refused unless they are text: aiohttp reads header bytes that are not UTF-8
    as lone surrogates, which no proto string field can hold."""
    try:
        with warnings.catch_warnings():  # a malformed header parses to no name: refused below
            warnings.simplefilter("ignore", aiohttp.multipart.BadContentDispositionHeader)
            name, filename = name_and_filename(part.headers.get(aiohttp.hdrs.CONTENT_DISPOSITION))
    except ValueError as exc:  # filename*= with a bad charset or percent-encoding
        raise _malformed(f"invalid Content-Disposition header: {exc}") from None
    if name is not None and not _is_utf8(name):
        raise _malformed("a part name is not valid UTF-8")
    if filename is not None and not _is_utf8(filename):
        raise BridgeError(400, f"the filename of field {name} is not valid UTF-8", name or "")
    return name, filename


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _forward_file(
    part: BodyPartReader, name: str, filename: str | None, config: BridgeConfig, budget: _Budget, send: Send
) -> None:
    param = "mask" if name == "mask" else "image"
    content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
    if not content_type.isascii():
        raise BridgeError(400, f"the Content-Type of field {name} is not ASCII", param)
    await send(
        pb.UploadImageEditJobRequest(
            file=pb.UploadFile(role=_ROLE[name], filename=filename or "", content_type=content_type)
        )
    )
    while chunk := await _parse(part.read_chunk(config.upload_chunk_bytes)):
        budget.spend(len(chunk), param)
        await send(pb.UploadImageEditJobRequest(chunk=chunk))


async def _read_text(part: BodyPartReader, name: str, config: BridgeConfig, budget: _Budget) -> str:
    data = bytearray()
    while chunk := await _parse(part.read_chunk(64 * 1024)):
        budget.spend(len(chunk), name)
        data += chunk
        if len(data) > config.max_field_bytes:
            raise BridgeError(413, f"field {name} is larger than {config.max_field_bytes} bytes", name)
    try:
        text = data.decode(part.get_charset(default="utf-8"))
    except (UnicodeDecodeError, LookupError) as exc:
        raise BridgeError(400, f"field {name} is not valid text: {exc}", name) from exc
    if not _is_utf8(text):  # a charset such as utf-7 can decode to lone surrogates
        raise BridgeError(400, f"field {name} is not valid text", name)
    return text


class UnaryRequest:
    """Collects what forward_form sends into one CreateImageEditJobRequest.

    For small bodies one unary call costs far less than a client-streaming call
    (one round trip, one message); the body is small, so holding it is cheap.
    """

    def __init__(self) -> None:
        self.request = pb.CreateImageEditJobRequest()
        self._files: list[tuple[pb.UploadFile, list[bytes]]] = []

    async def send(self, message: pb.UploadImageEditJobRequest) -> None:
        part = message.WhichOneof("part")
        if part == "file":
            self._files.append((message.file, []))
        elif part == "chunk":
            self._files[-1][1].append(message.chunk)
        elif part == "header":
            self.request.request.MergeFrom(message.header.request)
            self.request.options.CopyFrom(message.header.options)

    def build(self) -> pb.CreateImageEditJobRequest:
        edit = self.request.request
        for file, chunks in self._files:
            image = common_pb.InputImage(
                data=b"".join(chunks), filename=file.filename, content_type=file.content_type
            )
            if file.role == pb.UPLOAD_FILE_ROLE_MASK:
                edit.mask.CopyFrom(image)
            else:
                edit.images.append(image)
        return self.request
