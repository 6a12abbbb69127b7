"""Job files in a blob store beside the rows (store.blobs_beside), on both job stores: every
file written before the row that names it, none left behind by a create that fails or a
completion that lost its lease, deleted with the job, orphans collected, and jobs stored in
the database before a blob store was configured still readable."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from grpc_server.blobs.base import BlobStore
from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.blobs.s3 import S3BlobStore
from grpc_server.domain.errors import TooManyJobsInFlight
from grpc_server.domain.jobs import OutputBlob
from grpc_server.store.admission import AdmissionLimits, KeyPolicy
from grpc_server.store.base import DuplicateRequestId, JobStore, StoreUnavailable
from grpc_server.store.blobs_beside import ORPHAN_GRACE, SMALL_OUTPUTS_BYTES, input_key, output_key
from grpc_server.store.migrate import migrate
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore
from tests.blobs.conftest import s3_settings
from tests.pg import TEST_DATABASE_URL
from tests.s3_server import S3Endpoint, fresh_bucket
from tests.store.conftest import fresh_schema
from tests.store.test_store_contract import ERROR, LEASE, T0, _job, _result, _staged

SETUPS = ["sqlite/directory", "postgres/directory", "postgres/s3"]
"""Each job store with a directory beside it, and PostgreSQL with a bucket on a real S3 server."""


def _large_output() -> OutputBlob:
    """An output too large to stay in the job database (see blobs_beside.SMALL_OUTPUTS_BYTES)."""
    return OutputBlob(os.urandom(SMALL_OUTPUTS_BYTES + 1), "image/png")


@asynccontextmanager
async def job_store(kind: str, tmp_path: Path, blobs: BlobStore | None) -> AsyncIterator[JobStore]:
    """An open job store of `kind` with `blobs` beside it; reopened on the same data when called
    again with the same tmp_path (PostgreSQL: the schema is kept in tmp_path/schema)."""
    if kind == "sqlite":
        sqlite = SQLiteStore(tmp_path / "store.sqlite3", blobs=blobs)
        await sqlite.open()
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    marker = tmp_path / "schema"
    pg = PostgresStore(TEST_DATABASE_URL, schema=marker.read_text(), blobs=blobs)
    await pg.open()
    try:
        yield pg
    finally:
        await pg.close()


@pytest.fixture(params=SETUPS)
def setup(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def kind(setup: str) -> str:
    return setup.partition("/")[0]


@pytest.fixture
async def blobs(setup: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[BlobStore]:
    """The blob store beside the job store (not open: the job store opens it)."""
    if setup.endswith("/directory"):
        yield DirectoryBlobStore(tmp_path / "blobs", fsync=False)
        return
    endpoint: S3Endpoint = request.getfixturevalue("s3_server")
    async with fresh_bucket(endpoint) as bucket:
        yield S3BlobStore(s3_settings(endpoint, bucket))


@pytest.fixture
async def data(kind: str, tmp_path: Path) -> AsyncIterator[Path]:
    """tmp_path, with a migrated PostgreSQL schema named in it for kind == "postgres"."""
    if kind == "sqlite":
        yield tmp_path
        return
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        (tmp_path / "schema").write_text(schema)
        yield tmp_path


async def keys(blobs: BlobStore) -> set[str]:
    return {info.key async for info in blobs.list()}


async def chunk_rows(store: JobStore, job_id: str) -> int:
    """Rows of blob_chunks the job has in the database itself."""
    if isinstance(store, SQLiteStore):
        return await store._read(
            lambda c: c.execute("SELECT count(*) FROM blob_chunks WHERE job_id = ?", (job_id,)).fetchone()[0]
        )
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": store.schema or "public"})
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM blob_chunks WHERE job_id = $1", job_id)
        return count
    finally:
        await conn.close()


async def read(store: JobStore, job_id: str, index: int) -> bytes:
    return b"".join([chunk async for chunk in store.read_output(job_id, index)])


async def test_files_go_to_the_blob_store_and_back(kind: str, data: Path, blobs: BlobStore) -> None:
    async with job_store(kind, data, blobs) as store:
        job = _job()
        files = [_staged(data, 3 * 1024 * 1024 + 5), _staged(data, 7, "mask")]
        await store.create_job(job, files)
        got = await store.get_job(job.id)
        assert got is not None and got.blob_store == blobs.name and got.outputs_token is None
        assert await keys(blobs) == {input_key(job.id, f.info) for f in files}
        assert await chunk_rows(store, job.id) == 0

        await store.claim_jobs("w1", 1, T0, T0 + LEASE)
        exported = await store.export_inputs(job.id, _fresh_dir(data / "export"))
        assert [e.path.read_bytes() for e in exported] == [f.path.read_bytes() for f in files]

        outputs = [OutputBlob(os.urandom(2 * 1024 * 1024), "image/png"), OutputBlob(b"", "image/png")]
        assert await store.complete_job(job.id, "w1", _result(job, 2), outputs, T0)
        done = await store.get_job(job.id)
        assert done is not None and done.outputs_token is not None
        assert await read(store, job.id, 0) == outputs[0].data
        assert await read(store, job.id, 1) == b""
        assert output_key(job.id, done.outputs_token, 0) in await keys(blobs)
        assert await chunk_rows(store, job.id) == 0


async def test_small_outputs_stay_in_the_database(kind: str, data: Path, blobs: BlobStore) -> None:
    async with job_store(kind, data, blobs) as store:
        small, large = _job(), _job()
        for job in (small, large):
            await store.create_job(job, [])
        await store.claim_jobs("w1", 2, T0, T0 + LEASE)
        half = SMALL_OUTPUTS_BYTES // 2
        vectors = [OutputBlob(os.urandom(half), "application/octet-stream") for _ in range(2)]
        assert await store.complete_job(small.id, "w1", _result(small, 2), vectors, T0)
        over = [*vectors, OutputBlob(b"1", "application/octet-stream")]  # one byte over, in all
        assert await store.complete_job(large.id, "w1", _result(large, 3), over, T0)

        kept = await store.get_job(small.id)
        assert kept is not None and kept.outputs_token is None and await chunk_rows(store, small.id) == 2
        assert [await read(store, small.id, i) for i in range(2)] == [v.data for v in vectors]
        beside = await store.get_job(large.id)
        assert beside is not None and beside.outputs_token is not None
        assert await chunk_rows(store, large.id) == 0
        assert [await read(store, large.id, i) for i in range(3)] == [o.data for o in over]
        assert {key.split("/")[0] for key in await keys(blobs)} == {large.id}


async def test_a_bucket_that_presigns_takes_every_output(tmp_path: Path, s3_server: S3Endpoint) -> None:
    """Clients are handed bucket URLs for outputs, so even a small one goes to the bucket."""
    async with fresh_bucket(s3_server) as bucket:
        blobs = S3BlobStore(s3_settings(s3_server, bucket, presign=True))
        async with job_store("sqlite", tmp_path, blobs) as store:
            job = _job()
            await store.create_job(job, [])
            await store.claim_jobs("w1", 1, T0, T0 + LEASE)
            tiny = [OutputBlob(b"tiny", "image/png")]
            assert await store.complete_job(job.id, "w1", _result(job, 1), tiny, T0)
            done = await store.get_job(job.id)
            assert done is not None and done.outputs_token is not None
            assert await keys(blobs) == {output_key(job.id, done.outputs_token, 0)}
            assert await store.output_url(done, 0, timedelta(minutes=5)) is not None


async def test_a_refused_create_leaves_no_files(kind: str, data: Path, blobs: BlobStore) -> None:
    async with job_store(kind, data, blobs) as store:
        first = replace(_job(), idempotency_key="req-1", owner_key_id="vk-a")
        await store.create_job(first, [_staged(data, 10)])
        duplicate = replace(_job(), idempotency_key="req-1", owner_key_id="vk-a")
        with pytest.raises(DuplicateRequestId):
            await store.create_job(duplicate, [_staged(data, 10, index=1)])
        store.use_key_policy(KeyPolicy(limits={"vk-a": AdmissionLimits(max_jobs_in_flight=1)}))
        with pytest.raises(TooManyJobsInFlight):
            await store.create_job(replace(_job(), owner_key_id="vk-a"), [_staged(data, 10, index=2)])
        assert {key.split("/")[0] for key in await keys(blobs)} == {first.id}


async def test_a_completion_that_lost_its_lease_leaves_no_outputs(
    kind: str, data: Path, blobs: BlobStore
) -> None:
    async with job_store(kind, data, blobs) as store:
        job = _job()
        await store.create_job(job, [_staged(data, 10)])
        await store.claim_jobs("w1", 1, T0, T0 + LEASE)
        late = [_large_output()]
        assert not await store.complete_job(job.id, "w2", _result(job, 1), late, T0)  # not its lease
        assert all("/out-" not in key for key in await keys(blobs))


async def test_delete_and_expiry_take_the_files_at_once(kind: str, data: Path, blobs: BlobStore) -> None:
    async with job_store(kind, data, blobs) as store:
        deleted, expiring, kept = _job(), _job(ttl=1), _job(ttl=3600)
        for job in (deleted, expiring, kept):
            await store.create_job(job, [_staged(data, 10)])
        claimed = await store.claim_jobs("w1", 3, T0, T0 + LEASE)
        for job in claimed:
            await store.complete_job(job.id, "w1", _result(job, 1), [_large_output()], T0)
        assert any("/out-" in key for key in await keys(blobs))
        assert await store.delete_job(deleted.id)
        assert await store.delete_expired(T0 + timedelta(seconds=61), 100) == 1  # `expiring`, not `kept`
        assert {key.split("/")[0] for key in await keys(blobs)} == {kept.id}
        assert await read(store, deleted.id, 0) == b""


async def test_orphans_are_collected_after_the_grace_period(kind: str, data: Path, blobs: BlobStore) -> None:
    async with job_store(kind, data, blobs) as store:
        job = _job()
        await store.create_job(job, [_staged(data, 10)])
        await store.claim_jobs("w1", 1, T0, T0 + LEASE)
        assert await store.fail_job(job.id, "w1", ERROR, T0)
        # Files no row names: a crash between a file and its row, and the outputs of a lost lease.
        await blobs.put(input_key("no-such-job", _staged(data, 1).info), b"x")
        await blobs.put(output_key(job.id, "stale", 0), b"y")
        now = _now()
        assert await store.collect_orphan_blobs(now) == 0  # all younger than the grace period
        assert await store.collect_orphan_blobs(now + ORPHAN_GRACE + timedelta(seconds=1)) == 2
        assert {key.split("/")[0] for key in await keys(blobs)} == {job.id}
        assert await store.export_inputs(job.id, _fresh_dir(data / "export"))  # its input kept


async def test_jobs_stored_in_the_database_stay_readable_beside_a_blob_store(
    kind: str, data: Path, blobs: BlobStore
) -> None:
    async with job_store(kind, data, None) as store:
        job = _job()
        files = [_staged(data, 2 * 1024 * 1024 + 3)]
        await store.create_job(job, files)
    async with job_store(kind, data, blobs) as store:
        got = await store.get_job(job.id)
        assert got is not None and got.blob_store is None
        await store.claim_jobs("w1", 1, T0, T0 + LEASE)
        (exported,) = await store.export_inputs(job.id, _fresh_dir(data / "export"))
        assert exported.path.read_bytes() == files[0].path.read_bytes()
        new = _large_output()
        assert await store.complete_job(job.id, "w1", _result(job, 1), [new], T0)
        assert await read(store, job.id, 0) == new.data  # its outputs in the blob store, now
    async with job_store(kind, data, None) as store:  # and a server without one says so
        with pytest.raises(StoreUnavailable, match="blob"):
            await read(store, job.id, 0)


async def test_a_blob_store_that_cannot_be_used_stops_the_open(
    setup: str, kind: str, data: Path, blobs: BlobStore
) -> None:
    if isinstance(blobs, DirectoryBlobStore):
        (data / "in-the-way").write_text("a file where the directory should be")
        unusable: BlobStore = DirectoryBlobStore(data / "in-the-way" / "blobs", fsync=False)
    else:  # a bucket that does not exist, and may not be created
        assert isinstance(blobs, S3BlobStore)
        settings = replace(blobs.settings, bucket=f"missing-{uuid.uuid4().hex[:12]}", create_bucket=False)
        unusable = S3BlobStore(settings)
    with pytest.raises(StoreUnavailable):  # the server does not start
        async with job_store(kind, data, unusable):
            pass


def _fresh_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _now() -> datetime:
    return datetime.now(UTC)
