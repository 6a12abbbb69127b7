"""Blobs in an S3 bucket: AWS, or an S3-compatible server (SeaweedFS, MinIO, Ceph...).

Needs the `s3` extra (aiobotocore); only this module imports it, and the server imports
this module only when configured for S3, so a server without the extra still starts.

Every key is stored as key_prefix + key, so that one bucket can serve several deployments.
A file is put with one put_object when it fits in one part (PART_BYTES), otherwise as a
multipart upload of PART_BYTES parts read from the file in a thread, one part ahead of the
upload, never the whole file; a failed upload is aborted. Reads stream get_object's body in
chunks of at most CHUNK_BYTES.

Errors: an endpoint that cannot be reached, a timeout or a server error (5xx) is
StoreUnavailable, and so is a missing bucket or refused credentials, each with a message
that names the bucket and what went wrong (never a secret); a missing object is BlobNotFound.
The caller's files (put's source, export's destination) raise their own OSError, except no
space left, which is StoreFull.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, NoReturn, ParamSpec, TypeVar
from urllib.parse import urlsplit

import aiohttp

try:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        CredentialRetrievalError,
        EndpointConnectionError,
        IncompleteReadError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
        ResponseStreamingError,
    )
except ImportError as exc:  # installed without the s3 extra
    raise ImportError("the S3 blob store needs the s3 extra: pip install 'asyncgate[s3]'") from exc

from grpc_server.blobs.base import BlobInfo, BlobNotFound
from grpc_server.blobs.keys import check_key, check_prefix
from grpc_server.blobs.threads import BlobThreads
from grpc_server.store.base import CHUNK_BYTES, StoreFull, StoreUnavailable
from grpc_server.store.disk import is_no_space

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, ObjectTypeDef

log = logging.getLogger("asyncgate.blobs")
P = ParamSpec("P")
T = TypeVar("T")

PART_BYTES = 8 * CHUNK_BYTES
"""Multipart upload parts (S3 wants at least 5 MiB, but for the last). 10,000 parts at most:
a file of up to 80 GiB."""
DELETE_BATCH = 1000
"""delete_objects takes at most this many keys."""
MAX_PRESIGN = timedelta(days=7)
"""The longest a SigV4 presigned URL may be valid."""
FILE_THREADS = 4

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_SERVER_CODES = frozenset({"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown"})


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    endpoint_url: str | None = None
    """The S3 API's address (e.g. http://seaweedfs:8333); None: AWS S3 in `region`."""
    bucket: str
    region: str = "us-east-1"
    access_key_id: str | None = None
    """With secret_access_key; both None: the default AWS credential chain (environment, files,
    instance role)."""
    secret_access_key: str | None = field(default=None, repr=False)
    key_prefix: str = ""
    """Put before every key in the bucket (e.g. "prod/"; ends with "/"), so that one bucket can
    serve several deployments."""
    create_bucket: bool = False
    """Create the bucket at open() when it does not exist."""
    addressing_style: Literal["path", "virtual"] = "path"
    """"path" (endpoint/bucket/key) suits S3-compatible servers; "virtual" (bucket.endpoint/key)."""
    presign: bool = False
    """Hand out presigned GET URLs, for clients to fetch outputs from the bucket directly."""
    public_endpoint_url: str | None = None
    """The address clients reach the bucket at, for presigned URLs; None: endpoint_url."""
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0
    max_pool_connections: int = 256
    """Connections kept to the endpoint: requests beyond this many wait for one (the dispatcher
    runs up to 256 jobs at once by default)."""
    max_attempts: int = 3
    """Attempts at each request (botocore's standard retry mode: connection errors, 5xx, throttling)."""

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("the blob bucket has no name")
        if self.key_prefix:
            check_prefix(self.key_prefix)
            if not self.key_prefix.endswith("/"):
                raise ValueError(f"key_prefix {self.key_prefix!r} must end with '/', e.g. 'prod/'")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        if min(self.connect_timeout_seconds, self.read_timeout_seconds) <= 0:
            raise ValueError("S3 timeouts must be positive")
        if self.max_pool_connections < 1 or self.max_attempts < 1:
            raise ValueError("max_pool_connections and max_attempts must be at least 1")


