"""Upload staging: input files collected under limits until the request is complete.

Files are checked and stored only once the whole request has arrived, so a
refused request leaves nothing behind. Small files stay in memory (a typical
request never touches the disk before the store); a file that grows past
SPOOL_BYTES moves to a staging directory, so a 50 MB upload costs one chunk of
memory, not 50 MB. The directory is removed when the `async with` block ends,
whatever happened.

A process killed mid-upload (or mid-job: the dispatcher's `job-*` directories live here
too) leaves its directory behind. remove_stale_staging removes those at start and from
the sweeper, but only once nothing has been written in them for stale_staging_age(config):
longer than a job may run and than an upload may sit idle, plus STALE_MARGIN_SECONDS, so a
live upload or job of this or another process sharing the directory is never touched.
A write that runs out of disk space raises StoreFull, with no path in its message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from grpc_server.config import ServerConfig
from grpc_server.domain.errors import InvalidArgument, PayloadTooLarge
from grpc_server.domain.jobs import FileRole
from grpc_server.store.base import StoreFull
from grpc_server.store.disk import is_no_space

log = logging.getLogger("asyncgate.staging")

SPOOL_BYTES = 1024 * 1024
"""Files up to this size are kept in memory; larger ones are written to disk."""
UPLOAD_PREFIX = "upload-"
JOB_PREFIX = "job-"
"""The directories under the staging root: an upload's (here), a running job's (the dispatcher's)."""
STALE_MARGIN_SECONDS = 600.0
"""Added to the longest a live directory can go unwritten before it counts as left behind."""
NO_SPACE_TO_STAGE = "the store is full: no disk space left on this server to receive the upload"


@dataclass
class StagingFile:
    role: FileRole
    index: int
    filename: str
    content_type: str
    size: int = 0
    memory: bytes | bytearray | None = field(default_factory=bytearray)
    """The bytes while the file is small (or arrived whole); None once on disk."""
    path: Path | None = None

    @property
    def label(self) -> str:
        return "mask" if self.role == "mask" else f"image[{self.index}]"

    @property
    def param(self) -> str:
        return "mask" if self.role == "mask" else "image"

    @property
    def source(self) -> Path | bytes:
        """Where the bytes are: a path on disk, or the bytes themselves."""
        if self.memory is not None:
            return bytes(self.memory) if isinstance(self.memory, bytearray) else self.memory
        assert self.path is not None
        return self.path


class Staging:
    def __init__(self, root: Path, *, max_file_bytes: int, max_images: int) -> None:
        self._root = root
        self._max_file_bytes = max_file_bytes
        self._max_images = max_images
        self._dir: Path | None = None
        self._current: StagingFile | None = None
        self._out: BinaryIO | None = None
        self.images: list[StagingFile] = []
        self.mask: StagingFile | None = None

    async def __aenter__(self) -> Staging:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_current()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def start_file(self, role: FileRole, filename: str, content_type: str) -> None:
        """Begin a new file; the chunks written next belong to it."""
        self._close_current()
        if role == "mask":
            if self.mask is not None:
                raise InvalidArgument("only one mask may be given", "mask")
            index = 0
        else:
            if len(self.images) >= self._max_images:
                raise InvalidArgument(
                    f"too many images: more than {self._max_images} (at most {self._max_images})", "image"
                )
            index = len(self.images)
        staged = StagingFile(role, index, filename, content_type)
        if role == "mask":
            self.mask = staged
        else:
            self.images.append(staged)
        self._current = staged

    def write(self, chunk: bytes) -> None:
        current = self._current
        if current is None:
            raise InvalidArgument("file data arrived before any file was announced", "file")
        current.size += len(chunk)
        if current.size > self._max_file_bytes:
            raise PayloadTooLarge(
                f"{current.label}: larger than the limit of {self._max_file_bytes} bytes", current.param
            )
        if current.memory is not None and current.size > SPOOL_BYTES:
            self._spill(current)
        if self._out is not None:
            with _full_disk_refused():
                self._out.write(chunk)
        else:
            assert isinstance(current.memory, bytearray)
            current.memory += chunk

    def add_file(self, role: FileRole, filename: str, content_type: str, data: bytes) -> None:
        """A whole file that is already in memory (the unary call): kept as it is, not copied."""
        self.start_file(role, filename, content_type)
        current = self._current
        assert current is not None
        if len(data) > self._max_file_bytes:
            raise PayloadTooLarge(
                f"{current.label}: larger than the limit of {self._max_file_bytes} bytes", current.param
            )
        current.memory, current.size = data, len(data)
        self._current = None

    def finish(self) -> list[StagingFile]:
        self._close_current()
        return [*self.images, *([self.mask] if self.mask else [])]

    def _spill(self, staged: StagingFile) -> None:
        """Move a file that outgrew memory to disk; its later chunks go straight there."""
        with _full_disk_refused():
            self._spill_to_disk(staged)

    def _spill_to_disk(self, staged: StagingFile) -> None:
        if self._dir is None:
            self._root.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=self._root))
        staged.path = self._dir / f"{staged.role}-{staged.index}"
        self._out = staged.path.open("wb")
        self._out.write(staged.memory or b"")
        staged.memory = None

    def _close_current(self) -> None:
        if self._out is not None:
            self._out.close()
        self._current = self._out = None


@contextlib.contextmanager
def _full_disk_refused() -> Iterator[None]:
    """ENOSPC while staging: StoreFull with an upload's message (no path); other errors unchanged."""
    try:
        yield
    except OSError as exc:
        if is_no_space(exc):
            raise StoreFull(NO_SPACE_TO_STAGE) from exc
        raise


def stale_staging_age(config: ServerConfig) -> float:
    """Seconds without a write after which a staging directory is taken as left behind: a job runs
    at most job_deadline_seconds (plus the shutdown grace), an upload stream idles at most
    upload_idle_timeout_seconds; STALE_MARGIN_SECONDS more for storing and exporting."""
    dispatcher = config.dispatcher
    longest_live = max(
        dispatcher.job_deadline_seconds + dispatcher.shutdown_grace_seconds,
        config.upload_idle_timeout_seconds,
    )
    return longest_live + STALE_MARGIN_SECONDS


def remove_stale_staging(root: Path, max_age_seconds: float, now: float | None = None) -> int:
    """Remove the upload-* and job-* directories under `root` in which nothing was written for
    `max_age_seconds`; the number removed. Anything else under `root` is left alone."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith((UPLOAD_PREFIX, JOB_PREFIX)) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            newest = _last_written(Path(entry.path))
        except FileNotFoundError:  # finished and removed by its owner meanwhile
            continue
        if now - newest < max_age_seconds:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    if removed:
        log.info("removed %d staging directories left behind by stopped processes", removed)
    return removed


def _last_written(directory: Path) -> float:
    """The latest modification time of a directory and of everything in it."""
    newest = directory.lstat().st_mtime
    for path in directory.rglob("*"):
        try:
            newest = max(newest, path.lstat().st_mtime)
        except FileNotFoundError:
            continue
    return newest
