"""Multipart bodies as the OpenAI and Stability adapters send them: text fields, then file
parts streamed from disk, names and filenames escaped as browsers and httpx do."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack

import aiohttp

from grpc_server.providers.base import ImageInput


def text_form(fields: Mapping[str, str]) -> aiohttp.FormData:
    """A multipart form (even with no file part to come) holding these text fields, in order."""
    form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(form_quote(name), value)
    return form


def add_file(form: aiohttp.FormData, files: ExitStack, part: str, image: ImageInput) -> None:
    """A file part with its filename and content type, streamed from disk when the form is
    sent (the file stays open until `files` closes): an edit may carry 16 inputs of 50 MB."""
    # An open file object makes aiohttp stream the part from disk in chunks.
    stream = files.enter_context(image.path.open("rb"))
    form.add_field(part, stream, filename=form_quote(image.filename), content_type=image.content_type)


def form_quote(value: str) -> str:
    """Escape a multipart name or filename as httpx and browsers do (HTML5 form encoding):
    `"` and control characters as %XX, the rest as UTF-8. aiohttp's own quoting would
    percent-encode spaces and non-ASCII too."""
    return "".join(f"%{ord(c):02X}" if c == '"' or ord(c) < 0x20 or c == "\x7f" else c for c in value)
