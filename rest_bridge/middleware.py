"""The bridge's one error seam: every failure of a route becomes the error object here.

    BridgeError             its own status and message
    grpc.aio.AioRpcError    errors.from_rpc_error: (code, reason) -> HTTP
    web.HTTPException       unknown paths (404), wrong methods (405), ... as error objects
    client gone             one INFO line; nothing is answered (nobody is listening)
    anything else           500, a generic message and the event_id; the traceback is logged
                            with that event_id

`extra_fields.request_type` names the operation of the route: the route's name when it
has one, else the operation served under the route's path (REQUEST_TYPES).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web

from rest_bridge.errors import GENERIC_500, BridgeError, error_response, from_rpc_error
from rest_bridge.operations import OPERATIONS

log = logging.getLogger("rest_bridge")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_TYPES = {operation.path: operation.name for operation in OPERATIONS}
"""Collection path -> the operation its submit and poll routes serve."""

CLOSE_AFTER = frozenset({408, 413})
"""Answers after which the rest of the body is not worth reading: the connection closes."""


def request_type(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    path = resource.canonical if resource is not None else request.path
    return REQUEST_TYPES.get(path.removesuffix("/{job_id}"), "")


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def error_objects(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(BridgeError(exc.status, exc.reason.lower()), request_type(request))
        if allow := exc.headers.get("Allow"):
            response.headers["Allow"] = allow
        return response
    except BridgeError as error:
        failure = error
    except grpc.aio.AioRpcError as error:
        failure = from_rpc_error(error)
    except (ConnectionError, OSError) as error:
        if not client_gone(request):
            failure = _unexpected(request, error)
        else:
            failure = None
    except Exception as error:  # the seam: whatever a route did not foresee
        failure = _unexpected(request, error)
    if failure is None or (failure.status < 500 and client_gone(request)):
        # The client hung up mid-request (the read failed, or it failed for that reason).
        log.info("client disconnected during %s %s", request.method, request.path)
        return web.Response(status=499)  # never reaches anyone; aiohttp drops it quietly
    response = error_response(failure, request_type(request))
    if failure.status in CLOSE_AFTER:
        response.force_close()
    return response


def _unexpected(request: web.Request, error: BaseException) -> BridgeError:
    failure = BridgeError(500, GENERIC_500)
    log.error(
        "unexpected error in %s %s (event_id=%s)",
        request.method,
        request.path,
        failure.event_id,
        exc_info=error,
    )
    return failure
