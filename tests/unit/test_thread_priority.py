"""The store's background threads run below the event loop's priority."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from grpc_server.store.threads import lower_thread_priority

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice levels are Linux's")


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_lowers_only_the_calling_thread() -> None:
    base = _own_niceness()
    with ThreadPoolExecutor(1, initializer=lower_thread_priority, initargs=(5,)) as lowered:
        assert lowered.submit(_own_niceness).result() == min(19, base + 5)
    assert _own_niceness() == base


def test_never_goes_past_the_lowest_priority() -> None:
    with ThreadPoolExecutor(1, initializer=lower_thread_priority, initargs=(100,)) as lowered:
        assert lowered.submit(_own_niceness).result() == 19
