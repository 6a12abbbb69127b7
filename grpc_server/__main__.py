"""`python -m grpc_server`: run the gRPC server alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from asyncgate.collector import settle_collector
from asyncgate.logs import add_log_format_argument, configure_logging
from asyncgate.otel import add_tracing_argument, traced
from grpc_server.allocator import keep_freed_memory
from grpc_server.config import ConfigError, ServerConfig, check_config, load_config
from grpc_server.server import AsyncGateServer

CONFIG_ERROR_STATUS = 2
"""Exit status for a configuration refused at start (as for a command-line usage error)."""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file (see README)")
    parser.add_argument("--grpc-host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--grpc-port", type=int, help="port to listen on (default 50051)")
    parser.add_argument("--data-dir", type=Path, help="directory of the SQLite store (default ./data)")


def server_config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config)
    overrides = {
        "host": args.grpc_host,
        "port": args.grpc_port,
        "data_dir": args.data_dir,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    check_config(config)  # the command-line values too
    return config


@contextlib.contextmanager
def config_errors_end_the_process() -> Iterator[None]:
    """A ConfigError (at load or at start) ends the process with one line on stderr naming
    the setting, and status 2: no traceback, which an operator would have to read through."""
    try:
        yield
    except ConfigError as exc:
        message = " ".join(str(exc).split())
        print(f"config error: {message}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_STATUS) from None


async def start_or_clean_up(server: AsyncGateServer) -> int:
    """Start `server`; if that fails (a key file refused, say), close what it opened first,
    so the process ends with the error alone and not with warnings about unclosed sessions."""
    try:
        return await server.start()
    except BaseException:
        await server.stop(grace=0)
        raise


async def run_until_signalled(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully. The server is built
    here, inside the running loop: grpc.aio binds to the loop it is created in."""
    server = AsyncGateServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await start_or_clean_up(server)
    settle_collector()
    await stop.wait()
    logging.getLogger("asyncgate.server").info("shutting down")
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m grpc_server", description="asyncgate gRPC server")
    add_server_arguments(parser)
    add_log_format_argument(parser)
    add_tracing_argument(parser)
    args = parser.parse_args()
    configure_logging(args.log_format)
    keep_freed_memory()
    with config_errors_end_the_process(), traced(parser, args, "asyncgate-server"):
        asyncio.run(run_until_signalled(server_config(args)))


if __name__ == "__main__":
    main()
