"""Property-based: whatever JSON or multipart body a client sends, the real bridge (in front
of the real gRPC server) answers below 500, and every 4xx is the error object."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpc_server.config import DispatcherSettings
from grpc_server.server import AsyncGateServer
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.json_body import EMBEDDING_FIELDS, GENERATION_FIELDS
from rest_bridge.serving import BridgeRunner, start_bridge
from tests.conftest import fast_config as server_fast_config

EDITS = "/v1/async/images/edits"
GENERATIONS = "/v1/async/images/generations"
EMBEDDINGS = "/v1/async/embeddings"
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


class BackgroundStack:
    """Server and bridge on an event loop of their own thread, so that Hypothesis can drive
    them from plain synchronous test functions."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: AsyncGateServer | None = None
        self._runner: BridgeRunner | None = None
        self.port = 0

    def __enter__(self) -> BackgroundStack:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(60)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _start(self) -> int:
        # Nothing runs the accepted jobs: only the answers to submits matter here.
        self._server = AsyncGateServer(
            server_fast_config(self._data_dir, dispatcher=DispatcherSettings(concurrency=0))
        )
        port = await self._server.start()
        config = BridgeConfig(grpc_target=f"127.0.0.1:{port}", port=0)
        self._runner = await start_bridge(create_app(config), config)
        bound: int = self._runner.addresses[0][1]
        return bound

    async def _stop(self) -> None:
        assert self._runner is not None and self._server is not None
        await self._runner.cleanup()
        await self._server.stop(grace=0)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundStack]:
    with BackgroundStack(tmp_path_factory.mktemp("fuzz")) as stack:
        yield stack


def assert_answered(status: int, body: bytes) -> None:
    assert status < 500, body[:2000]
    if status >= 400:
        error: dict[str, Any] = json.loads(body)
        assert error["status_code"] == status and error["error"]["message"], error


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["local/placeholder", "local/hash", "x/y", "256x256", "b64_json", "base64"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(sorted({*GENERATION_FIELDS, *EMBEDDING_FIELDS, "input"})) | st.text(max_size=10)
json_objects = st.dictionaries(field_names, json_values, max_size=8)


@FUZZ
@given(path=st.sampled_from([GENERATIONS, EMBEDDINGS]), doc=json_objects | json_values)
def test_any_json_document_is_answered_below_500(bridge: BackgroundStack, path: str, doc: Any) -> None:
    body = json.dumps(doc, allow_nan=True).encode()  # NaN, Infinity and \ud800 escapes included
    assert_answered(*bridge.post(path, body, "application/json"))


@FUZZ
@given(
    path=st.sampled_from([GENERATIONS, EMBEDDINGS]),
    doc=json_objects,
    cut=st.integers(min_value=0, max_value=200),
    junk=st.binary(max_size=8),
)
def test_any_damaged_json_bytes_are_answered_below_500(
    bridge: BackgroundStack, path: str, doc: Any, cut: int, junk: bytes
) -> None:
    body = json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert_answered(*bridge.post(path, body[:cut] + junk + body[cut:], "application/json"))


part_names = st.sampled_from(
    [
        b"model",
        b"type",
        b"prompt",
        b"n",
        b"size",
        b"seed",
        b"stream",
        b"image",
        b"image[]",
        b"mask",
        b"fallbacks",
    ]
) | st.binary(max_size=10)
charsets = st.sampled_from(
    ["", "; charset=utf-8", "; charset=utf-7", "; charset=utf-16", "; charset=rot13", "; charset=x"]
)
parts = st.tuples(
    part_names,
    st.none() | st.binary(max_size=12),  # filename
    st.none() | st.binary(max_size=16) | charsets.map(lambda c: f"text/plain{c}".encode()),
    st.binary(max_size=64) | st.sampled_from([b"local/pillow", b"1", b"true", b"256x256", b"\x89PNG"]),
)


def multipart(items: list[tuple[bytes, bytes | None, bytes | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content_type, value in items:
        disposition = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        headers = disposition + (b"\r\nContent-Type: " + content_type if content_type is not None else b"")
        out += b"--XYZ\r\n" + headers + b"\r\n\r\n" + value + b"\r\n"
    return out + b"--XYZ--\r\n"


@FUZZ
@given(items=st.lists(parts, max_size=6))
def test_any_multipart_form_is_answered_below_500(
    bridge: BackgroundStack, items: list[tuple[bytes, bytes | None, bytes | None, bytes]]
) -> None:
    assert_answered(*bridge.post(EDITS, multipart(items), "multipart/form-data; boundary=XYZ"))


@FUZZ
@given(body=st.binary(max_size=300), boundary=st.sampled_from(["XYZ", "", "a b", "\u00e9"]))
def test_any_bytes_as_a_multipart_form_are_answered_below_500(
    bridge: BackgroundStack, body: bytes, boundary: str
) -> None:
    content_type = f"multipart/form-data; boundary={boundary}".encode().decode("latin-1")
    assert_answered(*bridge.post(EDITS, b"--XYZ\r\n" + body, content_type))
