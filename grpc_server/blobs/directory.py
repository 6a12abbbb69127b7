"""Blobs as files under a directory on this server's disk.

A key's file is root/<shard>/<job id>/<the rest of the key, its "/" written "~">, the shard
being the first two characters of the job id (the key's first segment), so that no directory
holds every job: `<job>/in/image-0` is the file `ab/<job>/in~image-0`. One directory per job
and no deeper: a new job's first file makes one directory, not one per segment (each is an
inode to create and, with `fsync`, a directory to sync; inode creation cost 0.02 to 1 ms on
the development machine's disk). "~" is not a key character, so names map back to keys.
Files an earlier version wrote one directory per segment (`ab/<job>/in/image-0`) are still
read, listed and deleted. put() writes a temporary
file under root/.partial, fsyncs it (with `fsync`), renames it into place and fsyncs the
directories it changed: the blob appears whole or not at all. The temporary files live in
one directory of their own, rather than beside their blob, so that open() finds those a
crash left behind without walking every job's directory.

Errors: running out of space (ENOSPC, EDQUOT) is StoreFull; another failure of the store's
own files is StoreUnavailable (the detail, with paths, goes to the log only); a missing blob
is BlobNotFound. The caller's files (put's source, export's destination) are the caller's:
their errors propagate as they are, except no space left, which is StoreFull there too.
"""

from __future__ import annotations

import builtins
import errno
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from grpc_server.blobs.base import BlobInfo, BlobNotFound
from grpc_server.blobs.keys import check_key, split_prefix
from grpc_server.blobs.threads import BlobThreads
from grpc_server.store.base import CHUNK_BYTES, StoreFull, StoreUnavailable
from grpc_server.store.disk import is_no_space, probe_space

log = logging.getLogger("asyncgate.blobs")

PARTIAL_DIR = ".partial"
"""Under root: the temporary files of puts under way (never a shard: shards are 1-2 characters)."""
STALE_PARTIAL_SECONDS = 600.0
"""open() removes temporary files untouched this long: a crash's leftovers. A younger one may be
another process's put under way (a directory shared by replicas), which writes to it every chunk."""
IO_THREADS = 8
LIST_BATCH = 1000
"""list() walks in a thread and hands over this many blobs at a time."""
SEPARATOR = "~"
"""Stands for "/" in the file name of a key's segments after the job id (never in a key)."""
PUT_ATTEMPTS = 3
"""A delete that empties a directory removes it; a put renaming into it then makes it again."""


def _store_error(exc: OSError, doing: str) -> StoreUnavailable:
    if is_no_space(exc):
        return StoreFull()
    log.warning("blob directory: cannot %s: %s", doing, exc)
    code = errno.errorcode.get(exc.errno or 0, "error")
    return StoreUnavailable(f"the blob store cannot {doing} in its directory ({code})")


@contextmanager
def _store_errors(doing: str) -> Iterator[None]:
    """OSErrors of the store's own files, as the store's errors."""
    try:
        yield
    except OSError as exc:
        raise _store_error(exc, doing) from exc


@contextmanager
def _caller_errors() -> Iterator[None]:
    """OSErrors of the caller's files: propagated, except no space left (StoreFull, without paths)."""
    try:
        yield
    except OSError as exc:
        if is_no_space(exc):
            raise StoreFull() from exc
        raise


def _shard(segment: str) -> str:
    # "..x" is a valid first segment, but ".." would be a path out of root.
    return segment[:2].replace(".", "_")


def _is_shard(name: str) -> bool:
    return 1 <= len(name) <= 2 and "." not in name


def _fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _make_dirs(directory: str) -> builtins.list[str]:
    """Make `directory` and its missing parents; the ones made. Tries the directory itself
    first: one call for a job's directory, two when its shard is new too."""
    try:
        os.mkdir(directory)
    except FileExistsError:  # there already, or a concurrent put made it
        return []
    except FileNotFoundError:
        made = _make_dirs(os.path.dirname(directory))
        try:
            os.mkdir(directory)
        except FileExistsError:
            return made
        return [*made, directory]
    return [directory]


def _rmdir_if_empty(directory: Path) -> bool:
    try:
        directory.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


@dataclass(frozen=True)
class _File:
    path: Path
    key: str


@dataclass(frozen=True)
class _Dir:
    """A directory to walk: the key its entries' names continue, and the start of the names
    that match (in this directory's naming: segments joined by SEPARATOR)."""

    path: Path
    key_base: str
    name_start: str
    in_job: bool
    """A job's directory or one below it (else a shard, whose entries are jobs' directories)."""


def _inner_start(directory: str, name_start: str) -> str | None:
    """For a directory of the nested layout met in a job's directory: the start of the names
    inside it that match `name_start`, or None when none can."""
    segment = directory + SEPARATOR
    if name_start.startswith(segment):
        return name_start[len(segment) :]
    return "" if segment.startswith(name_start) else None


@dataclass(frozen=True)
class _Left:
    """The walk is done with this directory's entries."""

    path: Path


