"""Who may read a job (docs/rest-api.md §4), through the REST bridge."""

from __future__ import annotations

from typing import Any

import pytest

from grpc_server.config import VirtualKey
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.rest import EDITS, edit_form, submit, wait_terminal

UNKNOWN_ID = "3b241101-e2bb-4255-8caf-4136c566a962"


def _without_event_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "event_id": None, "error": {**body["error"], "event_id": None}}


async def _get(
    stack: Stack, job_id: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with stack.http.get(f"{EDITS}/{job_id}", headers=headers or {}) as response:
        return response.status, await response.json()


HEADER_FORMS = [
    pytest.param(lambda key: {"x-bf-vk": key}, id="x-bf-vk"),
    pytest.param(lambda key: {"Authorization": f"Bearer {key}"}, id="bearer"),
    pytest.param(lambda key: {"Authorization": f"bearer {key}"}, id="bearer-lowercase-scheme"),
    pytest.param(lambda key: {"x-api-key": key}, id="x-api-key"),
    pytest.param(lambda key: {"x-goog-api-key": key}, id="x-goog-api-key"),
]


@pytest.mark.parametrize("form", HEADER_FORMS)
async def test_each_header_form_binds_and_reads_with_the_same_key(stack: Stack, form: Any) -> None:
    status, accepted = await submit(stack.http, edit_form(), form(KEY_A.value))
    assert status == 202, accepted
    job = await wait_terminal(stack.http, accepted["id"], form(KEY_A.value))
    assert job["status"] == "completed"
    stored = await stack.server.store.get_job(accepted["id"])
    assert stored is not None and stored.owner_key_id == KEY_A.id  # the id, never the secret


async def test_the_prefix_is_case_insensitive(make_stack: StackFactory) -> None:
    shouty = VirtualKey(id="vk-shouty", value="SK-BF-shouty-secret")
    stack = await make_stack(virtual_keys=(shouty,))
    status, accepted = await submit(stack.http, edit_form(), {"x-api-key": shouty.value})
    assert status == 202, accepted
    stored = await stack.server.store.get_job(accepted["id"])
    assert stored is not None and stored.owner_key_id == shouty.id


@pytest.mark.parametrize(
    "reader",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"x-bf-vk": KEY_B.value}, id="other-key"),
        pytest.param({"Authorization": f"Bearer {KEY_B.value}"}, id="other-key-bearer"),
    ],
)
async def test_a_bound_job_is_unknown_to_anyone_else(stack: Stack, reader: dict[str, str]) -> None:
    _, accepted = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_A.value})
    status, body = await _get(stack, accepted["id"], reader)
    unknown_status, unknown = await _get(stack, UNKNOWN_ID, reader)
    assert status == unknown_status == 404
    assert _without_event_ids(body) == _without_event_ids(unknown)  # nothing tells them apart


async def test_a_job_without_key_is_public(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form())
    for headers in ({}, {"x-bf-vk": KEY_A.value}, {"x-bf-vk": KEY_B.value}):
        status, body = await _get(stack, accepted["id"], headers)
        assert status in (200, 202), body
        assert body["id"] == accepted["id"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"x-bf-vk": "sk-bf-nobody"}, id="x-bf-vk"),
        pytest.param({"Authorization": "Bearer sk-bf-nobody"}, id="bearer"),
        pytest.param({"x-goog-api-key": "sk-bf-nobody"}, id="x-goog-api-key"),
    ],
)
async def test_an_unknown_key_is_400_and_creates_nothing(stack: Stack, headers: dict[str, str]) -> None:
    status, body = await submit(stack.http, edit_form(), headers)
    assert status == 400
    assert body["error"]["message"] == "virtual key not found"
    assert stack.stored_jobs() == 0


async def test_a_bearer_token_that_is_not_a_virtual_key_is_ignored(stack: Stack) -> None:
    status, accepted = await submit(stack.http, edit_form(), {"Authorization": "Bearer eyJhbGciOi.admin.jwt"})
    assert status == 202
    stored = await stack.server.store.get_job(accepted["id"])
    assert stored is not None and stored.owner_key_id is None


async def test_keyless_requests_can_be_forbidden(make_stack: StackFactory) -> None:
    stack = await make_stack(require_virtual_key=True)
    status, body = await submit(stack.http, edit_form())
    assert status == 401, body
    status, _ = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_A.value})
    assert status == 202


async def test_allowed_models_limit_what_a_key_submits(make_stack: StackFactory) -> None:
    limited = VirtualKey(id="vk-limited", value="sk-bf-limited", allowed_models=("openai/*",))
    stack = await make_stack(virtual_keys=(limited,))
    status, body = await submit(stack.http, edit_form(), {"x-bf-vk": limited.value})
    assert status == 403, body
    assert body["error"]["param"] == "model"
    assert stack.stored_jobs() == 0


async def test_hostile_key_header_is_refused_cleanly(stack: Stack) -> None:
    status, body = await submit(stack.http, edit_form(), {"x-bf-vk": "sk-bf-\u00e9vil"})
    assert status == 400
    assert body["error"]["param"] == "x-bf-vk"
    assert stack.stored_jobs() == 0


async def test_result_urls_are_capabilities(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_A.value})
    job = await wait_terminal(stack.http, accepted["id"], {"x-bf-vk": KEY_A.value})
    url = job["result"]["data"][0]["url"]
    async with stack.http.get(url) as response:  # no key needed: the URL is the capability
        assert response.status == 200
    altered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    async with stack.http.get(altered) as response:
        assert response.status == 403
    other_index = url.replace(f"/{accepted['id']}/0?", f"/{accepted['id']}/1?")
    async with stack.http.get(other_index) as response:
        assert response.status == 403  # a token is bound to one image
    no_token = url.split("?")[0]
    async with stack.http.get(no_token) as response:
        assert response.status == 404  # without the token, only the key may read it
    async with stack.http.get(no_token, headers={"x-bf-vk": KEY_A.value}) as response:
        assert response.status == 200
