"""A large upload from a caller the server would refuse is answered before its body is read:
with `require_virtual_key`, a keyless 50 MB edit gets its 401 after a few KB have been sent."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tests.conftest import StackFactory

BODY_BYTES = 50 * 1024 * 1024
SENT_BYTES = 64 * 1024


async def _answer_after_a_prefix(base_url: str, headers: dict[str, str]) -> bytes:
    """Send the request line, headers and only the first SENT_BYTES of a BODY_BYTES body;
    return the status line the bridge answers with (waiting for it, bounded by the test)."""
    where = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    boundary = "x-boundary"
    head = [
        "POST /v1/async/images/edits HTTP/1.1",
        f"Host: {where.hostname}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {BODY_BYTES}",
        *(f"{name}: {value}" for name, value in headers.items()),
        "",
        "",
    ]
    writer.write("\r\n".join(head).encode())
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'.encode()
    writer.write(part + b"\0" * (SENT_BYTES - len(part)))
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return status_line


async def test_a_keyless_large_upload_is_refused_before_its_body(make_stack: StackFactory) -> None:
    stack = await make_stack(require_virtual_key=True)
    status_line = await _answer_after_a_prefix(stack.base_url, {})
    assert status_line.startswith(b"HTTP/1.1 401"), status_line
    assert stack.staged_files() == [] and stack.stored_jobs() == 0


async def test_an_unknown_key_is_refused_before_the_body_too(make_stack: StackFactory) -> None:
    stack = await make_stack()
    status_line = await _answer_after_a_prefix(stack.base_url, {"x-bf-vk": "sk-bf-nobody"})
    assert status_line.startswith(b"HTTP/1.1 400"), status_line
