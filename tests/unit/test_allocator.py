"""Freed memory stays mapped between requests: buffers are not faulted in anew each time."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc thresholds are glibc's (mallopt)"
)

# Rounds of what a burst of submits does to the heap: sixteen 200 KB buffers, written (so their
# pages are touched), then all freed. Run in a fresh interpreter: the thresholds are per process.
_BURSTS = """
import json, resource, sys
from grpc_server.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def burst():
    buffers = [b"x" * 200_000 for _ in range(16)]
    del buffers
burst()  # the first burst maps the memory whatever the settings
before = faults()
for _ in range(50):
    burst()
print(json.dumps({"applied": applied, "faults": faults() - before}))
"""


def _bursts(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _BURSTS, mode], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_glibc_takes_the_thresholds() -> None:
    assert _bursts("keep")["applied"] is True


def test_repeated_bursts_reuse_the_memory_the_first_one_mapped() -> None:
    default, kept = _bursts("default")["faults"], _bursts("keep")["faults"]
    assert isinstance(default, int) and isinstance(kept, int)
    # By default each burst's 3.2 MB (about 780 pages) is given back and faulted in again.
    assert default > 50 * 500, default
    assert kept < 50 * 10, kept
