"""The garbage collector's policy for a long-running server process.

CPython's cycle collector runs a full collection, which walks every tracked object, each
time the objects that survived the younger generations grow by a quarter, checked every
700 * 10 * 10 net allocations by default. A server holding 10,000 jobs in flight keeps about
125 objects per job alive (tasks, futures, requests, the provider's connection), so while
jobs pile up it walked hundreds of thousands of objects every few seconds: measured with
5,000 embedding jobs in flight, 11 full collections took 1.3 to 2.0 s of the server's 8 s
of CPU. With the settings below they were 3 (at start, before freeze) and the server's
CPU per job fell from 1.45-1.64 ms to 1.18-1.35 ms (docs/benchmarks.md, "In flight").

- freeze() after start: what the imports and the start made (about 66,000 objects: modules,
  classes, the configuration) lives as long as the process, so no collection walks it again.
- A young generation of YOUNG_THRESHOLD objects rather than 700: the per-request objects of
  a burst of calls die young, so the young collections find little to keep, and the full
  collections, gated on the number of young ones, are considered every 1,000,000 net
  allocations instead of every 70,000.

What this costs: cyclic garbage that reached the old generation waits longer for a full
collection. The cycles a call leaves are grpc.aio's own (five small objects per call, its
method-handler lookup), freed young when the call is short; none of asyncgate's own code on
the job path leaves cycles (checked with gc.DEBUG_SAVEALL), so images and other large
buffers are freed by reference counting the moment they are dropped, whatever the collector
does.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Net allocations of tracked objects between young collections (CPython's default: 700)."""
OLDER_THRESHOLDS = (10, 10)
"""Young collections per middle one, middle ones per full one (CPython's defaults)."""


def settle_collector() -> None:
    """Apply the policy above; call once the process has started serving (imports done)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
