"""asyncgate.collector: a server process settles its garbage collector once started."""

from __future__ import annotations

import json
import subprocess
import sys

from asyncgate.collector import OLDER_THRESHOLDS, YOUNG_THRESHOLD


def test_settling_freezes_what_the_start_made_and_raises_the_young_threshold() -> None:
    # In a process of its own: the policy is process-wide, and pytest's own should stay as it is.
    script = (
        "import gc, json; import grpc_server.server; from asyncgate.collector import settle_collector;"
        "before = gc.get_threshold(); settle_collector();"
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, after, frozen = json.loads(output)
    assert before == [700, 10, 10]  # CPython's defaults, so the change below is the policy's
    assert after == [YOUNG_THRESHOLD, *OLDER_THRESHOLDS]
    assert frozen > 10_000  # the server's modules and classes, out of every later collection
