"""Upload staging: input files collected under limits until the request is complete.

Files are checked and stored only once the whole request has arrived, so a
refused request leaves nothing behind. Small files stay in memory (a typical
request never touches the disk before the store); a file that grows past
SPOOL_BYTES moves to a staging directory, so a 50 MB upload costs one chunk of
memory, not 50 MB. The directory is removed when the `async with` block ends,
whatever happened.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from grpc_server.domain.errors import InvalidArgument, PayloadTooLarge
from grpc_server.domain.jobs import FileRole

SPOOL_BYTES = 1024 * 1024
"""Files up to this size are kept in memory; larger ones are written to disk."""


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
        if self._dir is None:
            self._root.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix="upload-", dir=self._root))
        staged.path = self._dir / f"{staged.role}-{staged.index}"
        self._out = staged.path.open("wb")
        self._out.write(staged.memory or b"")
        staged.memory = None

    def _close_current(self) -> None:
        if self._out is not None:
            self._out.close()
        self._current = self._out = None
