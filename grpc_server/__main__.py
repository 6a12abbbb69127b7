"""`python -m grpc_server`: run the gRPC server alone."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import replace
from pathlib import Path

from grpc_server.allocator import keep_freed_memory
from grpc_server.config import ServerConfig, load_config
from grpc_server.server import AsyncGateServer


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
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


async def run_until_signalled(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully. The server is built
    here, inside the running loop: grpc.aio binds to the loop it is created in."""
    server = AsyncGateServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    logging.getLogger("asyncgate.server").info("shutting down")
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m grpc_server", description="asyncgate gRPC server")
    add_server_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_freed_memory()
    asyncio.run(run_until_signalled(server_config(args)))


if __name__ == "__main__":
    main()
