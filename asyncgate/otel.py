"""OpenTelemetry traces: optional (`pip install 'asyncgate[otel]'`) and off unless configured.

    otel.configure("http://collector:4318/v1/traces", "asyncgate-server")  # --otlp-endpoint
    with otel.span("job.run", attributes={"asyncgate.job_id": job.id}): ...
    otel.inject_headers(headers)  # W3C traceparent of the current span, for an outgoing request

Until configure() (or install(), which tests use with the SDK's in-memory exporter) every
function here is a no-op and nothing from opentelemetry is imported: without the extra the
service runs as before. The spans: the bridge's HTTP request (rest_bridge.tracing), the gRPC
client and server calls (opentelemetry-instrumentation-grpc), store operations and a job's
run (grpc_server.telemetry), each provider call (grpc_server.observe), whose HTTP request
carries the trace on to the provider (grpc_server.providers.http).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

OTLP_ENDPOINT_ENV = "ASYNCGATE_OTLP_ENDPOINT"
"""Environment variable read when --otlp-endpoint is not given."""
INSTRUMENTATION_NAME = "asyncgate"

SpanKind = Literal["internal", "server", "client"]

_provider: TracerProvider | None = None
_tracer: Tracer | None = None


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but the otel extra is not installed."""


def install(provider: TracerProvider) -> None:
    """Trace with `provider` from now on (this process only; the global provider is left alone)."""
    global _provider, _tracer
    _provider, _tracer = provider, provider.get_tracer(INSTRUMENTATION_NAME)


def uninstall() -> None:
    global _provider, _tracer
    _provider, _tracer = None, None


def enabled() -> bool:
    return _tracer is not None


def provider() -> TracerProvider | None:
    return _provider


def configure(endpoint: str, service_name: str) -> None:
    """Export spans in batches over OTLP/HTTP to `endpoint` (a collector's /v1/traces URL)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            f"--otlp-endpoint needs the otel extra ({exc.name} is missing): pip install 'asyncgate[otel]'"
        ) from None
    traces = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    traces.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    install(traces)


def shutdown() -> None:
    """Flush the spans not yet exported (at process exit)."""
    if _provider is not None:
        _provider.shutdown()
    uninstall()


def add_tracing_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--otlp-endpoint",
        default=os.environ.get(OTLP_ENDPOINT_ENV) or None,
        metavar="URL",
        help="export OpenTelemetry traces over OTLP/HTTP to URL, e.g. http://127.0.0.1:4318/v1/traces "
        f"(needs pip install 'asyncgate[otel]'; default ${OTLP_ENDPOINT_ENV}; unset: no traces)",
    )


@contextlib.contextmanager
def traced(parser: argparse.ArgumentParser, args: argparse.Namespace, service_name: str) -> Iterator[None]:
    """Tracing as --otlp-endpoint says for the block (a usage error without the extra); the
    spans not yet exported are flushed when it ends."""
    if not args.otlp_endpoint:
        yield
        return
    try:
        configure(args.otlp_endpoint, service_name)
    except TracingUnavailable as exc:
        parser.error(str(exc))
    try:
        yield
    finally:
        shutdown()


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = "internal",
    attributes: Mapping[str, str | int | float | bool] | None = None,
    parent: Context | None = None,
    only_in_trace: bool = False,
) -> Iterator[Span | None]:
    """A span around the block, current inside it; None (and nothing recorded) when tracing is
    off, or with only_in_trace when no trace is going on (a background poll starts none)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace

    if only_in_trace and parent is None and not trace.get_current_span().get_span_context().is_valid:
        yield None
        return
    kinds = {
        "internal": trace.SpanKind.INTERNAL,
        "server": trace.SpanKind.SERVER,
        "client": trace.SpanKind.CLIENT,
    }
    with _tracer.start_as_current_span(
        name, context=parent, kind=kinds[kind], attributes=attributes
    ) as current:
        yield current


def inject_headers(headers: MutableMapping[str, str]) -> None:
    """Add the current trace's W3C headers (traceparent, tracestate) to an outgoing request."""
    if _tracer is not None:
        from opentelemetry import propagate

        propagate.inject(headers)


def extract(headers: Mapping[str, str]) -> Context | None:
    """The trace an incoming request carries (its traceparent), to parent the request's span."""
    if _tracer is None:
        return None
    from opentelemetry import propagate

    return propagate.extract(headers)


def current_context() -> Context | None:
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def set_error(current: Span | None, description: str) -> None:
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_status(Status(StatusCode.ERROR, description))
