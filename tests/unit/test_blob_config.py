"""`[blobs]`: which blob store a server builds from its configuration, and the refusals of
settings that cannot work, each naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.blobs.factory import blob_store_kind, make_blob_store
from grpc_server.blobs.s3 import S3BlobStore
from grpc_server.config import ConfigError, config_from_mapping

PG = "postgresql://postgres@127.0.0.1:5432/test"


def test_auto_is_a_directory_beside_sqlite_and_the_database_with_postgresql(tmp_path: Path) -> None:
    sqlite = config_from_mapping({"data_dir": str(tmp_path)}, env={})
    assert blob_store_kind(sqlite) == "directory"
    store = make_blob_store(sqlite)
    assert isinstance(store, DirectoryBlobStore) and store.root == tmp_path / "blobs"
    postgres = config_from_mapping({"database_url": PG}, env={})
    assert blob_store_kind(postgres) == "database" and make_blob_store(postgres) is None


@pytest.mark.parametrize(
    ("doc", "fsync"),
    [
        ({}, False),  # SQLite NORMAL: commits are not synced either
        ({"sqlite_synchronous": "FULL"}, True),
        ({"database_url": PG, "blobs": {"store": "directory"}}, True),  # PostgreSQL syncs commits
        ({"sqlite_synchronous": "FULL", "blobs": {"fsync": False}}, False),  # as configured
    ],
)
def test_the_directory_syncs_as_the_job_store_commits(doc: dict[str, object], fsync: bool) -> None:
    store = make_blob_store(config_from_mapping(doc, env={}))
    assert isinstance(store, DirectoryBlobStore) and store.fsync is fsync


def test_an_s3_store_from_its_settings() -> None:
    doc = {
        "blobs": {
            "store": "s3",
            "s3": {
                "bucket": "jobs",
                "endpoint_url": "http://127.0.0.1:8333",
                "access_key_id": "AKID",
                "secret_access_key_env": "S3_SECRET",
                "key_prefix": "prod/",
                "presign_urls": True,
                "public_endpoint_url": "https://blobs.example.com",
            },
        }
    }
    store = make_blob_store(config_from_mapping(doc, env={"S3_SECRET": "shh"}))
    assert isinstance(store, S3BlobStore)
    settings = store.settings
    assert (settings.bucket, settings.endpoint_url, settings.key_prefix) == (
        "jobs",
        "http://127.0.0.1:8333",
        "prod/",
    )
    assert (settings.access_key_id, settings.secret_access_key) == ("AKID", "shh")
    assert settings.presign and settings.public_endpoint_url == "https://blobs.example.com"


@pytest.mark.parametrize(
    ("blobs", "env", "message"),
    [
        ({"store": "s3"}, {}, 'blobs.s3.bucket: required with blobs.store = "s3"'),
        ({"store": "bucket"}, {}, "blobs.store: must be one of auto, directory, s3, database"),
        ({"s3": {"key_prefix": "prod"}}, {}, 'blobs.s3.key_prefix: must be empty or end with "/"'),
        (
            {"s3": {"secret_access_key_env": "NOPE"}},
            {},
            "blobs.s3.secret_access_key_env: environment variable NOPE",
        ),
        (
            {"s3": {"endpoint_url": "127.0.0.1:8333"}},
            {},
            "blobs.s3.endpoint_url: must be an http:// or https://",
        ),
        ({"s3": {"bukket": "x"}}, {}, "blobs.s3: unknown setting(s) bukket (did you mean bucket?)"),
        ({"orphan_sweep_interval_seconds": 0}, {}, "blobs.orphan_sweep_interval_seconds: must be > 0"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(
    blobs: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_mapping({"blobs": blobs}, env=env)
    assert str(refused.value).startswith(message)


def test_half_the_credentials_is_refused_when_the_store_is_made() -> None:
    config = config_from_mapping(
        {"blobs": {"store": "s3", "s3": {"bucket": "jobs", "access_key_id": "AKID"}}}, env={}
    )
    with pytest.raises(ConfigError, match=r"blobs\.s3: set both access_key_id and secret_access_key"):
        make_blob_store(config)
