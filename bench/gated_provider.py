"""A provider that answers only when told to: OpenAI's `POST /v1/embeddings`, each call held
until the bench releases it, in a process of its own.

    python -m bench.gated_provider --port P

    GET  /bench/held       {"held": calls waiting now, "released": calls let go so far}
    POST /bench/release    {"count": n, "rate": r}: let the n oldest held calls answer, r a second
                           (0: all at once); answers once the last of them is let go
    GET  /health

So the bench decides when each job completes: at a steady rate (latency, with nothing queued
behind the answer), or all at once (throughput). The answer is the fake provider's
(bench.fake_provider._answer), so the server stores what it stores for any embedding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from bench.fake_provider import EMBEDDINGS_PATH, _answer, _texts


@dataclass
class Held:
    calls: deque[asyncio.Future[None]] = field(default_factory=deque)
    released: int = 0


HELD = web.AppKey("held", Held)


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = json.loads(await request.read())
    texts = _texts(body.get("input")) or [""]
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    request.app[HELD].calls.append(gate)
    try:
        await gate
    finally:
        if not gate.done():  # the server hung up (a cancelled job): not held any more
            request.app[HELD].calls.remove(gate)
    return web.json_response(_answer(body, texts))


async def held(request: web.Request) -> web.StreamResponse:
    state = request.app[HELD]
    return web.json_response({"held": len(state.calls), "released": state.released})


async def release(request: web.Request) -> web.StreamResponse:
    """Let `count` calls answer, oldest first, `rate` a second (each on its own schedule from
    the first, so a late wake-up does not slow the rest)."""
    order = await request.json()
    count, rate = int(order["count"]), float(order.get("rate", 0))
    state = request.app[HELD]
    started = time.monotonic()
    for i in range(count):
        if rate > 0 and (delay := started + i / rate - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        if not state.calls:
            break
        state.calls.popleft().set_result(None)
        state.released += 1
    return web.json_response({"released": state.released, "seconds": time.monotonic() - started})


async def health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def app() -> web.Application:
    application = web.Application()
    application[HELD] = Held()
    application.router.add_post(EMBEDDINGS_PATH, embeddings)
    application.router.add_get("/bench/held", held)
    application.router.add_post("/bench/release", release)
    application.router.add_get("/health", health)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gated_provider")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app(), host="127.0.0.1", port=args.port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
