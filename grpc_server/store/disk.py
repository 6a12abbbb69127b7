"""The local disk under a store: telling "no space left" apart, and checking that a write fits."""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import suppress
from pathlib import Path

from grpc_server.store.base import CHUNK_BYTES, StoreFull, StoreUnavailable

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
PROBE_BYTES = CHUNK_BYTES
"""What ping() checks it could still write: one blob chunk."""


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS


def probe_space(directory: Path, size: int = PROBE_BYTES) -> None:
    """Check that `size` bytes can be written in `directory` now, by reserving them in a scratch
    file (posix_fallocate: blocks are allocated, nothing written) that is removed again.
    StoreFull when they cannot; StoreUnavailable when the directory cannot be written at all."""
    try:
        directory.mkdir(parents=True, exist_ok=True)  # uploads and jobs will create it anyway
        fd, name = tempfile.mkstemp(prefix=".space-probe-", dir=directory)
    except OSError as exc:
        if is_no_space(exc):
            raise StoreFull() from exc
        raise StoreUnavailable(f"the store cannot write to its data directory ({exc.strerror})") from exc
    try:
        _reserve(fd, size)
    finally:
        os.close(fd)
        with suppress(OSError):
            os.unlink(name)


def _reserve(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as exc:
        if is_no_space(exc):
            raise StoreFull() from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise StoreUnavailable(f"the store cannot write to its data directory ({exc.strerror})") from exc
    # A file system without fallocate: count the free space instead.
    stats = os.fstatvfs(fd)
    if stats.f_bavail * stats.f_frsize < size:
        raise StoreFull()
