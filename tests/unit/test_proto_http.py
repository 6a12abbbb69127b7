"""The google.api.http rules in job_service.proto promise only what the REST bridge serves:
each bound path and method is a route of the bridge, and the body is the request message,
as the bridge reads it."""

from __future__ import annotations

from aiohttp import web
from google.api import annotations_pb2, http_pb2

from asyncgate.v1 import job_service_pb2
from rest_bridge.routes import add_routes

SERVICE = job_service_pb2.DESCRIPTOR.services_by_name["JobService"]


def _rules() -> dict[str, http_pb2.HttpRule]:
    rules = {}
    for method in SERVICE.methods:
        options = method.GetOptions()
        if options.HasExtension(annotations_pb2.http):
            rules[method.name] = options.Extensions[annotations_pb2.http]
    return rules


def _served() -> set[tuple[str, str]]:
    app = web.Application()
    add_routes(app)
    return {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}


def test_every_http_rule_is_a_route_the_bridge_serves_with_the_request_as_body() -> None:
    rules = _rules()
    assert rules, "no rule left to check"
    served = _served()
    for name, rule in rules.items():
        verb = rule.WhichOneof("pattern")
        assert verb is not None
        path = getattr(rule, verb)
        assert (verb.upper(), path) in served, f"{name}: {verb.upper()} {path} is not a bridge route"
        assert not rule.additional_bindings, name
        assert rule.body == "request", f"{name}: the REST body is the request message"
        body = SERVICE.methods_by_name[name].input_type.fields_by_name[rule.body]
        assert body.message_type is not None, name


def test_rpcs_the_bridge_cannot_serve_as_a_rule_promise_none() -> None:
    # Multipart forms, the operation type taken from the path, raw file bytes, and a check
    # the bridge makes on the caller's behalf (no REST form of its own).
    unbound = {
        "CheckCaller",
        "CreateImageEditJob",
        "UploadImageEditJob",
        "CreateImageVariationJob",
        "GetJob",
        "ReadJobOutput",
        # The job API: answered as envelopes, event streams or 204, options from headers.
        "WaitJob",
        "WatchJob",
        "CancelJob",
        "DeleteJob",
        "RetryJob",
        "ListJobs",
        # Webhook deliveries: the REST paths answer JSON of their own, not the responses.
        "ListWebhookDeliveries",
        "RedeliverWebhook",
    }
    assert unbound.isdisjoint(_rules())
    assert set(_rules()) == {m.name for m in SERVICE.methods} - unbound
