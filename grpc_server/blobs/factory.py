"""Choosing the blob store a server keeps job files in (`[blobs]`, docs/deployment.md)."""

from __future__ import annotations

from grpc_server.blobs.base import BlobStore
from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.config import ServerConfig

SYNCED_SQLITE_MODES = ("FULL", "EXTRA")


def blob_store_kind(config: ServerConfig) -> str:
    """ "directory", "s3" or "database"; "auto" resolved: a directory beside SQLite, the database
    with PostgreSQL, whose replicas do not share a local directory."""
    kind = config.blobs.store
    if kind == "auto":
        return "database" if config.database_url else "directory"
    return kind


def make_blob_store(config: ServerConfig) -> BlobStore | None:
    """The configured blob store, not yet open; None: files stay in the job database."""
    kind = blob_store_kind(config)
    if kind == "database":
        return None
    if kind == "directory":
        return DirectoryBlobStore(config.blobs.directory or config.data_dir / "blobs", fsync=_fsync(config))
    from grpc_server.blobs.s3_factory import make_s3_store  # only with the s3 extra installed

    return make_s3_store(config.blobs.s3)


def _fsync(config: ServerConfig) -> bool:
    """As configured; else as durable as the job store's commits (PostgreSQL syncs each)."""
    if config.blobs.fsync is not None:
        return config.blobs.fsync
    return config.database_url is not None or config.sqlite_synchronous.upper() in SYNCED_SQLITE_MODES
