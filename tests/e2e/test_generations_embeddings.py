"""Image generations and embeddings through the REST bridge: the same envelope, TTL,
keys and validation as image edits, and their own result shapes."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import pytest

from grpc_server.config import ProviderSettings
from tests.conftest import KEY_A, Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.images import decode
from tests.rest import EDITS, edit_form, submit, wait_terminal

GENERATIONS = "/v1/async/images/generations"
EMBEDDINGS = "/v1/async/embeddings"


async def _post(stack: Stack, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with stack.http.post(path, json=body, headers=headers or {}) as response:
        return response.status, await response.json()


async def test_generation_completes_with_a_placeholder_image(stack: Stack) -> None:
    status, accepted = await _post(
        stack,
        GENERATIONS,
        {
            "model": "local/placeholder",
            "prompt": "a red fox",
            "n": 2,
            "size": "256x256",
            "response_format": "b64_json",
        },
    )
    assert status == 202 and list(accepted) == ["id", "status", "created_at"], accepted
    job = await wait_terminal(stack.http, accepted["id"], path=GENERATIONS)
    assert job["status"] == "completed", job
    result = job["result"]
    assert result["extra_fields"] == {
        "provider": "local",
        "model_requested": "placeholder",
        "request_type": "image_generation",
    }
    images = [decode(base64.b64decode(item["b64_json"])) for item in result["data"]]
    assert [i.size for i in images] == [(256, 256), (256, 256)]
    assert images[0].tobytes() != images[1].tobytes()  # n placeholders differ


async def test_generation_result_by_url(stack: Stack) -> None:
    _, accepted = await _post(stack, GENERATIONS, {"model": "local/placeholder", "prompt": "a boat"})
    job = await wait_terminal(stack.http, accepted["id"], path=GENERATIONS)
    async with stack.http.get(job["result"]["data"][0]["url"]) as response:
        assert response.status == 200
        assert decode(await response.read()).size == (256, 256)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_embeddings_as_floats(stack: Stack) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew"]
    _, accepted = await _post(stack, EMBEDDINGS, {"model": "local/hashing", "input": texts, "dimensions": 64})
    job = await wait_terminal(stack.http, accepted["id"], path=EMBEDDINGS)
    assert job["status"] == "completed", job
    result = job["result"]
    assert list(result) == ["object", "data", "model", "usage", "extra_fields"]
    assert result["object"] == "list" and result["model"] == "hashing"
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in result["data"]]
    assert all(
        len(v) == 64 and math.isclose(math.sqrt(sum(x * x for x in v)), 1, rel_tol=1e-5) for v in vectors
    )
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 0


async def test_embeddings_as_base64_are_little_endian_float32(stack: Stack) -> None:
    body = {"model": "local/hashing", "input": "hello world", "dimensions": 16}
    _, as_float = await _post(stack, EMBEDDINGS, body)
    _, as_b64 = await _post(stack, EMBEDDINGS, {**body, "encoding_format": "base64"})
    floats = (await wait_terminal(stack.http, as_float["id"], path=EMBEDDINGS))["result"]["data"][0][
        "embedding"
    ]
    encoded = (await wait_terminal(stack.http, as_b64["id"], path=EMBEDDINGS))["result"]["data"][0][
        "embedding"
    ]
    decoded = struct.unpack("<16f", base64.b64decode(encoded))
    assert [round(x, 6) for x in decoded] == [round(x, 6) for x in floats]


async def test_token_inputs(stack: Stack) -> None:
    _, accepted = await _post(stack, EMBEDDINGS, {"model": "local/hashing", "input": [[1, 2, 3], [1, 2, 4]]})
    job = await wait_terminal(stack.http, accepted["id"], path=EMBEDDINGS)
    assert len(job["result"]["data"]) == 2


REFUSALS: list[tuple[str, str, Any, str, str]] = [
    ("generation: malformed json", GENERATIONS, b"{not json", "", "invalid JSON body"),
    ("generation: not an object", GENERATIONS, [1, 2], "", "JSON object"),
    (
        "generation: n as text",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "n": "two"},
        "n",
        "invalid n value",
    ),
    (
        "generation: n as bool",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "n": True},
        "n",
        "invalid n value",
    ),
    (
        "generation: n too big",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "n": 11},
        "n",
        "invalid n value",
    ),
    (
        "generation: unknown size",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "size": "huge"},
        "size",
        "size",
    ),
    (
        "generation: unknown style",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "style": "noir"},
        "style",
        "style",
    ),
    (
        "generation: stream",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "stream": True},
        "stream",
        "stream is not supported for async image generations",
    ),
    ("generation: no prompt", GENERATIONS, {"model": "local/x"}, "prompt", "prompt is required"),
    ("generation: no model", GENERATIONS, {"prompt": "p"}, "model", "model is required"),
    (
        "generation: bad fallback",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "fallbacks": ["nope"]},
        "fallbacks",
        "fallbacks",
    ),
    (
        "generation: fallbacks not a list",
        GENERATIONS,
        {"model": "local/x", "prompt": "p", "fallbacks": "x/y"},
        "fallbacks",
        "fallbacks",
    ),
    ("generation: unconfigured provider", GENERATIONS, {"model": "nope/x", "prompt": "p"}, "model", "nope/x"),
    ("embedding: empty input", EMBEDDINGS, {"model": "local/x", "input": []}, "input", "input"),
    ("embedding: empty string", EMBEDDINGS, {"model": "local/x", "input": ""}, "input", "input"),
    ("embedding: missing input", EMBEDDINGS, {"model": "local/x"}, "input", "input"),
    ("embedding: mixed input", EMBEDDINGS, {"model": "local/x", "input": ["a", 1]}, "input", "invalid input"),
    (
        "embedding: bad encoding",
        EMBEDDINGS,
        {"model": "local/x", "input": "a", "encoding_format": "hex"},
        "encoding_format",
        "encoding_format",
    ),
    (
        "embedding: dimensions text",
        EMBEDDINGS,
        {"model": "local/x", "input": "a", "dimensions": "8"},
        "dimensions",
        "invalid dimensions",
    ),
    (
        "embedding: dimensions zero",
        EMBEDDINGS,
        {"model": "local/x", "input": "a", "dimensions": 0},
        "dimensions",
        "invalid dimensions",
    ),
]


@pytest.mark.parametrize(("case", "path", "body", "param", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusals_name_the_field(
    stack: Stack, case: str, path: str, body: Any, param: str, words: str
) -> None:
    if isinstance(body, bytes):
        async with stack.http.post(path, data=body, headers={"Content-Type": "application/json"}) as response:
            status, error = response.status, await response.json()
    else:
        status, error = await _post(stack, path, body)
    assert status == 400, error
    assert error.get("error", {}).get("param", "") == param
    assert words in error["error"]["message"]
    assert stack.stored_jobs() == 0


@pytest.mark.parametrize(
    ("submit_path", "poll_path"),
    [
        (EDITS, GENERATIONS),
        (EDITS, EMBEDDINGS),
        (GENERATIONS, EDITS),
        (GENERATIONS, EMBEDDINGS),
        (EMBEDDINGS, EDITS),
        (EMBEDDINGS, GENERATIONS),
    ],
)
async def test_operation_type_mismatch_in_every_direction(
    stack: Stack, submit_path: str, poll_path: str
) -> None:
    headers = {"x-bf-vk": KEY_A.value}
    if submit_path == EDITS:
        _, accepted = await submit(stack.http, edit_form(), headers)
    elif submit_path == GENERATIONS:
        _, accepted = await _post(stack, GENERATIONS, {"model": "local/x", "prompt": "p"}, headers)
    else:
        _, accepted = await _post(stack, EMBEDDINGS, {"model": "local/x", "input": "p"}, headers)
    async with stack.http.get(f"{poll_path}/{accepted['id']}", headers=headers) as response:
        assert response.status == 404
        assert (await response.json())["error"]["message"] == "operation type mismatch"
    async with stack.http.get(f"{poll_path}/{accepted['id']}") as response:  # not the owner: simply unknown
        assert response.status == 404
        assert (await response.json())["error"]["message"] == "job not found"


async def test_ttl_and_keys_apply_to_embeddings(stack: Stack) -> None:
    headers = {"x-bf-vk": KEY_A.value, "x-bf-async-job-result-ttl": "120"}
    _, accepted = await _post(stack, EMBEDDINGS, {"model": "local/x", "input": "p"}, headers)
    job = await wait_terminal(stack.http, accepted["id"], {"x-bf-vk": KEY_A.value}, path=EMBEDDINGS)
    assert job["status"] == "completed"
    async with stack.http.get(f"{EMBEDDINGS}/{accepted['id']}") as response:
        assert response.status == 404


async def test_unknown_fields_are_passed_as_extra_params(stack: Stack) -> None:
    body = {"model": "local/x", "prompt": "p", "guidance": 7.5, "style_preset": {"name": "film"}}
    _, accepted = await _post(stack, GENERATIONS, body)
    stored = await stack.server.store.get_job(accepted["id"])
    assert stored is not None and stored.params.extra_params == {
        "guidance": 7.5,
        "style_preset": {"name": "film"},
    }


async def test_capabilities_are_checked_at_submit_and_unsupported_entries_skipped(
    make_stack: StackFactory,
) -> None:
    async with FakeOpenAI(api_key=None) as fake:
        images_only = ProviderSettings(
            kind="openai-compatible", base_url=fake.base_url, operations=("image_generation",)
        )
        stack = await make_stack(providers={"compat": images_only})
        status, error = await _post(stack, EMBEDDINGS, {"model": "compat/bge", "input": "hello"})
        assert status == 400 and error["error"]["param"] == "model"
        assert "compat/bge" in error["error"]["message"]
        assert stack.stored_jobs() == 0

        body = {"model": "compat/bge", "input": "hello", "fallbacks": ["local/hashing"]}
        status, accepted = await _post(stack, EMBEDDINGS, body)
        assert status == 202
        job = await wait_terminal(stack.http, accepted["id"], path=EMBEDDINGS)
        assert job["status"] == "completed" and job["result"]["extra_fields"]["provider"] == "local"
        assert fake.requests == []  # the entry that cannot embed was skipped, not tried


async def test_a_json_number_too_long_to_convert_is_a_400_not_a_crash(stack: Stack) -> None:
    raw = b'{"model": "local/x", "prompt": "p", "n": ' + b"9" * 5000 + b"}"
    async with stack.http.post(
        GENERATIONS, data=raw, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        assert "invalid JSON body" in (await response.json())["error"]["message"]
    assert stack.stored_jobs() == 0
