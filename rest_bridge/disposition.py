"""Content-Disposition parsing, cached, for the bridge and for aiohttp's multipart reader.

aiohttp's parse_content_disposition rebuilds an escaped table of 128 characters on every
call (the default argument of a function it defines inside itself). Forms send the same
few headers again and again, so a small cache removes that cost. aiohttp's own
MultipartReader.next() also parses the first part of every form, to look for RFC 7578's
`_charset_` field, and it looks the parser up by its module-level name: install() points
that name at the cached parse, which answers exactly as the original. Measured with a
py-spy profile of the bridge under submit load: aiohttp's uncached parse in next() was
15% of the bridge's CPU, after the bridge's own calls had been cached.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

import aiohttp.multipart
from aiohttp.multipart import content_disposition_filename

_parse_uncached = aiohttp.multipart.parse_content_disposition

CACHED_HEADERS = 256
"""Distinct headers kept. Each is at most a header line (aiohttp caps those at 8 KiB), which
bounds what hostile headers can fill."""


@functools.lru_cache(maxsize=CACHED_HEADERS)
def _parse_cached(header: str | None) -> tuple[str | None, Mapping[str, str]]:
    disposition, params = _parse_uncached(header)
    return disposition, MappingProxyType(params)  # shared by every caller: read-only


def parse_content_disposition(header: str | None) -> tuple[str | None, dict[str, str]]:
    """aiohttp's parse, cached; the parameters come in a dict of their own, as aiohttp's do."""
    disposition, params = _parse_cached(header)
    return disposition, dict(params)


def name_and_filename(header: str | None) -> tuple[str | None, str | None]:
    """The form field's name and file name of a part's Content-Disposition header."""
    _, params = _parse_cached(header)
    return content_disposition_filename(params, "name"), content_disposition_filename(params, "filename")


def install() -> None:
    """Have aiohttp's multipart reader use the cached parse (once is enough; again is harmless)."""
    aiohttp.multipart.parse_content_disposition = parse_content_disposition
