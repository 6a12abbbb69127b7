"""`python -m asyncgate`: the gRPC server and the REST bridge in one process.

The embedded SQLite store lives in --data-dir; the local provider needs no key,
so a first job completes on a fresh machine. For separate scaling, run
`python -m grpc_server` and `python -m rest_bridge` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal

from asyncgate.collector import settle_collector
from asyncgate.logs import ACCESS_LOG_FORMAT, add_log_format_argument, configure_logging
from asyncgate.otel import add_tracing_argument, traced
from grpc_server.__main__ import (
    add_server_arguments,
    config_errors_end_the_process,
    server_config,
    start_or_clean_up,
)
from grpc_server.allocator import keep_freed_memory
from grpc_server.config import ServerConfig
from grpc_server.server import AsyncGateServer
from rest_bridge.__main__ import DEFAULTS as BRIDGE_DEFAULTS
from rest_bridge.__main__ import access_logger, add_bridge_arguments, bridge_config, check_bridge_arguments
from rest_bridge.app import create_app
from rest_bridge.metrics import add_metrics_source
from rest_bridge.serving import start_bridge

log = logging.getLogger("asyncgate")


async def serve(args: argparse.Namespace, server_settings: ServerConfig) -> None:
    server = AsyncGateServer(server_settings)
    port = await start_or_clean_up(server)
    config = bridge_config(args, f"{server.config.host}:{port}")
    app = create_app(config)
    add_metrics_source(app, server.metrics.render)  # one /metrics: the bridge's and the server's
    runner = await start_bridge(
        app,
        config,
        access_log=access_logger(args.access_log),
        access_log_format=ACCESS_LOG_FORMAT,  # with the duration, for the JSON logs
    )
    log.info("REST bridge listening on http://%s:%d", config.host, config.port)
    settle_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    # The server first: health turns NOT_SERVING at once (the bridge's /health answers
    # 503 while running jobs finish), then the bridge closes once the server is done.
    await server.stop()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m asyncgate", description=__doc__)
    add_server_arguments(parser)
    add_bridge_arguments(parser)
    parser.set_defaults(max_wait=None)  # unset: follows the server's max_wait_seconds, see below
    parser._option_string_actions["--max-wait"].help = (
        "longest Prefer: wait=N honoured, in seconds (default: the configuration's max_wait_seconds, "
        f"at least {BRIDGE_DEFAULTS.max_wait_seconds})"
    )
    add_log_format_argument(parser)
    add_tracing_argument(parser)
    args = parser.parse_args()
    with config_errors_end_the_process():
        settings = server_config(args)
    if args.max_wait is None:
        args.max_wait = bridge_max_wait(settings)
    check_bridge_arguments(parser, args)
    configure_logging(args.log_format)
    keep_freed_memory()
    with config_errors_end_the_process(), traced(parser, args, "asyncgate"):
        asyncio.run(serve(args, settings))


def bridge_max_wait(settings: ServerConfig) -> int:
    """The longest `Prefer: wait` the bridge honours when --max-wait is not given: at least a
    WaitJob call's own cap, so that raising `max_wait_seconds` in the configuration raises both
    (one process, one setting); never below the bridge's default, since the bridge makes as many
    WaitJob calls as a wait takes."""
    return max(BRIDGE_DEFAULTS.max_wait_seconds, math.ceil(settings.max_wait_seconds))


if __name__ == "__main__":
    main()
