"""The bridge's cached Content-Disposition parse: aiohttp's answers, and aiohttp's reader uses it."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import aiohttp
import aiohttp.multipart
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rest_bridge import disposition

HEADERS = [
    None,
    "",
    'form-data; name="image"; filename="cat.png"',
    "form-data; name=model",
    'form-data; name="a\\"b"; filename*=UTF-8\'\'caf%C3%A9.png',
    "form-data; name*0=long; name*1=name",
    "attachment",
]


@pytest.mark.parametrize("header", HEADERS)
def test_answers_as_aiohttp_does(header: str | None) -> None:
    assert disposition.parse_content_disposition(header) == disposition._parse_uncached(header)
    assert disposition.parse_content_disposition(header) == disposition._parse_uncached(header)  # cached


def test_name_and_filename() -> None:
    header = "form-data; name=\"image[]\"; filename*=UTF-8''caf%C3%A9.png"
    assert disposition.name_and_filename(header) == ("image[]", "café.png")
    assert disposition.name_and_filename("form-data; name=model") == ("model", None)


def test_a_malformed_header_parses_to_nothing_and_warns_as_aiohttp_does() -> None:
    with pytest.warns(aiohttp.multipart.BadContentDispositionHeader):
        assert disposition.parse_content_disposition("form-data; name") == (None, {})


def test_each_caller_gets_its_own_parameters() -> None:
    header = 'form-data; name="mask"'
    _, params = disposition.parse_content_disposition(header)
    params["name"] = "changed"
    assert disposition.parse_content_disposition(header) == ("form-data", {"name": "mask"})


@pytest.fixture
async def first_part_name() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A bare aiohttp app answering the name of a form's first part, read by aiohttp alone."""

    async def handler(request: web.Request) -> web.Response:
        part = await (await request.multipart()).next()
        assert isinstance(part, aiohttp.BodyPartReader)
        return web.Response(text=str(part.name))

    app = web.Application()
    app.router.add_post("/", handler)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_aiohttp_reader_parses_through_the_cache_once_installed(
    first_part_name: TestClient[web.Request, web.Application],
) -> None:
    disposition.install()
    header = 'form-data; name="only-seen-by-aiohttp"'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            form = aiohttp.MultipartWriter("form-data")
            form.append("x").headers[aiohttp.hdrs.CONTENT_DISPOSITION] = header
            before = disposition._parse_cached.cache_info()
            async with first_part_name.post("/", data=form) as response:
                assert await response.text() == "only-seen-by-aiohttp"
            after = disposition._parse_cached.cache_info()
            assert after.hits + after.misses > before.hits + before.misses  # aiohttp asked the cache
    assert after.hits > before.hits  # and the second form found the first one's parse there
