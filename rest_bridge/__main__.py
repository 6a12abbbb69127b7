"""`python -m rest_bridge`: run the REST bridge alone, pointed at a gRPC server."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument(
        "--public-url",
        help="absolute base URL of result image links (default: the origin each request came to)",
    )
    parser.add_argument("--max-body-mb", type=int, help="largest request body in MiB (default 801)")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off by default: hot path)"
    )


def access_logger(enabled: bool) -> logging.Logger | None:
    return logging.getLogger("aiohttp.access") if enabled else None


def bridge_config(args: argparse.Namespace, grpc_target: str) -> BridgeConfig:
    config = BridgeConfig(
        host=args.http_host, port=args.http_port, grpc_target=grpc_target, public_url=args.public_url
    )
    if args.max_body_mb:
        config = BridgeConfig(**{**vars(config), "max_body_bytes": args.max_body_mb * 1024 * 1024})
    return config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rest_bridge", description="asyncgate REST bridge")
    add_bridge_arguments(parser)
    parser.add_argument(
        "--grpc-target", default="127.0.0.1:50051", help="the gRPC server (default 127.0.0.1:50051)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = bridge_config(args, args.grpc_target)
    web.run_app(
        create_app(config), host=config.host, port=config.port, access_log=access_logger(args.access_log)
    )


if __name__ == "__main__":
    main()
