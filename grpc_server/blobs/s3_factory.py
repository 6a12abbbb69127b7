"""The S3 blob store from `[blobs.s3]`: imported only when configured, since it needs the `s3`
extra (aiobotocore)."""

from __future__ import annotations

from grpc_server.blobs.base import BlobStore
from grpc_server.config import ConfigError, S3BlobSettings


def make_s3_store(settings: S3BlobSettings) -> BlobStore:
    try:
        from grpc_server.blobs.s3 import S3BlobStore, S3Settings
    except ImportError as missing:
        raise ConfigError(
            f'blobs.store = "s3" needs the s3 extra: pip install "asyncgate[s3]" ({missing})'
        ) from None
    try:
        return S3BlobStore(
            S3Settings(
                endpoint_url=settings.endpoint_url,
                bucket=settings.bucket,
                region=settings.region,
                access_key_id=settings.access_key_id,
                secret_access_key=settings.secret_access_key,
                key_prefix=settings.key_prefix,
                create_bucket=settings.create_bucket,
                addressing_style="virtual" if settings.addressing_style == "virtual" else "path",
                presign=settings.presign_urls,
                public_endpoint_url=settings.public_endpoint_url,
            )
        )
    except ValueError as problem:  # what the config's rules did not catch: named as the settings
        raise ConfigError(f"blobs.s3: {problem}") from None
