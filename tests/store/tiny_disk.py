"""A real, tiny file system to run out of space on: a tmpfs mounted for the test.

Mounting needs root (CAP_SYS_ADMIN). Where the test cannot mount, it is skipped with the
reason (and fails under CI=true, which runs as root); nothing is faked instead.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.unavailable import unavailable

SIZE = "8m"
FILL_CHUNK = 64 * 1024


@contextlib.contextmanager
def tiny_disk(mount_point: Path) -> Iterator[Path]:
    """A tmpfs of SIZE mounted at `mount_point` for the block, unmounted after."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        # CI runs as root: the disk-full tests must run there, never skip.
        unavailable(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}", "root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; the file, to delete when space must come back."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * FILL_CHUNK)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc  # full, as wanted
    return filler
