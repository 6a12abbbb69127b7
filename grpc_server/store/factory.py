"""Choosing and preparing the store a server runs on.

`database_url` set: PostgreSQL, shared by every replica (migrated at start when
`migrate_on_start`, which is safe with many replicas starting at once: see migrate.py).
Otherwise: the embedded SQLite file under `data_dir`, which migrates itself when it opens.
Job files go to the configured blob store beside it (grpc_server.blobs.factory).
"""

from __future__ import annotations

from grpc_server.blobs.factory import make_blob_store
from grpc_server.config import ServerConfig
from grpc_server.store.base import JobStore
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore
from grpc_server.webhooks.outbox import EndpointPlan


def make_store(config: ServerConfig) -> JobStore:
    """The configured store, storing the events its webhook endpoints want with each job's end."""
    store: JobStore
    blobs = make_blob_store(config)
    if config.database_url:
        # The data directory still takes uploads and job inputs: ping() checks it has space.
        store = PostgresStore(
            config.database_url, max_size=config.database_pool_size, scratch_dir=config.data_dir, blobs=blobs
        )
    else:
        store = SQLiteStore(config.database_path, config.sqlite_synchronous, blobs=blobs)
    if config.webhooks:
        store.use_webhooks(EndpointPlan(config.webhooks))
    return store


async def prepare_store(store: JobStore, config: ServerConfig) -> None:
    """Migrate (PostgreSQL with migrate_on_start) and open `store`; StoreUnavailable if unreachable."""
    if isinstance(store, PostgresStore) and config.migrate_on_start:
        await store.migrate()  # before open: a failed migration leaves no pool to close
    await store.open()
