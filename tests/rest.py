"""Helpers for talking to the bridge like a REST client would."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp

from tests.images import subject_on_background

EDITS = "/v1/async/images/edits"


def edit_form(
    fields: dict[str, str] | None = None,
    images: list[tuple[str, bytes]] | None = None,
    mask: bytes | None = None,
    image_field: str = "image",
) -> aiohttp.FormData:
    """A multipart image edit form; defaults to a local background removal."""
    form = aiohttp.FormData(default_to_multipart=True)
    base = {"model": "local/pillow", "type": "background_removal"}
    for name, value in {**base, **(fields or {})}.items():
        form.add_field(name, value)
    for filename, data in images if images is not None else [("photo.png", subject_on_background())]:
        form.add_field(image_field, io.BytesIO(data), filename=filename, content_type="image/png")
    if mask is not None:
        form.add_field("mask", mask, filename="mask.png", content_type="image/png")
    return form


async def submit(
    http: aiohttp.ClientSession, form: aiohttp.FormData, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(EDITS, data=form, headers=headers or {}) as response:
        return response.status, await response.json()


async def wait_terminal(
    http: aiohttp.ClientSession, job_id: str, headers: dict[str, str] | None = None, path: str = EDITS
) -> dict[str, Any]:
    """Poll until the job is terminal (bounded by the test timeout)."""
    while True:
        async with http.get(f"{path}/{job_id}", headers=headers or {}) as response:
            body: dict[str, Any] = await response.json()
            if response.status == 200:
                assert body["status"] in ("completed", "failed"), body
                return body
            assert response.status == 202, body
            assert body["status"] in ("pending", "processing"), body
        await asyncio.sleep(0.05)
