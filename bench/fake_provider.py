"""A provider that answers at once (or after `--latency` seconds): OpenAI's
`POST /v1/embeddings`, in a process of its own.

    python -m bench.fake_provider --port P [--latency SECONDS]

Each input gets a deterministic unit vector (one of VARIANTS, chosen by the text's
CRC-32), DIMENSIONS long unless `dimensions` asks for fewer, as base64 little-endian
float32 or a float list per `encoding_format`. The vectors and their encodings are
made at start, so an answer costs a JSON parse and a JSON dump, nothing more: what
the bench measures around it is the gateway, not the provider.

For the bench it also records, per input text, when it arrived (time.monotonic():
CLOCK_MONOTONIC on Linux, one clock for every process, so the bench can subtract its
own submit times), and how long its handler took:

    GET  /bench/stats      {"requests": n, "handler_seconds": total}  (answered; latency left out)
    GET  /bench/arrivals   {text: monotonic seconds of its first arrival}
    GET  /bench/calls      {"calls": requests arrived, "texts": distinct input texts, "most": the
                           most requests one text arrived in, "in_flight_max": most at once}
    POST /bench/reset      forget all of it
    GET  /health
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

EMBEDDINGS_PATH = "/v1/embeddings"
DIMENSIONS = 256
VARIANTS = 64
"""Distinct vectors made at start; enough that neighbouring texts differ."""


@dataclass(frozen=True)
class Vector:
    floats: list[float]
    base64: str


def _vector(seed: int, dimensions: int) -> Vector:
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw))
    # Rounded through float32, so the float list and the base64 form are the same numbers.
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in raw))
    floats = list(struct.unpack(f"<{dimensions}f", packed))
    return Vector(floats, base64.b64encode(packed).decode())


VECTORS = [_vector(seed, DIMENSIONS) for seed in range(VARIANTS)]


def vector_for(text: str, dimensions: int = DIMENSIONS) -> Vector:
    """The vector of `text`: the same in every process and every run."""
    vector = VECTORS[zlib.crc32(text.encode()) % VARIANTS]
    if dimensions == DIMENSIONS:
        return vector
    floats = vector.floats[:dimensions]  # OpenAI shortens by truncating (and renormalising; not worth it)
    return Vector(floats, base64.b64encode(struct.pack(f"<{dimensions}f", *floats)).decode())


@dataclass
class Records:
    requests: int = 0
    handler_seconds: float = 0.0
    arrivals: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    """Requests arrived per input text: a job's calls, when every job has a text of its own."""
    in_flight: int = 0
    in_flight_max: int = 0

    def clear(self) -> None:  # in place: a running app's state cannot be replaced
        self.requests, self.handler_seconds = 0, 0.0
        self.arrivals.clear()
        self.calls.clear()
        self.in_flight_max = self.in_flight


RECORDS = web.AppKey("records", Records)
LATENCY = web.AppKey("latency", float)


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return web.json_response(body, status=status)


def _texts(value: object) -> list[str] | None:
    """The inputs as texts (token ids rendered as text); None when `input` has no known shape."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [json.dumps(value)]  # one input as token ids
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return [json.dumps(v) for v in value]
    return None


def _answer(body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    dimensions = body.get("dimensions")
    size = dimensions if isinstance(dimensions, int) and 0 < dimensions <= DIMENSIONS else DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = vector_for(text, size)
        embedding: Any = vector.base64 if as_base64 else vector.floats
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(t.split()) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def embeddings(request: web.Request) -> web.StreamResponse:
    records = request.app[RECORDS]
    records.in_flight += 1
    records.in_flight_max = max(records.in_flight_max, records.in_flight)
    try:
        return await _embeddings(request, records)
    finally:
        records.in_flight -= 1


async def _embeddings(request: web.Request, records: Records) -> web.StreamResponse:
    arrived = time.monotonic()
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "body is not JSON")
    texts = _texts(body.get("input")) if isinstance(body, dict) else None
    if texts is None:
        return _error(400, "'input' must be a string, a list of strings or token ids")
    for text in texts:
        records.arrivals.setdefault(text, arrived)
        records.calls[text] = records.calls.get(text, 0) + 1
    if (latency := request.app[LATENCY]) > 0:
        await asyncio.sleep(latency)  # a slow provider: the time is not the handler's
        arrived += latency
    answer = web.json_response(_answer(body, texts))
    records.requests += 1
    records.handler_seconds += time.monotonic() - arrived
    return answer


async def stats(request: web.Request) -> web.StreamResponse:
    records = request.app[RECORDS]
    return web.json_response({"requests": records.requests, "handler_seconds": records.handler_seconds})


async def arrivals(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[RECORDS].arrivals)


async def calls(request: web.Request) -> web.StreamResponse:
    records = request.app[RECORDS]
    counts = records.calls
    doc = {
        "calls": sum(counts.values()),
        "texts": len(counts),
        "most": max(counts.values(), default=0),
        "in_flight_max": records.in_flight_max,
    }
    return web.json_response(doc)


async def reset(request: web.Request) -> web.StreamResponse:
    request.app[RECORDS].clear()
    return web.json_response({})


async def health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def app(latency: float = 0.0) -> web.Application:
    """`latency`: seconds every embeddings answer waits, as a slow provider's would."""
    application = web.Application()
    application[RECORDS] = Records()
    application[LATENCY] = latency
    application.router.add_post(EMBEDDINGS_PATH, embeddings)
    application.router.add_get("/bench/stats", stats)
    application.router.add_get("/bench/arrivals", arrivals)
    application.router.add_get("/bench/calls", calls)
    application.router.add_post("/bench/reset", reset)
    application.router.add_get("/health", health)
    return application


class FakeProviderClient:
    """What the bench asks the fake between rounds (its records), over a session of its own."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        """The server root, e.g. http://127.0.0.1:PORT (the OpenAI root is base_url + '/v1')."""

    async def _call(self, method: str, path: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.request(method, self.base_url + path) as response,
        ):
            response.raise_for_status()
            return await response.json()

    async def stats(self) -> tuple[int, float]:
        """(requests answered, seconds spent in the handler) since start or the last reset."""
        doc = await self._call("GET", "/bench/stats")
        return int(doc["requests"]), float(doc["handler_seconds"])

    async def arrivals(self) -> dict[str, float]:
        doc = await self._call("GET", "/bench/arrivals")
        return {str(text): float(at) for text, at in doc.items()}

    async def calls(self) -> dict[str, int]:
        """Requests arrived, distinct texts, the most for one text, the most at once (GET /bench/calls)."""
        doc = await self._call("GET", "/bench/calls")
        return {key: int(value) for key, value in doc.items()}

    async def reset(self) -> None:
        await self._call("POST", "/bench/reset")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_provider")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer (default 0)")
    args = parser.parse_args()
    if args.latency < 0:
        parser.error("--latency must be >= 0")
    # A large backlog: thousands of connections may arrive at once.
    web.run_app(
        app(args.latency), host="127.0.0.1", port=args.port, print=None, access_log=None, backlog=4096
    )


if __name__ == "__main__":
    main()
