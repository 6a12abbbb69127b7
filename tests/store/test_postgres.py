"""PostgreSQL-only behaviour: migrations, many replicas at once, big blobs, an unreachable server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from grpc_server.config import ServerConfig
from grpc_server.domain.jobs import InputFile, Job, JobStatus, OutputBlob
from grpc_server.store.base import CHUNK_BYTES, StagedFile, StoreUnavailable
from grpc_server.store.factory import make_store, prepare_store
from grpc_server.store.migrate import migrate
from grpc_server.store.migrations import migrations
from grpc_server.store.pg_connect import unavailable
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore
from tests.pg import TEST_DATABASE_URL, server_address, with_address
from tests.store.conftest import postgres_store
from tests.store.test_store_contract import ERROR, LEASE, T0, _job, _result
from tests.tcp_proxy import TcpProxy

VERSIONS = [m.version for m in migrations("postgres")]
CLOSED_PORT_DSN = "postgresql://postgres@127.0.0.1:1/test"


def _small_input() -> list[StagedFile]:
    return [StagedFile(InputFile("image", 0, "a.png", "image/png", 3, 1, 1), b"png")]


async def _pending_jobs(store: PostgresStore, count: int) -> list[Job]:
    jobs = [_job(T0 + timedelta(milliseconds=i)) for i in range(count)]
    for job in jobs:
        await store.create_job(job, _small_input())
    return jobs


@asynccontextmanager
async def _replicas(schema: str, count: int) -> AsyncIterator[list[PostgresStore]]:
    """`count` stores, each with its own pool: as many server replicas would have."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(postgres_store(schema, max_size=3)) for _ in range(count)]


@pytest.fixture
async def migrated(pg_schema: str) -> str:
    await migrate(TEST_DATABASE_URL, schema=pg_schema)
    return pg_schema


async def _tables(schema: str) -> list[str]:
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", schema
        )
        return [r["table_name"] for r in rows]
    finally:
        await conn.close()


async def test_migrations_apply_once(pg_schema: str) -> None:
    assert VERSIONS and VERSIONS[0] == "0001_initial"
    assert await migrate(TEST_DATABASE_URL, schema=pg_schema) == VERSIONS
    assert await migrate(TEST_DATABASE_URL, schema=pg_schema) == []
    assert await PostgresStore(TEST_DATABASE_URL, schema=pg_schema).migrate() == []
    assert await _tables(pg_schema) == [
        "blob_chunks",
        "job_labels",
        "jobs",
        "schema_migrations",
        "webhook_attempts",
        "webhook_endpoints_disabled",
        "webhook_outbox",
    ]


async def test_replicas_migrating_at_once_apply_each_migration_once(pg_schema: str) -> None:
    results = await asyncio.gather(*[migrate(TEST_DATABASE_URL, schema=pg_schema) for _ in range(5)])
    assert sorted(results) == [[]] * 4 + [VERSIONS]
    assert await _tables(pg_schema) == [
        "blob_chunks",
        "job_labels",
        "jobs",
        "schema_migrations",
        "webhook_attempts",
        "webhook_endpoints_disabled",
        "webhook_outbox",
    ]
    async with postgres_store(pg_schema) as store:
        job = _job()
        await store.create_job(job, _small_input())
        assert await store.get_job(job.id) is not None


