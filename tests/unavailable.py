"""What a test does when a part of the machine it needs is missing (PostgreSQL, the SeaweedFS
S3 server, Chromium, Node, root to mount a tmpfs): where a developer runs the suite it is
skipped, saying what is missing; in CI (CI=true) it fails, since CI must run every test and
never pass by skipping one."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str, needs: str) -> NoReturn:
    """Skip the test with `message`, or fail it in CI saying that CI needs `needs`."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs {needs}: {message}")
    pytest.skip(message)
