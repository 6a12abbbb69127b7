"""The bench's ratios: the whole run's, and round by round."""

from __future__ import annotations

import math

import pytest

from bench.compare import SideResult
from bench.load import LoadResult
from bench.stats import comparison, round_ratios
from bench.tables import comparison_lines


def side(latencies: list[float], elapsed: float, rounds: list[float]) -> SideResult:
    load = LoadResult(elapsed=elapsed)
    for latency in latencies:
        load.success(latency, "OK")
    return SideResult(load=load, round_throughputs=rounds)


def test_round_ratios_pair_the_ith_round_of_each_side() -> None:
    baseline = side([], 1.0, [100.0, 200.0, 400.0])
    subject = side([], 1.0, [50.0, 50.0, 100.0])
    assert round_ratios(baseline, subject) == [0.5, 0.25, 0.25]


def test_a_baseline_round_with_nothing_done_gives_no_ratio() -> None:
    assert math.isnan(round_ratios(side([], 1.0, [0.0]), side([], 1.0, [10.0]))[0])


def test_sides_with_different_round_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        round_ratios(side([], 1.0, [1.0, 2.0]), side([], 1.0, [1.0]))


def test_the_printed_comparison_shows_every_round() -> None:
    part = comparison(side([0.01] * 40, 2.0, [22.0, 18.0]), side([0.02] * 10, 2.0, [6.0, 4.5]))
    assert part["ratio"]["throughput"] == 0.25
    lines = comparison_lines("title", part, "bare")
    assert "  throughput ratio by round: 0.27 0.25" in lines[-2]
