"""Bridge configuration: a frozen dataclass, built from flags."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class BridgeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_target: str = "127.0.0.1:50051"
    """Where the gRPC server listens."""
    public_url: str | None = None
    """Absolute base of result image URLs; when unset, the origin the request came to."""
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
