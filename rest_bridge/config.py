"""Bridge configuration: a frozen dataclass, built from flags (rest_bridge/__main__.py).

Result URLs and the Host header: a poll answer carries result URLs with their access
tokens. Their origin is `public_url` when set; otherwise the origin the request came to,
and then only for a Host whose name is in `allowed_hosts` or, on a loopback listen
address, is a loopback name (a 400 naming `Host` otherwise). A bridge listening beyond
loopback (`host` not a loopback address) must be given `public_url` or `allowed_hosts`:
it refuses to start without one, rather than let any Host header decide where tokens point.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiohttp import web

MB = 1024 * 1024
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost, or "" / "0.0.0.0" (every interface)


@dataclass(frozen=True)
class BridgeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_target: str = "127.0.0.1:50051"
    """Where the gRPC server listens."""
    public_url: str | None = None
    """Absolute base of result image URLs; when unset, the origin the request came to."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (no port) a request may name in Host for result URLs when public_url is
    unset (besides the loopback names, on a loopback listen address)."""
    max_body_bytes: int = 16 * 50 * MB + MB
    """Largest request body; answered 413 as soon as it is crossed."""
    max_json_bytes: int = 32 * MB
    """Largest JSON body (image generations, embeddings)."""
    max_field_bytes: int = MB
    """Largest text form field (prompts are at most 32000 characters)."""
    unary_max_body_bytes: int = MB
    """Bodies up to this size (with a Content-Length) go to the server in one unary call;
    larger or chunked ones are streamed through UploadImageEditJob."""
    upload_chunk_bytes: int = 256 * 1024
    """Size of the chunks a multipart file is forwarded in (well under 4 MiB)."""
    grpc_timeout_seconds: float = 60.0
    """Deadline of a gRPC call made for a REST request."""
    header_timeout_seconds: float = 15.0
    """A request's line and headers must arrive whole within this time of its first byte
    (or of the connection's opening); else 408 and the connection closes."""
    body_idle_timeout_seconds: float = 30.0
    """Longest wait for the next bytes of a body the bridge is reading; else 408."""
    min_body_rate_bytes: int = 16 * 1024
    """Slowest average body rate (bytes per second) accepted once a body has been arriving
    for min_body_rate_grace_seconds; else 408. 0 turns the check off."""
    min_body_rate_grace_seconds: float = 30.0
    """How long a body may arrive at any rate before min_body_rate_bytes applies (so small
    bodies on slow links are never measured)."""
    keepalive_timeout_seconds: float = 75.0
    """An idle keep-alive connection is closed after this long."""
    max_connections: int = 1024
    """Open client connections at most; one more is answered 503 (Connection: close)."""
    accept_error_log_interval_seconds: float = 10.0
    """When accepting fails for want of file descriptors, one log line per this interval."""
    max_wait_seconds: int = 60
    """Longest `Prefer: wait=N` honoured (a larger N is cut to it), and the longest single WaitJob
    call of the routes that wait until a job ends (they call again until it has)."""

    def __post_init__(self) -> None:
        for name in (
            "header_timeout_seconds",
            "body_idle_timeout_seconds",
            "min_body_rate_grace_seconds",
            "keepalive_timeout_seconds",
            "accept_error_log_interval_seconds",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.max_wait_seconds < 1:
            raise ValueError(f"max_wait_seconds must be at least 1, got {self.max_wait_seconds}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.min_body_rate_bytes < 0:
            raise ValueError(f"min_body_rate_bytes must be 0 or more, got {self.min_body_rate_bytes}")
        if self.public_url is None and not self.allowed_hosts and not is_loopback(self.host):
            raise ValueError(
                f"public_url (--public-url) or allowed_hosts (--allowed-hosts) is required when the "
                f"bridge listens beyond loopback (host {self.host!r}): otherwise the Host header of "
                "each request would decide where result URLs and their tokens point"
            )

    @property
    def result_hosts(self) -> tuple[str, ...]:
        """The Host names result URLs may be built from (when public_url is unset)."""
        loopback = LOOPBACK_HOSTS if is_loopback(self.host) else ()
        return tuple(h.lower() for h in self.allowed_hosts) + loopback


CONFIG = web.AppKey("config", BridgeConfig)
"""Where the application keeps its BridgeConfig (rest_bridge.context re-exports it)."""
