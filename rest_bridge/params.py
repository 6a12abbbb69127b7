"""Path and query parameters, checked once for every route before its handler runs.

Routes read `request.match_info[...]` and `request.query.get(...)` as plain text; this
middleware makes sure that text is something the gRPC request can carry:

    {job_id}   UTF-8 text (a percent-encoded byte that is not: 404, no such job)
    {index}    decimal digits within int32 (else 404: no such file), param "index"
    ?token     given at most once (else 400), UTF-8 text, param "token"

A query parameter no route reads is ignored, as HTTP APIs usually do.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from rest_bridge.errors import BridgeError
from rest_bridge.text import is_utf8

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INT32_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
SINGLE_VALUED_QUERY = ("token",)


def check_path(match_info: dict[str, str] | web.UrlMappingMatchInfo) -> None:
    for name, value in match_info.items():
        if not is_utf8(value):
            raise BridgeError(404, f"not found: {name} is not valid UTF-8", name)
    index = match_info.get("index")
    if index is not None and not (_DIGITS.fullmatch(index) and int(index) <= INT32_MAX):
        raise BridgeError(404, f"not found: no file with index {index!r}", "index")


def check_query(request: web.Request) -> None:
    for name in SINGLE_VALUED_QUERY:
        values = request.query.getall(name, [])
        if len(values) > 1:
            raise BridgeError(400, f"{name} was given more than once (expected once)", name)
        if values and not is_utf8(values[0]):
            raise BridgeError(400, f"invalid {name} value: not valid UTF-8", name)


@web.middleware
async def checked_params(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_path(request.match_info)
    check_query(request)
    return await handler(request)
