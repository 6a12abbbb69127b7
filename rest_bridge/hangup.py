"""A client that hangs up stops what the bridge waits on for it, at once.

aiohttp runs a handler to its end even after its client has gone (handler cancellation is
off). A handler that only waits for a job (`Prefer: wait`, an event stream, an
OpenAI-compatible request held until its job ends) would keep its gRPC call, and the
server's waiter, for up to the whole wait. Within `hangup_cancels(request)`, the loss of the
connection cancels the handler's task instead, and with it the gRPC call it awaits (grpc.aio
cancels a call whose awaiting task is cancelled); the block then raises ClientHungUp, which
the error seam treats as any other disconnect (one INFO line, nothing answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from rest_bridge.middleware import client_gone
from rest_bridge.serving import GuardedRequestHandler


class ClientHungUp(ConnectionResetError):
    """The client closed its connection while the bridge waited for it."""


@contextmanager
def hangup_cancels(request: web.Request) -> Iterator[None]:
    """Within the block, the client hanging up cancels the handler at once (ClientHungUp)."""
    task = asyncio.current_task()
    protocol = request.protocol
    if task is None or not isinstance(protocol, GuardedRequestHandler):
        yield  # served without BridgeRunner: a hang-up is heard at the next write only
        return
    if client_gone(request):
        raise ClientHungUp("the client hung up")
    hung_up = False

    def on_lost() -> None:
        nonlocal hung_up
        hung_up = True
        task.cancel()

    forget = protocol.on_connection_lost(on_lost)
    try:
        yield
    except asyncio.CancelledError:
        # Ours alone (nobody else cancelled the handler too): the client left, nothing else.
        if hung_up and task.uncancel() == 0:
            raise ClientHungUp("the client hung up") from None
        raise
    finally:
        forget()
