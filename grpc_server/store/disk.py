"""The local disk under a store: telling "no space left" apart, and checking that a write fits."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from grpc_server.store.base import StoreFull, StoreUnavailable

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
PROBE_BYTES = 1024 * 1024
"""What ping() checks it could still write: one blob chunk (base.CHUNK_BYTES)."""


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS


@contextmanager
def no_space_is_full() -> Iterator[None]:
    """Raise StoreFull (with its own message, not the OSError's paths) for a write that ran out of
    space; any other OSError goes through unchanged."""
    try:
        yield
    except OSError as exc:
        if is_no_space(exc):
            raise StoreFull() from exc
        raise


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
    if os.fstatvfs(fd).f_bavail * os.fstatvfs(fd).f_frsize < size:
        raise StoreFull()
