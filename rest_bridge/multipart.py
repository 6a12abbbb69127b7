"""Reads a multipart form (image edits, image variations) part by part into a typed request.

File parts go to a PartSink as they are read, chunk by chunk (an edit's upload streams them
on to the server; a unary request collects them); text fields are typed into the request
message as they arrive (they are small, and bounded). Body limits are enforced as bytes
arrive, so an oversized body is answered 413 as soon as it crosses the limit.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
import aiohttp.multipart
from aiohttp import BodyPartReader, MultipartReader, web

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.config import BridgeConfig
from rest_bridge.disposition import name_and_filename
from rest_bridge.errors import BridgeError
from rest_bridge.form import TypedForm
from rest_bridge.text import is_utf8

T = TypeVar("T")
Send = Callable[[pb.UploadImageEditJobRequest], Awaitable[None]]


@dataclass(frozen=True)
class FileFields:
    """An operation's file fields: each one's role, and those given at most once."""

    roles: Mapping[str, int]
    single: frozenset[str]


EDIT_FILES = FileFields(
    {
        "image": pb.UPLOAD_FILE_ROLE_IMAGE,
        "image[]": pb.UPLOAD_FILE_ROLE_IMAGE,
        "mask": pb.UPLOAD_FILE_ROLE_MASK,
    },
    single=frozenset({"mask"}),
)
VARIATION_FILES = FileFields({"image": pb.UPLOAD_FILE_ROLE_IMAGE}, single=frozenset({"image"}))


class PartSink(Protocol):
    """Where the file parts of a form go as they are read."""

    async def file(self, role: int, filename: str, content_type: str) -> None: ...

    async def chunk(self, data: bytes) -> None: ...


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


async def read_form(
    reader: MultipartReader,
    config: BridgeConfig,
    form: TypedForm[Any],
    files: FileFields,
    sink: PartSink,
) -> None:
    """Every part of the form: text fields typed into `form`, files to `sink` with their role."""
    budget = _Budget(config.max_body_bytes)
    seen: set[str] = set()
    while (part := await _parse(reader.next())) is not None:
        if not isinstance(part, BodyPartReader):
            raise _malformed("nested multipart bodies are not supported")
        name, filename = _disposition(part)
        if not name:
            raise _malformed("a part has no name")
        if name in files.single and name in seen:
            raise BridgeError(400, f"{name} was given more than once (expected once)", name)
        seen.add(name)
        if name in files.roles:
            await _read_file(part, name, files.roles[name], filename, config, budget, sink)
        elif filename is not None:
            expected = " or ".join(files.roles)
            raise BridgeError(400, f"unexpected file field {name!r} (expected {expected})", name)
        else:
            form.add(name, await _read_text(part, name, config, budget))


class UploadSink:
    """File parts as UploadImageEditJob messages, sent on as they come."""

    def __init__(self, send: Send) -> None:
        self._send = send

    async def file(self, role: int, filename: str, content_type: str) -> None:
        upload = pb.UploadFile(role=role, filename=filename, content_type=content_type)  # type: ignore[arg-type]
        await self._send(pb.UploadImageEditJobRequest(file=upload))

    async def chunk(self, data: bytes) -> None:
        await self._send(pb.UploadImageEditJobRequest(chunk=data))


class CollectedFiles:
    """File parts collected whole, for a unary request (small bodies only)."""

    def __init__(self) -> None:
        self.files: list[tuple[int, common_pb.InputImage, list[bytes]]] = []

    async def file(self, role: int, filename: str, content_type: str) -> None:
        self.files.append((role, common_pb.InputImage(filename=filename, content_type=content_type), []))

    async def chunk(self, data: bytes) -> None:
        self.files[-1][2].append(data)

    def images(self, role: int) -> list[common_pb.InputImage]:
        found = []
        for file_role, image, chunks in self.files:
            if file_role == role:
                image.data = b"".join(chunks)
                found.append(image)
        return found


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
    if name is not None and not is_utf8(name):
        raise _malformed("a part name is not valid UTF-8")
    if filename is not None and not is_utf8(filename):
        raise BridgeError(400, f"the filename of field {name} is not valid UTF-8", name or "")
    return name, filename


async def _read_file(
    part: BodyPartReader,
    name: str,
    role: int,
    filename: str | None,
    config: BridgeConfig,
    budget: _Budget,
    sink: PartSink,
) -> None:
    param = "mask" if role == pb.UPLOAD_FILE_ROLE_MASK else "image"
    content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
    if not content_type.isascii():
        raise BridgeError(400, f"the Content-Type of field {name} is not ASCII", param)
    await sink.file(role, filename or "", content_type)
    while chunk := await _parse(part.read_chunk(config.upload_chunk_bytes)):
        budget.spend(len(chunk), param)
        await sink.chunk(chunk)


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
    if not is_utf8(text):  # a charset such as utf-7 can decode to lone surrogates
        raise BridgeError(400, f"field {name} is not valid text", name)
    return text
