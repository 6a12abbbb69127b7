"""Baseline against subject, interleaved so that machine noise falls on both (or one side alone).

After a warm-up of each, the measured time is cut into rounds run in the order
B S, S B, B S, ... (each side's rounds spread evenly over the whole run). CPU time
of every process involved is read around each round, so the report can say which
process spends what per request.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bench.load import LoadResult
from bench.procfs import cpu_by_pid, cpu_seconds

CLIENT = "bench-client"


@dataclass(frozen=True)
class Side:
    name: str
    run: Callable[[float], Awaitable[LoadResult]]
    """Load the target for this many seconds."""
    pids: Mapping[str, int]
    """Processes whose CPU time counts for this side (the bench client is added)."""
    groups: Mapping[str, Callable[[], list[int]]] = field(default_factory=dict)
    """Processes counted together under one name, looked up anew each round (a database's
    backends, which come and go with connection pools): those alive at both ends count."""


@dataclass
class SideResult:
    load: LoadResult = field(default_factory=LoadResult)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """Per process, over the measured rounds only."""
    round_throughputs: list[float] = field(default_factory=list)
    """Successful requests a second in each measured round, in order: with the other side's,
    round by round, they show how far the machine's noise moved a ratio during the run."""


async def _measured_round(side: Side, seconds: float, into: SideResult) -> None:
    pids = {CLIENT: os.getpid(), **side.pids}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    groups_before = {name: cpu_by_pid(find()) for name, find in side.groups.items()}
    load = await side.run(seconds)
    into.load.merge(load)
    into.round_throughputs.append(load.ok / load.elapsed if load.elapsed else 0.0)
    spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    for name, group in groups_before.items():
        after = cpu_by_pid(group)
        spent[name] = sum(now - group[pid] for pid, now in after.items())
    for name, seconds_spent in spent.items():
        into.cpu_seconds[name] = into.cpu_seconds.get(name, 0.0) + seconds_spent


async def compare(
    baseline: Side, subject: Side, *, duration: float, rounds: int, warmup: float
) -> tuple[SideResult, SideResult]:
    """Run both for `duration` seconds each, in `rounds` alternating slices; (baseline, subject)."""
    for side in (baseline, subject):
        await side.run(warmup)  # connections opened, caches and allocators warm; not counted
    results = {baseline.name: SideResult(), subject.name: SideResult()}
    for i in range(rounds):
        for side in (baseline, subject) if i % 2 == 0 else (subject, baseline):
            await _measured_round(side, duration / rounds, results[side.name])
    return results[baseline.name], results[subject.name]


async def measure(side: Side, *, duration: float, rounds: int, warmup: float) -> SideResult:
    """One side alone (a figure with no baseline), measured the same way: warm-up, then rounds."""
    await side.run(warmup)
    result = SideResult()
    for _ in range(rounds):
        await _measured_round(side, duration / rounds, result)
    return result