async def _migrate_command(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grpc_server.store.migrate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_migrate_command(pg_schema: str, tmp_path: Path) -> None:
    code, out, _ = await _migrate_command("--dsn", TEST_DATABASE_URL, "--schema", pg_schema)
    assert code == 0 and f"applied {VERSIONS[0]}" in out
    config = tmp_path / "server.toml"
    config.write_text(f'database_url = "{TEST_DATABASE_URL}"\n')
    code, out, _ = await _migrate_command("--config", str(config), "--schema", pg_schema)
    assert code == 0 and "nothing to apply" in out
    code, _, err = await _migrate_command("--dsn", CLOSED_PORT_DSN)
    assert code == 1 and "unavailable" in err


async def test_concurrent_claims_never_hand_out_a_job_twice(migrated: str) -> None:
    async with _replicas(migrated, 4) as stores:
        jobs = await _pending_jobs(stores[0], 50)

        async def worker(store: PostgresStore, name: str) -> list[str]:
            claimed: list[str] = []
            while batch := await store.claim_jobs(name, 3, T0, T0 + LEASE):
                claimed += [j.id for j in batch]
            return claimed

        runs = [worker(store, f"r{r}-w{w}") for r, store in enumerate(stores) for w in range(3)]
        claimed = [job_id for run in await asyncio.gather(*runs) for job_id in run]
        assert sorted(claimed) == sorted(j.id for j in jobs)
        states = [await stores[0].get_job(j.id) for j in jobs]
        assert all(s is not None and s.status == JobStatus.PROCESSING and s.attempts == 1 for s in states)


async def test_concurrent_reapers_count_each_job_once(migrated: str) -> None:
    async with _replicas(migrated, 4) as stores:
        jobs = await _pending_jobs(stores[0], 30)

        async def reap_everywhere(now: timedelta) -> tuple[int, int]:
            results = await asyncio.gather(
                *[s.reap_expired_leases(T0 + now, 2, ERROR) for s in stores for _ in range(2)]
            )
            return sum(r.requeued for r in results), sum(r.failed for r in results)

        assert len(await stores[0].claim_jobs("dead", 30, T0, T0 + LEASE)) == 30
        assert await reap_everywhere(2 * LEASE) == (30, 0)
        assert len(await stores[1].claim_jobs("dead-again", 30, T0, T0 + 3 * LEASE)) == 30
        assert await reap_everywhere(4 * LEASE) == (0, 30)
        states = [await stores[0].get_job(j.id) for j in jobs]
        assert all(s is not None and s.status == JobStatus.FAILED and s.error == ERROR for s in states)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_large_blob_round_trips_in_chunks(migrated: str, tmp_path: Path) -> None:
    size = 12 * CHUNK_BYTES + 123
    source = tmp_path / "big.png"
    source.write_bytes(os.urandom(size))
    info = InputFile("image", 0, "big.png", "image/png", size, 8, 8)
    job = _job()
    (tmp_path / "out").mkdir()
    async with postgres_store(migrated) as store:
        await store.create_job(job, [StagedFile(info, source)])
        [exported] = await store.export_inputs(job.id, tmp_path / "out")
        assert exported.path.stat().st_size == size and _digest(exported.path) == _digest(source)

        output = os.urandom(size)
        await store.claim_jobs("w", 1, T0, T0 + LEASE)
        assert await store.complete_job(job.id, "w", _result(job, 1), [OutputBlob(output, "image/png")], T0)
        chunks = [c async for c in store.read_output(job.id, 0)]
        assert len(chunks) == 13 and all(len(c) <= CHUNK_BYTES for c in chunks)
        assert b"".join(chunks) == output
        assert await store.delete_expired(T0 + timedelta(days=1), 10) == 1

    conn = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": migrated})
    try:
        assert await conn.fetchval("SELECT count(*) FROM blob_chunks") == 0
    finally:
        await conn.close()


async def test_an_unreachable_database_is_unavailable() -> None:
    store = PostgresStore(CLOSED_PORT_DSN)
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await migrate(CLOSED_PORT_DSN)
    await store.close()


async def test_a_store_that_loses_its_database_is_unavailable(migrated: str) -> None:
    async with TcpProxy(*server_address(TEST_DATABASE_URL)) as proxy:
        store = PostgresStore(with_address(TEST_DATABASE_URL, proxy.host, proxy.port), schema=migrated)
        await store.open()
        heard: list[StoreUnavailable | None] = []
        store.watch_health(heard.append)
        try:
            await store.ping()
            assert heard == []  # nothing to tell while all is well
            proxy.cut(reset=False)  # closed, as a network failure or a dead server would
            with pytest.raises(StoreUnavailable):
                await store.get_job(_job().id)
            assert len(heard) == 1 and isinstance(heard[0], StoreUnavailable)  # told by the request itself
            with pytest.raises(StoreUnavailable):
                await store.ping()
        finally:
            await store.close()


async def test_the_factory_picks_and_prepares_the_backend(pg_schema: str, tmp_path: Path) -> None:
    assert isinstance(make_store(ServerConfig(data_dir=tmp_path)), SQLiteStore)
    config = replace(ServerConfig(data_dir=tmp_path), database_url=TEST_DATABASE_URL)
    assert isinstance(make_store(config), PostgresStore)
    # The factory's store uses the DSN's default schema; this test uses its own.
    store = PostgresStore(TEST_DATABASE_URL, schema=pg_schema)
    await prepare_store(store, replace(config, migrate_on_start=False))
    await store.close()
    assert await _tables(pg_schema) == []
    await prepare_store(store, config)
    try:
        assert await _tables(pg_schema) == [
            "blob_chunks",
            "job_labels",
            "jobs",
            "schema_migrations",
            "webhook_attempts",
            "webhook_endpoints_disabled",
            "webhook_outbox",
        ]
        await store.ping()
    finally:
        await store.close()


async def test_a_database_that_accepts_only_reads_is_unavailable(migrated: str) -> None:
    # As after a failover onto a standby: reads answer, writes are refused.
    separator = "&" if "?" in TEST_DATABASE_URL else "?"
    read_only = f"{TEST_DATABASE_URL}{separator}default_transaction_read_only=on"
    store = PostgresStore(read_only, schema=migrated)
    with pytest.raises(StoreUnavailable, match="accepts only reads"):
        await store.open()  # its ping checks that writes are accepted, not only reads
    await store.close()
    conn = await asyncpg.connect(read_only, server_settings={"search_path": migrated})
    try:
        with pytest.raises(StoreUnavailable, match="accepts only reads"), unavailable():
            await conn.execute("DELETE FROM jobs")  # a write meeting it: mapped the same way
    finally:
        await conn.close()
