"""Signed capabilities for stored result images (CONTRACT section 5).

A token is an HMAC of the job id and image index under the server's secret:
unguessable, unforgeable, and needing no storage. It lives exactly as long as
the job: once the job expires the image is gone and every URL answers 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path


class Capabilities:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, job_id: str, index: int) -> str:
        mac = hmac.new(self._secret, f"{job_id}/{index}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode()

    def verify(self, job_id: str, index: int, token: str) -> bool:
        return hmac.compare_digest(self.token(job_id, index), token)


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, or one generated once and kept in the data directory."""
    if configured:
        return configured.encode()
    path = data_dir / "url-signing.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()
