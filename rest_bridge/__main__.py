"""`python -m rest_bridge`: run the REST bridge alone, pointed at a gRPC server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from asyncgate.collector import settle_collector
from asyncgate.logs import ACCESS_LOG_FORMAT, add_log_format_argument, configure_logging
from asyncgate.otel import add_tracing_argument, traced
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.serving import start_bridge

DEFAULTS = BridgeConfig()

TUNABLES: tuple[tuple[str, str, type[float] | type[int], str], ...] = (
    ("--header-timeout", "header_timeout_seconds", float, "seconds for a request's headers to arrive"),
    ("--body-idle-timeout", "body_idle_timeout_seconds", float, "seconds without body bytes before a 408"),
    ("--min-body-rate", "min_body_rate_bytes", int, "slowest body rate in bytes/s, 0 for none"),
    (
        "--min-body-rate-grace",
        "min_body_rate_grace_seconds",
        float,
        "seconds a body may take before --min-body-rate applies",
    ),
    (
        "--keepalive-timeout",
        "keepalive_timeout_seconds",
        float,
        "seconds an idle keep-alive connection stays open",
    ),
    ("--max-connections", "max_connections", int, "open client connections at most; more are answered 503"),
    ("--max-wait", "max_wait_seconds", int, "longest Prefer: wait=N honoured, in seconds"),
    (
        "--accept-error-log-interval",
        "accept_error_log_interval_seconds",
        float,
        "out of file descriptors: one log line per this many seconds",
    ),
)
"""Flag, BridgeConfig field, type, what it sets: the connection protections' settings."""


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--http-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument(
        "--public-url",
        help="absolute base URL of result image links (default: the origin each request came to, "
        "for a Host in --allowed-hosts); required beyond loopback unless --allowed-hosts is given",
    )
    parser.add_argument(
        "--allowed-hosts",
        help="comma-separated host names a request's Host may name for result links when "
        "--public-url is unset (default: localhost, 127.0.0.1, ::1)",
    )
    parser.add_argument("--max-body-mb", type=int, help="largest request body in MiB (default 801)")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off by default: hot path)"
    )
    for flag, field, kind, what in TUNABLES:
        default = getattr(d, field)
        parser.add_argument(flag, type=kind, default=default, help=f"{what} (default {default:g})")


def access_logger(enabled: bool) -> logging.Logger | None:
    return logging.getLogger("aiohttp.access") if enabled else None


def bridge_config(args: argparse.Namespace, grpc_target: str) -> BridgeConfig:
    """The configuration the flags describe; ValueError (one line, naming the setting) if
    they do not make one (check_bridge_arguments reports it as a usage error)."""
    hosts = tuple(h.strip() for h in (args.allowed_hosts or "").split(",") if h.strip())
    max_body = args.max_body_mb * 1024 * 1024 if args.max_body_mb else DEFAULTS.max_body_bytes
    return BridgeConfig(
        host=args.http_host,
        port=args.http_port,
        grpc_target=grpc_target,
        public_url=args.public_url,
        allowed_hosts=hosts,
        max_body_bytes=max_body,
        **{field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _, _ in TUNABLES},
    )


def check_bridge_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error (status 2, one line) if the bridge flags are inconsistent."""
    try:
        bridge_config(args, "")
    except ValueError as exc:
        parser.error(str(exc))


async def _serve(config: BridgeConfig, access_log: bool) -> None:
    runner = await start_bridge(
        create_app(config),
        config,
        access_log=access_logger(access_log),
        access_log_format=ACCESS_LOG_FORMAT,  # with the duration, for the JSON logs
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("rest_bridge").info("REST bridge listening on http://%s:%d", config.host, config.port)
    settle_collector()
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rest_bridge", description="asyncgate REST bridge")
    add_bridge_arguments(parser)
    parser.add_argument(
        "--grpc-target", default="127.0.0.1:50051", help="the gRPC server (default 127.0.0.1:50051)"
    )
    add_log_format_argument(parser)
    add_tracing_argument(parser)
    args = parser.parse_args()
    check_bridge_arguments(parser, args)
    configure_logging(args.log_format)
    with traced(parser, args, "asyncgate-bridge"):
        asyncio.run(_serve(bridge_config(args, args.grpc_target), args.access_log))


if __name__ == "__main__":
    main()
