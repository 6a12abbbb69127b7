"""Scheduling priority of the store's background threads."""

from __future__ import annotations

import contextlib
import os
import sys
import threading


def lower_thread_priority(steps: int) -> None:
    """Run the calling thread `steps` nice levels below where it is (Linux schedules threads
    one by one). The event loop, which every request waits on, then wins the CPU from the
    writer and the checkpointer when they compete: measured, the loop thread spent 29% of
    a submit benchmark runnable but preempted, 11,000 times in 6 s, and lowering these two
    threads gave 8% more submits a second. Elsewhere, or if refused, nothing changes."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + steps))
