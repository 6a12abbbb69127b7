"""Signed capabilities for stored result images.

A token is an HMAC of the job id and image index under the server's secret:
unguessable, unforgeable, and needing no storage. It lives exactly as long as
the job: once the job expires the image is gone and every URL answers 404.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from grpc_server.config_checks import MIN_SECRET_BYTES, ConfigError


class Capabilities:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, job_id: str, index: int) -> str:
        mac = hmac.new(self._secret, f"{job_id}/{index}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode()

    def verify(self, job_id: str, index: int, token: str) -> bool:
        # compare_digest takes only ASCII text; a token that is not ASCII is simply not ours.
        return token.isascii() and hmac.compare_digest(self.token(job_id, index), token)


KEY_FILE = "url-signing.key"


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, or one generated once and kept in the data directory.
    ConfigError for a secret too short to sign with (an empty key file left by a failed
    start among them): with it every result URL could be forged."""
    if configured is not None:
        secret = configured.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"url_signing_secret: must be at least {MIN_SECRET_BYTES} bytes long, got {len(secret)} bytes"
            )
        return secret
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _create_atomically(path, secrets.token_urlsafe(32).encode())
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the URL-signing key: {exc.strerror or exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{path}: URL-signing key is {len(secret)} bytes, at least {MIN_SECRET_BYTES} needed"
            " (delete the file to have a new one generated; URLs already given out stop working)"
        )
    return secret


def _create_atomically(path: Path, content: bytes) -> None:
    """Write `path` whole or not at all: a temporary file in the same directory (0600),
    synced, then linked into place, then the directory synced. A crash leaves at most a
    stray temporary file, never a short key. Linking (not renaming) keeps the first key
    when two processes start at once on the same directory: both then read the same one."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp creates it 0600
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError:  # a filesystem without hard links
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