class DirectoryBlobStore:
    name = "directory"
    presigns = False

    def __init__(self, root: Path, *, fsync: bool) -> None:
        self.root = root
        self.fsync = fsync
        self._partial = root / PARTIAL_DIR
        self._threads = BlobThreads(IO_THREADS, "blob-directory")
        self._token = secrets.token_hex(4)
        self._puts = itertools.count()

    def path(self, key: str) -> Path:
        """Where the blob under `key` is (or would be) kept."""
        return Path(self._path_str(key))

    def _nested_path(self, key: str) -> Path:
        """Where an earlier version kept the blob under `key`: one directory per segment."""
        return self.root / _shard(key.partition("/")[0]) / key

    async def open(self) -> None:
        await self._threads.run(self._open)

    def _open(self) -> None:
        with _store_errors("prepare"):
            self._partial.mkdir(parents=True, exist_ok=True)
            stale_before = time.time() - STALE_PARTIAL_SECONDS
            with os.scandir(self._partial) as entries:
                for entry in entries:
                    with suppress(FileNotFoundError):
                        if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < stale_before:
                            os.unlink(entry.path)
                            log.info("blob directory: removed a put's leftover temporary file %s", entry.path)

    async def close(self) -> None:
        await self._threads.close()

    async def ping(self) -> None:
        await self._threads.run(probe_space, self._partial)

    # -- put
    # Plain os calls on str paths: a put runs on a blob thread that shares the interpreter lock
    # with the event loop, so every Python step here is one the loop waits for under load.

    async def put(self, key: str, source: Path | bytes) -> int:
        return await self._threads.run(self._put, self._path_str(key), source)

    def put_now(self, key: str, data: bytes) -> int:
        """put() on the calling thread, for a caller already off the event loop (the SQLite
        writer, before the INSERT that names the blob)."""
        return self._put(self._path_str(key), data)

    def _path_str(self, key: str) -> str:
        job, _, rest = check_key(key).partition("/")
        name = rest.replace("/", SEPARATOR)
        return f"{self.root}/{_shard(job)}/{job}/{name}" if name else f"{self.root}/{_shard(job)}/{job}"

    def _put(self, dest: str, source: Path | bytes) -> int:
        fd, temporary = self._temporary()
        try:
            try:
                with _store_errors("write a blob"):
                    try:
                        size = self._copy_in(source, fd)
                        if self.fsync:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
            except _SourceError as exc:
                raise exc.error from None  # the caller's file: its own error, as it is
            changed = self._move_into_place(temporary, dest)
            if self.fsync:
                with _store_errors("write a blob"):
                    for directory in changed:
                        _fsync_dir(directory)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise
        return size

    def _temporary(self) -> tuple[int, str]:
        """A new file under root/.partial, open for writing: named by this process and a counter
        (no random names to draw); one left by an earlier process with this pid is skipped."""
        with _store_errors("write a blob"):
            while True:
                name = f"{self._partial}/put-{os.getpid()}-{self._token}-{next(self._puts)}"
                try:
                    return os.open(name, _CREATE, 0o600), name
                except FileExistsError:
                    continue
                except FileNotFoundError:  # removed since open(): make it again
                    self._partial.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _copy_in(source: Path | bytes, fd: int) -> int:
        """Write `source` into `fd`. Reading the source raises its own errors; writing is
        inside the caller's _store_errors."""
        if isinstance(source, bytes):
            _write_all(fd, memoryview(source))
            return len(source)
        size = 0
        try:
            src = source.open("rb")
        except OSError as exc:
            raise _SourceError(exc) from exc
        with src:
            while True:
                try:
                    chunk = src.read(CHUNK_BYTES)
                except OSError as exc:
                    raise _SourceError(exc) from exc
                if not chunk:
                    return size
                _write_all(fd, memoryview(chunk))
                size += len(chunk)

    def _move_into_place(self, temporary: str, dest: str) -> set[str]:
        """Rename `temporary` to `dest`, making its directories; the directories whose entries
        changed (to fsync)."""
        parent = os.path.dirname(dest)
        with _store_errors("write a blob"):
            for attempt in range(PUT_ATTEMPTS):
                made = _make_dirs(parent)
                try:
                    os.replace(temporary, dest)
                except FileNotFoundError:
                    if attempt == PUT_ATTEMPTS - 1 or not os.path.exists(temporary):
                        raise
                    continue
                return {parent, *(os.path.dirname(directory) for directory in made)}
        raise AssertionError("unreachable")

    # -- read

    def read(self, key: str) -> AsyncIterator[bytes]:
        check_key(key)
        return self._chunks(key)

    async def _chunks(self, key: str) -> AsyncIterator[bytes]:
        blob = await self._threads.run(self._open_blob, key)
        try:
            while chunk := await self._threads.run(self._read_chunk, blob):
                yield chunk
        finally:
            blob.close()

    def _open_blob(self, key: str) -> IO[bytes]:
        with _store_errors("read a blob"):
            for path in (self.path(key), self._nested_path(key)):
                with suppress(FileNotFoundError, NotADirectoryError):
                    return path.open("rb")
            raise BlobNotFound(key)

    @staticmethod
    def _read_chunk(blob: IO[bytes]) -> bytes:
        with _store_errors("read a blob"):
            return blob.read(CHUNK_BYTES)

    async def export(self, key: str, dest: Path) -> None:
        check_key(key)
        await self._threads.run(self._export, key, dest)

    def _export(self, key: str, dest: Path) -> None:
        with self._open_blob(key) as blob:
            with _caller_errors(), dest.open("wb") as out:
                while chunk := self._read_chunk(blob):
                    out.write(chunk)

    # -- delete and list

    async def delete(self, keys: Collection[str]) -> None:
        paths = [(self.path(key), self._nested_path(key)) for key in keys]
        if paths:
            await self._threads.run(self._delete, paths)

    def _delete(self, paths: builtins.list[tuple[Path, Path]]) -> None:
        with _store_errors("delete blobs"):
            for path, nested in paths:
                try:
                    path.unlink()
                except FileNotFoundError:  # perhaps written in the nested layout
                    with suppress(FileNotFoundError, NotADirectoryError):
                        nested.unlink()
                    self._prune(nested.parent)
                self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove `directory` and its parents while they are empty, up to the shard (kept)."""
        while directory != self.root and directory.parent != self.root:
            if not _rmdir_if_empty(directory):
                return
            directory = directory.parent

    async def delete_prefix(self, prefix: str) -> int:
        split_prefix(prefix)  # a bad prefix is refused here, not in the thread
        return await self._threads.run(self._delete_prefix, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        removed = 0
        with _store_errors("delete blobs"):
            for item in self._walk(prefix):
                if isinstance(item, _File):
                    with suppress(FileNotFoundError):
                        item.path.unlink()
                        removed += 1
                else:
                    _rmdir_if_empty(item.path)
            start = self._start(prefix)
            if start is not None:
                self._prune(start.path.parent)
        return removed

    def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        split_prefix(prefix)
        return self._list(prefix)

    async def _list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        batches = self._info_batches(prefix)
        while batch := await self._threads.run(next, batches, None):
            for info in batch:
                yield info

    def _info_batches(self, prefix: str) -> Iterator[builtins.list[BlobInfo]]:
        """BlobInfo of every blob under `prefix`, LIST_BATCH at a time. Holds no open directory
        between batches, so that a list abandoned half way leaves nothing to close."""
        batch: builtins.list[BlobInfo] = []
        with _store_errors("list blobs"):
            for item in self._walk(prefix):
                if not isinstance(item, _File):
                    continue
                try:
                    stat = item.path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                batch.append(BlobInfo(item.key, stat.st_size, modified))
                if len(batch) >= LIST_BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _start(self, prefix: str) -> _Dir | None:
        """Where the walk for `prefix` starts; None: at the root (every shard)."""
        whole, partial = split_prefix(prefix)
        if whole:
            job, names = whole[0], SEPARATOR.join([*whole[1:], partial])
            return _Dir(self.root / _shard(job) / job, f"{job}/", names, in_job=True)
        if len(partial) >= 2:
            return _Dir(self.root / _shard(partial), "", partial, in_job=False)
        return None

    def _walk(self, prefix: str) -> Iterator[_File | _Left]:
        """Every blob file under `prefix`, and each directory of theirs after its entries
        (deepest first), read one directory listing at a time."""
        start = self._start(prefix)
        stack: builtins.list[_Dir | _Left] = []
        if start is not None:
            stack.append(start)
        else:
            shard_start = _shard(split_prefix(prefix)[1])
            for name, is_dir in self._entries(self.root):
                if is_dir and _is_shard(name) and name.startswith(shard_start):
                    stack.append(_Dir(self.root / name, "", prefix, in_job=False))
        while stack:
            top = stack.pop()
            if isinstance(top, _Left):
                yield top
                continue
            stack.append(_Left(top.path))
            for name, is_dir in self._entries(top.path):
                if not is_dir:
                    if name.startswith(top.name_start):
                        yield _File(top.path / name, top.key_base + name.replace(SEPARATOR, "/"))
                elif not top.in_job:  # a job's directory in a shard
                    if name.startswith(top.name_start):
                        stack.append(_Dir(top.path / name, f"{name}/", "", in_job=True))
                elif (inner := _inner_start(name, top.name_start)) is not None:  # the nested layout
                    stack.append(_Dir(top.path / name, f"{top.key_base}{name}/", inner, in_job=True))

    @staticmethod
    def _entries(directory: Path) -> builtins.list[tuple[str, bool]]:
        """The names in `directory`, each with whether it is a directory (read whole, then closed)."""
        try:
            with os.scandir(directory) as entries:
                return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        except (FileNotFoundError, NotADirectoryError):
            return []

    async def presign(self, key: str, expires_in: timedelta) -> str | None:
        check_key(key)
        return None


class _SourceError(Exception):
    """Reading put's source failed: carries its OSError past _store_errors (see _put)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error
