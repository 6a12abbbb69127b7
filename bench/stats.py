"""Figures from raw results: percentiles, throughput, CPU per request, ratios."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from bench.compare import SideResult
from bench.jobs import POLLS_SAMPLE, SERVER_SAMPLE, SUBMIT_SAMPLE


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


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def ms_summary(seconds: list[float]) -> dict[str, Any]:
    """p50 / p99 / mean in milliseconds, and how many values there were."""
    return {
        "p50": percentile(seconds, 50) * 1000,
        "p99": percentile(seconds, 99) * 1000,
        "mean": sum(seconds) / len(seconds) * 1000 if seconds else math.nan,
        "count": len(seconds),
    }


def dispatch_latencies(submitted: Mapping[str, float], arrivals: Mapping[str, float]) -> list[float]:
    """Per job, seconds from its submit returning to the provider receiving it (may be < 0: a
    server that wakes its own dispatcher can call the provider before the client has the answer)."""
    return [arrivals[text] - at for text, at in submitted.items() if text in arrivals]


def job_summary(result: SideResult, arrivals: Mapping[str, float] | None = None) -> dict[str, Any]:
    """side_summary of end-to-end jobs, plus how long the submit took, polls per job, the server's
    own created -> completed time and, given the provider's arrival times, dispatch latency."""
    summary = side_summary(result)
    summary["submit_ms"] = ms_summary(result.load.samples.get(SUBMIT_SAMPLE, []))
    summary["server_job_ms"] = ms_summary(result.load.samples.get(SERVER_SAMPLE, []))
    polls = result.load.samples.get(POLLS_SAMPLE, [])
    summary["polls_per_job"] = sum(polls) / len(polls) if polls else math.nan
    if arrivals is not None:
        summary["dispatch_ms"] = ms_summary(dispatch_latencies(result.load.submitted, arrivals))
    return summary


def ratios(base: dict[str, Any], subj: dict[str, Any]) -> dict[str, float]:
    """subject / baseline of two summaries: throughput (higher is better) and latency."""
    return {
        "throughput": ratio(subj["throughput_rps"], base["throughput_rps"]),
        "p50_latency": ratio(subj["latency_ms"]["p50"], base["latency_ms"]["p50"]),
        "p99_latency": ratio(subj["latency_ms"]["p99"], base["latency_ms"]["p99"]),
    }


def round_ratios(baseline: SideResult, subject: SideResult) -> list[float]:
    """Subject / baseline throughput of each pair of rounds run one after the other (compare()
    runs B S, S B, ...: the i-th round of each side are neighbours in time)."""
    return [
        ratio(subj, base)
        for base, subj in zip(baseline.round_throughputs, subject.round_throughputs, strict=True)
    ]


def comparison(
    baseline: SideResult,
    subject: SideResult,
    summarize: Callable[[SideResult], dict[str, Any]] = side_summary,
    summarize_subject: Callable[[SideResult], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Both sides summarized (the subject by `summarize_subject` if given), their ratios, and
    the throughput ratio round by round."""
    base, subj = summarize(baseline), (summarize_subject or summarize)(subject)
    return {
        "baseline": base,
        "subject": subj,
        "ratio": ratios(base, subj),
        "throughput_ratio_by_round": round_ratios(baseline, subject),
    }
