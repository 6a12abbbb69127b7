"""Bad input through the real bridge is a 400 (or 404 for an unknown resource) naming the
field, never a 500: every parser (JSON, multipart) and every path and query parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Stack
from tests.rest import EDITS

GENERATIONS = "/v1/async/images/generations"
EMBEDDINGS = "/v1/async/embeddings"
JOB_ID = "3b241101-e2bb-4255-8caf-4136c566a962"

JSON_BODIES: list[tuple[str, str, bytes, str, str]] = [
    # (case, path, body, param, words of the message)
    (
        "invalid utf-8 in a string",
        GENERATIONS,
        b'{"model": "local/placeholder", "prompt": "\xff"}',
        "",
        "UTF-8",
    ),
    ("lone surrogate escape", GENERATIONS, b'{"prompt": "\\ud800"}', "prompt", "surrogate"),
    ("surrogate in an extra key", GENERATIONS, b'{"x": {"\\udfff": 1}}', "x", "surrogate"),
    ("nested thousands deep", GENERATIONS, b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "", "nested"),
    ("nested past the limit", EMBEDDINGS, b'{"x": ' + b"[" * 40 + b"]" * 40 + b"}", "x", "nested"),
    ("NaN", GENERATIONS, b'{"n": NaN}', "n", "NaN"),
    ("Infinity in an extra field", GENERATIONS, b'{"weight": -Infinity}', "weight", "infinite"),
    ("a float past double range", EMBEDDINGS, b'{"dimensions": 1e400}', "dimensions", "infinite"),
    ("n as 1e30", GENERATIONS, b'{"model": "local/placeholder", "n": 1e30}', "n", "expected an integer"),
    ("n past int32", GENERATIONS, b'{"model": "local/placeholder", "n": 1099511627776}', "n", "out of range"),
    ("seed past int64", GENERATIONS, b'{"seed": 99999999999999999999}', "seed", "out of range"),
    ("huge integer in an extra field", GENERATIONS, b'{"extra": ' + b"9" * 400 + b"}", "extra", "range"),
    ("integer too long to convert", GENERATIONS, b'{"n": ' + b"9" * 5000 + b"}", "", "invalid JSON"),
    (
        "duplicate key",
        GENERATIONS,
        b'{"model": "local/placeholder", "model": "x/y"}',
        "model",
        "more than once",
    ),
    ("duplicate nested key", EMBEDDINGS, b'{"x": {"a": 1, "a": 2}}', "a", "more than once"),
    ("wrong type", EMBEDDINGS, b'{"model": 5}', "model", "expected a string"),
    (
        "token past int64",
        EMBEDDINGS,
        b'{"model": "local/hash", "input": [18446744073709551616]}',
        "input",
        "range",
    ),
    ("not an object", EMBEDDINGS, b"[1, 2]", "", "JSON object"),
    ("utf-16", EMBEDDINGS, '{"model": "a/b"}'.encode("utf-16"), "", "UTF-8"),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "param", "words"), JSON_BODIES, ids=[c[0] for c in JSON_BODIES]
)
async def test_json_refusals(stack: Stack, case: str, path: str, body: bytes, param: str, words: str) -> None:
    async with stack.http.post(path, data=body, headers={"Content-Type": "application/json"}) as response:
        error: dict[str, Any] = await response.json()
        assert response.status == 400, error
    assert error["error"].get("param", "") == param
    assert words in error["error"]["message"]
    assert stack.stored_jobs() == 0


def _multipart(*parts: bytes) -> bytes:
    return b"".join(b"--XYZ\r\n" + part + b"\r\n" for part in parts) + b"--XYZ--\r\n"


def _field(name: bytes, value: bytes) -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value


def _file(name: bytes, filename: bytes, content_type: bytes = b"image/png") -> bytes:
    return (
        b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type + b"\r\n\r\n\x89PNG"
    )


MODEL = _field(b"model", b"local/pillow")
MULTIPART_BODIES: list[tuple[str, bytes, str, str]] = [
    ("invalid utf-8 field name", _multipart(MODEL, _field(b"a\xffb", b"v")), "", "UTF-8"),
    (
        "invalid utf-8 field value",
        _multipart(MODEL, _field(b"prompt", b"\xff\xfe")),
        "prompt",
        "not valid text",
    ),
    ("invalid utf-8 extra value", _multipart(MODEL, _field(b"extra", b"\xc3")), "extra", "not valid text"),
    ("invalid utf-8 filename", _multipart(MODEL, _file(b"image", b"a\xff.png")), "image", "UTF-8"),
    (
        "non-ascii content type",
        _multipart(MODEL, _file(b"image", b"a.png", b"image/\xc3\xa9")),
        "image",
        "ASCII",
    ),
    (
        "bad filename* encoding",
        _multipart(MODEL, b"Content-Disposition: form-data; name=\"image\"; filename*=UTF-8''%FF\r\n\r\nx"),
        "",
        "failed to parse multipart form",
    ),
    ("model twice", _multipart(MODEL, MODEL), "model", "more than once"),
    ("n twice", _multipart(MODEL, _field(b"n", b"1"), _field(b"n", b"2")), "n", "more than once"),
    (
        "mask twice",
        _multipart(MODEL, _file(b"mask", b"m.png"), _file(b"mask", b"m.png")),
        "mask",
        "more than once",
    ),
    ("n past int32", _multipart(MODEL, _field(b"n", str(2**40).encode())), "n", "out of range"),
]


@pytest.mark.parametrize(
    ("case", "body", "param", "words"), MULTIPART_BODIES, ids=[c[0] for c in MULTIPART_BODIES]
)
async def test_multipart_refusals(stack: Stack, case: str, body: bytes, param: str, words: str) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=XYZ"}
    async with stack.http.post(EDITS, data=body, headers=headers) as response:
        error: dict[str, Any] = await response.json()
        assert response.status == 400, error
    assert error["error"].get("param", "") == param
    assert words in error["error"]["message"]
    assert stack.stored_jobs() == 0
    await stack.no_staged_files()


@pytest.mark.parametrize(
    "index", ["2147483648", "99999999999999999999999", "-1", "+1", "1_0", "%D9%A5", "%FF", " 1"]
)
async def test_a_file_index_that_is_no_int32_is_404_naming_index(stack: Stack, index: str) -> None:
    async with stack.http.get(f"/v1/async/files/{JOB_ID}/{index}?token=t") as response:
        error: dict[str, Any] = await response.json()
        assert response.status == 404, error
    assert error["error"]["param"] == "index"


async def test_a_repeated_token_is_400_naming_it(stack: Stack) -> None:
    async with stack.http.get(f"/v1/async/files/{JOB_ID}/0?token=a&token=b") as response:
        error: dict[str, Any] = await response.json()
        assert response.status == 400, error
    assert error["error"]["param"] == "token" and "more than once" in error["error"]["message"]


@pytest.mark.parametrize("job_id", ["%FF", "%ED%A0%80", "a" * 2000])
async def test_an_odd_job_id_is_404(stack: Stack, job_id: str) -> None:
    for path in (f"{EDITS}/{job_id}", f"{EMBEDDINGS}/{job_id}"):
        async with stack.http.get(path) as response:
            assert response.status == 404, await response.text()
    async with stack.http.get(f"/v1/async/files/{job_id}/0?token=t") as response:
        assert response.status == 403, await response.text()  # the token is checked first
