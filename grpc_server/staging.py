"""Upload staging: input files land on local disk, chunk by chunk, under limits.

Files are checked and stored only once the whole request has arrived, so a
refused request leaves nothing behind: the staging directory is removed when
the `async with` block ends, whatever happened.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from grpc_server.domain.jobs import FileRole
from grpc_server.errors import InvalidArgument, PayloadTooLarge


@dataclass
class StagingFile:
    role: FileRole
    index: int
    filename: str
    content_type: str
    path: Path
    size: int = 0

    @property
    def label(self) -> str:
        return "mask" if self.role == "mask" else f"image[{self.index}]"

    @property
    def param(self) -> str:
        return "mask" if self.role == "mask" else "image"


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
        self._root.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="upload-", dir=self._root))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_current()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def start_file(self, role: FileRole, filename: str, content_type: str) -> None:
        """Begin a new file; the chunks written next belong to it."""
        assert self._dir is not None
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
        staged = StagingFile(role, index, filename, content_type, self._dir / f"{role}-{index}")
        if role == "mask":
            self.mask = staged
        else:
            self.images.append(staged)
        self._current, self._out = staged, staged.path.open("wb")

    def write(self, chunk: bytes) -> None:
        if self._current is None or self._out is None:
            raise InvalidArgument("file data arrived before any file was announced", "file")
        self._current.size += len(chunk)
        if self._current.size > self._max_file_bytes:
            raise PayloadTooLarge(
                f"{self._current.label}: larger than the limit of {self._max_file_bytes} bytes",
                self._current.param,
            )
        self._out.write(chunk)

    def add_file(self, role: FileRole, filename: str, content_type: str, data: bytes) -> None:
        """A whole file at once (the unary call)."""
        self.start_file(role, filename, content_type)
        self.write(data)
        self._close_current()

    def finish(self) -> list[StagingFile]:
        self._close_current()
        return [*self.images, *([self.mask] if self.mask else [])]

    def _close_current(self) -> None:
        if self._out is not None:
            self._out.close()
        self._current = self._out = None
