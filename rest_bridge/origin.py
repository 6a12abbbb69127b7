"""Where result URLs point: the configured public URL, else the origin the request came
to, but only for a Host the configuration allows (see rest_bridge/config.py)."""

from __future__ import annotations

from aiohttp import web

from rest_bridge.config import BridgeConfig
from rest_bridge.errors import BridgeError


def result_origin(request: web.Request, config: BridgeConfig) -> str:
    if config.public_url:
        return config.public_url.rstrip("/")
    host = (request.url.host or "").lower().strip("[]")
    if host not in config.result_hosts:
        raise BridgeError(
            400,
            f"Host {request.host!r} is not one this bridge serves result URLs for "
            "(allowed_hosts / --allowed-hosts, or set --public-url)",
            "Host",
        )
    return str(request.url.origin()).rstrip("/")
