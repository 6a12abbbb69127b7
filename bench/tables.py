"""Table rows shared by the printed report's sections."""

from __future__ import annotations

import math
from typing import Any


def f(value: float | None, digits: int = 2) -> str:
    """A figure, or n/a for none (NaN: no successful request)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def header(unit: str = "req/s") -> str:
    return f"  {'':<24}{unit:>9}{'p50 ms':>9}{'p99 ms':>9}{'ok':>8}{'failed':>8}"


def side_lines(name: str, side: dict[str, Any], per: str = "request") -> list[str]:
    latency = side["latency_ms"]
    cpu = ", ".join(f"{proc} {f(ms)}" for proc, ms in side["cpu_ms_per_request"].items())
    return [
        f"  {name:<24}{side['throughput_rps']:>9.1f}{f(latency['p50']):>9}{f(latency['p99']):>9}"
        f"{side['requests_ok']:>8}{side['requests_failed']:>8}",
        f"  {'':<24}CPU ms/{per}: {cpu}",
    ]


def ratio_line(name: str, ratio: dict[str, float]) -> str:
    return f"  {name:<24}{f(ratio['throughput']):>9}{f(ratio['p50_latency']):>9}{f(ratio['p99_latency']):>9}"


def by_round_line(part: dict[str, Any]) -> str:
    """The throughput ratio of each pair of neighbouring rounds: the spread is the run's noise."""
    return f"  {'':<24}throughput ratio by round: {' '.join(f(r) for r in part['throughput_ratio_by_round'])}"


def comparison_lines(
    title: str, part: dict[str, Any], baseline_name: str, subject_name: str = "asyncgate"
) -> list[str]:
    return [
        title,
        header(),
        *side_lines(baseline_name, part["baseline"]),
        *side_lines(subject_name, part["subject"]),
        ratio_line("ratio to baseline", part["ratio"]),
        by_round_line(part),
        "",
    ]
