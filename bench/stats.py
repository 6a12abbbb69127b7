"""Figures from raw results: percentiles, throughput, CPU per request, ratios."""

from __future__ import annotations

import math
from typing import Any

from bench.compare import SideResult


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def side_summary(result: SideResult) -> dict[str, Any]:
    load = result.load
    ok = load.ok
    return {
        "requests_ok": ok,
        "requests_failed": sum(load.statuses.values()) - ok,
        "statuses": dict(load.statuses),
        "seconds": round(load.elapsed, 3),
        "throughput_rps": ok / load.elapsed if load.elapsed else 0.0,
        "latency_ms": {
            "p50": percentile(load.latencies, 50) * 1000,
            "p99": percentile(load.latencies, 99) * 1000,
            "mean": sum(load.latencies) / ok * 1000 if ok else math.nan,
        },
        "cpu_seconds": {name: round(s, 3) for name, s in result.cpu_seconds.items()},
        "cpu_ms_per_request": {
            name: s / ok * 1000 if ok else math.nan for name, s in result.cpu_seconds.items()
        },
        "sample_answer": load.sample,
        "errors": load.errors,
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def comparison(baseline: SideResult, subject: SideResult) -> dict[str, Any]:
    """Both sides summarized, and subject/baseline for throughput (higher is better) and latency."""
    base, subj = side_summary(baseline), side_summary(subject)
    return {
        "baseline": base,
        "subject": subj,
        "ratio": {
            "throughput": _ratio(subj["throughput_rps"], base["throughput_rps"]),
            "p50_latency": _ratio(subj["latency_ms"]["p50"], base["latency_ms"]["p50"]),
            "p99_latency": _ratio(subj["latency_ms"]["p99"], base["latency_ms"]["p99"]),
        },
    }
