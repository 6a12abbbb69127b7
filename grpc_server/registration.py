"""Serving a service with request parsing that refuses a malformed message as bad input.

The generated `add_*Servicer_to_server` parses each request with `Message.FromString`. A
message that does not parse (bad UTF-8 in a string field, a broken wire format) then fails
inside grpc before any handler runs, and reaches the caller as UNKNOWN "Unexpected <class
'DecodeError'>...": a server fault in the caller's eyes, for the caller's own bad input.
Here each request is parsed by a function that returns a `Malformed` marker instead of
raising; grpc_server.errors.maps_errors turns it into INVALID_ARGUMENT like any other
refusal (and so does the upload reader, for a malformed message in a stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message


@dataclass(frozen=True)
class Malformed:
    """A request that did not parse as its message type; `reason` is the parser's own word."""

    message_type: str
    reason: str


def _parser(descriptor: Descriptor) -> Callable[[bytes], Message | Malformed]:
    cls = message_factory.GetMessageClass(descriptor)

    def parse(data: bytes) -> Message | Malformed:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return Malformed(descriptor.full_name, str(exc).rpartition(": ")[2] or "cannot be parsed")

    return parse


_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def serve(servicer: Any, server: grpc.aio.Server, service: ServiceDescriptor) -> None:
    """Register every method of `service`, implemented by `servicer`, with safe parsing."""
    handlers = {}
    for method in service.methods:
        response_cls = message_factory.GetMessageClass(method.output_type)
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_parser(method.input_type),
            response_serializer=response_cls.SerializeToString,
        )
    # Generic handlers only: with registered ones too, grpc.aio's serving loop waits on one
    # pending call per method (asyncio.wait over all of them) before each call it takes, about
    # 6% of the server's CPU per GetJob measured; a generic handler serves any method alike.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