def _endpoint_name(url: str | None) -> str:
    """The endpoint for messages: scheme, host and port only (never credentials in a URL)."""
    if url is None:
        return "AWS S3"
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class S3BlobStore:
    name = "s3"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.presigns = settings.presign
        self._where = f"blob bucket {settings.bucket!r}"
        self._endpoint = _endpoint_name(settings.endpoint_url)
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._presigner: S3Client | None = None
        self._threads = BlobThreads(FILE_THREADS, "blob-s3-files")

    # -- lifecycle

    async def open(self) -> None:
        s = self.settings
        config = AioConfig(
            region_name=s.region,
            signature_version="s3v4",
            s3={"addressing_style": s.addressing_style},
            connect_timeout=s.connect_timeout_seconds,
            read_timeout=s.read_timeout_seconds,
            max_pool_connections=s.max_pool_connections,
            retries={"mode": "standard", "total_max_attempts": s.max_attempts},
        )
        session = get_session()
        stack = AsyncExitStack()
        try:
            for endpoint in (s.endpoint_url, s.public_endpoint_url):
                client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        region_name=s.region,
                        endpoint_url=endpoint,
                        aws_access_key_id=s.access_key_id,
                        aws_secret_access_key=s.secret_access_key,
                        config=config,
                    )
                )
                self._client = self._client or client
                self._presigner = client
                if s.public_endpoint_url in (None, s.endpoint_url):
                    break
            await self._prepare_bucket()
        except BaseException:
            self._client = self._presigner = None
            await stack.aclose()
            raise
        self._stack = stack

    async def _prepare_bucket(self) -> None:
        try:
            with self._errors("open the bucket", bucket_head=True):
                await self.client.head_bucket(Bucket=self.settings.bucket)
            return
        except _MissingBucket as exc:
            if not self.settings.create_bucket:
                raise _MissingBucket(f"{exc}: create it, or set create_bucket") from exc
        extra = {}
        if self.settings.region != "us-east-1":  # AWS refuses its default region as a constraint
            extra = {"CreateBucketConfiguration": {"LocationConstraint": self.settings.region}}
        try:
            with self._errors("create the bucket"):
                await self.client.create_bucket(Bucket=self.settings.bucket, **extra)  # type: ignore[arg-type]
            log.info("%s created at %s", self._where, self._endpoint)
        except _BucketTaken:  # by another replica starting at once, or by someone else
            with self._errors("open the bucket", bucket_head=True):
                await self.client.head_bucket(Bucket=self.settings.bucket)

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._client = self._presigner = None
        if stack is not None:
            await stack.aclose()
        await self._threads.close()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("the S3 blob store is not open")
        return self._client

    async def ping(self) -> None:
        with self._errors("reach the bucket", bucket_head=True):
            await self.client.head_bucket(Bucket=self.settings.bucket)

    def _name(self, key: str) -> str:
        return self.settings.key_prefix + check_key(key)

    # -- errors

    @contextmanager
    def _errors(self, doing: str, key: str | None = None, *, bucket_head: bool = False) -> Iterator[None]:
        """S3's and the network's failures as the store's (see the module's doc). `key`: the
        object asked for; `bucket_head`: a head_bucket, whose 404 (no body) is a missing bucket."""
        try:
            yield
        except ClientError as exc:
            self._client_error(exc, doing, key, bucket_head)
        except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unavailable(self._connection_problem(exc), exc) from exc

    def _client_error(self, exc: ClientError, doing: str, key: str | None, bucket_head: bool) -> NoReturn:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        what = code if code and not code.isdigit() else f"HTTP {status}"
        if code == "NoSuchKey" or (key is not None and code in ("404", "NotFound")):
            raise BlobNotFound(key or "") from exc
        if code == "NoSuchBucket" or (bucket_head and status == 404):
            message = f"{self._where} does not exist at {self._endpoint}"
            log.warning("%s: %s", message, exc)
            raise _MissingBucket(message) from exc
        if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise _BucketTaken() from exc
        elif code in _ACCESS_CODES or status == 403:
            message = f"{self._where}: access denied ({what}): check the credentials and the bucket's policy"
        elif status >= 500 or code in _SERVER_CODES:
            message = f"{self._where}: the S3 server at {self._endpoint} failed to {doing} ({what})"
        else:
            message = f"{self._where}: the S3 server at {self._endpoint} refused to {doing} ({what})"
        raise self._unavailable(message, exc) from exc

    def _connection_problem(self, exc: Exception) -> str:
        where, endpoint = self._where, self._endpoint
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return (
                f"{where}: no S3 credentials: set access_key_id and secret_access_key, "
                "or provide them through the default AWS credential chain"
            )
        if isinstance(exc, ConnectTimeoutError):
            return f"{where}: connecting to {endpoint} timed out"
        if isinstance(exc, EndpointConnectionError):
            return f"{where}: cannot connect to {endpoint}"
        if isinstance(exc, ReadTimeoutError | TimeoutError):
            return f"{where}: {endpoint} did not answer in time"
        if isinstance(exc, ConnectionClosedError | ResponseStreamingError | IncompleteReadError):
            return f"{where}: the connection to {endpoint} broke"
        return f"{where}: cannot use {endpoint} ({type(exc).__name__})"

    @staticmethod
    def _unavailable(message: str, exc: Exception) -> StoreUnavailable:
        log.warning("%s: %s", message, exc)
        return StoreUnavailable(message)

    # -- put

    async def put(self, key: str, source: Path | bytes) -> int:
        name = self._name(key)
        if isinstance(source, bytes):
            with self._errors("write a blob"):
                await self.client.put_object(Bucket=self.settings.bucket, Key=name, Body=source)
            return len(source)
        src = await self._threads.run(source.open, "rb")
        try:
            first = await self._threads.run(src.read, PART_BYTES)
            second = await self._threads.run(src.read, PART_BYTES) if len(first) == PART_BYTES else b""
            if not second:
                with self._errors("write a blob"):
                    await self.client.put_object(Bucket=self.settings.bucket, Key=name, Body=first)
                return len(first)
            return await self._multipart(name, src, [first, second])
        finally:
            src.close()

    async def _multipart(self, name: str, src: IO[bytes], first_parts: Sequence[bytes]) -> int:
        bucket = self.settings.bucket
        with self._errors("write a blob"):
            upload_id = (await self.client.create_multipart_upload(Bucket=bucket, Key=name))["UploadId"]
        parts: builtins.list[CompletedPartTypeDef] = []
        size = 0
        ahead: asyncio.Future[bytes] | None = None
        try:
            pending = list(first_parts)
            while pending:
                data = pending.pop(0)
                if not pending:  # read the next part while this one is sent
                    ahead = asyncio.ensure_future(self._threads.run(src.read, PART_BYTES))
                number = len(parts) + 1
                with self._errors("write a blob"):
                    answer = await self.client.upload_part(
                        Bucket=bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data
                    )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                size += len(data)
                if ahead is not None:
                    following, ahead = await ahead, None
                    if following:
                        pending.append(following)
            with self._errors("write a blob"):
                await self.client.complete_multipart_upload(
                    Bucket=bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            if ahead is not None:  # the file is closed after: let the thread finish with it
                await asyncio.wait([ahead])
                if not ahead.cancelled():
                    ahead.exception()  # retrieved: the upload's failure is the one to raise
            await self._abort(name, upload_id)
            raise
        return size

    async def _abort(self, name: str, upload_id: str) -> None:
        try:
            await self.client.abort_multipart_upload(
                Bucket=self.settings.bucket, Key=name, UploadId=upload_id
            )
        except (ClientError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
            # Its parts stay until a lifecycle rule (AbortIncompleteMultipartUpload) removes them.
            log.warning("%s: could not abort the multipart upload of %s: %s", self._where, name, exc)

    # -- read

    def read(self, key: str) -> AsyncIterator[bytes]:
        return self._chunks(key, self._name(key))

    async def _chunks(self, key: str, name: str) -> AsyncIterator[bytes]:
        body = await self._get(key, name)
        async with body:
            while chunk := await self._read_chunk(key, body):
                yield chunk

    async def _get(self, key: str, name: str) -> StreamingBody:
        with self._errors("read a blob", key):
            return (await self.client.get_object(Bucket=self.settings.bucket, Key=name))["Body"]

    async def _read_chunk(self, key: str, body: StreamingBody) -> bytes:
        """Up to CHUNK_BYTES, fewer only at the end; b"" at the end."""
        pieces: builtins.list[bytes] = []
        size = 0
        with self._errors("read a blob", key):
            while size < CHUNK_BYTES:
                data = await body.read(CHUNK_BYTES - size)
                if not data:
                    break
                pieces.append(data)
                size += len(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def export(self, key: str, dest: Path) -> None:
        body = await self._get(key, self._name(key))
        async with body:
            out = await self._caller_file(dest.open, "wb")
            try:
                while chunk := await self._read_chunk(key, body):
                    await self._caller_file(out.write, chunk)
            finally:
                await self._caller_file(out.close)

    async def _caller_file(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await self._threads.run(fn, *args, **kwargs)
        except OSError as exc:
            if is_no_space(exc):
                raise StoreFull() from exc
            raise

    # -- delete and list

    async def delete(self, keys: Collection[str]) -> None:
        names = [self._name(key) for key in keys]
        for start in range(0, len(names), DELETE_BATCH):
            await self._delete_names(names[start : start + DELETE_BATCH])

    async def _delete_names(self, names: Sequence[str]) -> None:
        with self._errors("delete blobs"):
            answer = await self.client.delete_objects(
                Bucket=self.settings.bucket,
                Delete={"Objects": [{"Key": name} for name in names], "Quiet": True},
            )
        errors = answer.get("Errors", [])
        if errors:  # keys already gone are not among them: S3 deletes those quietly
            code = errors[0].get("Code", "unknown")
            message = (
                f"{self._where}: the S3 server did not delete {len(errors)} of {len(names)} blobs ({code})"
            )
            raise self._unavailable(message, RuntimeError(str(errors[:3])))

    async def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        async for page in self._pages(prefix):
            await self._delete_names([obj["Key"] for obj in page])
            deleted += len(page)
        return deleted

    def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        check_prefix(prefix)
        return self._list(prefix)

    async def _list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        strip = len(self.settings.key_prefix)
        async for page in self._pages(prefix):
            for obj in page:
                key = obj["Key"][strip:]
                try:
                    check_key(key)
                except ValueError:  # not a blob of ours (a folder marker, say)
                    log.debug("%s: skipped %r while listing", self._where, obj["Key"])
                    continue
                yield BlobInfo(key, obj["Size"], obj["LastModified"].astimezone(UTC))

    async def _pages(self, prefix: str) -> AsyncIterator[builtins.list[ObjectTypeDef]]:
        """The objects under key_prefix + `prefix`, a page (up to 1000) at a time."""
        full_prefix = self.settings.key_prefix + check_prefix(prefix)
        token: str | None = None
        while True:
            with self._errors("list blobs"):
                if token is None:
                    page = await self.client.list_objects_v2(Bucket=self.settings.bucket, Prefix=full_prefix)
                else:
                    page = await self.client.list_objects_v2(
                        Bucket=self.settings.bucket, Prefix=full_prefix, ContinuationToken=token
                    )
            objects = page.get("Contents", [])
            if objects:
                yield objects
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # -- presigned URLs

    async def presign(self, key: str, expires_in: timedelta) -> str | None:
        name = self._name(key)
        if not self.settings.presign:
            return None
        if expires_in <= timedelta(0):
            raise ValueError(f"a presigned URL must be valid for some time, not {expires_in}")
        seconds = max(1, int(min(expires_in, MAX_PRESIGN).total_seconds()))
        if self._presigner is None:
            raise RuntimeError("the S3 blob store is not open")
        return await self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.settings.bucket, "Key": name}, ExpiresIn=seconds
        )


class _MissingBucket(StoreUnavailable):
    """No such bucket (open() may create it)."""


class _BucketTaken(Exception):
    """create_bucket found it made already."""
