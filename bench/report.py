"""The goals, the printed table, and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
THROUGHPUT_GOAL = 0.5
MEMORY_GOAL = 2.0
MB = 1e6


def _goal(text: str, value: float, met: bool) -> dict[str, Any]:
    return {"goal": text, "value": value, "met": met}


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with its figure and whether it is met; reported, never enforced."""
    found = []
    for part, label in (("rest", "REST"), ("grpc", "gRPC")):
        if part in report:
            ratio = report[part]["ratio"]["throughput"]
            text = f"{label} submit throughput >= {THROUGHPUT_GOAL} x baseline"
            found.append(_goal(text, ratio, ratio >= THROUGHPUT_GOAL))
    if "memory" in report:
        # Both readings of "under 2x the image": what the upload added, and the whole process.
        for name, figures in report["memory"]["processes"].items():
            for key, what in (("growth_per_image", "peak - idle"), ("peak_per_image", "peak RSS")):
                text = f"{name} {what} < {MEMORY_GOAL} x image"
                found.append(_goal(text, figures[key], figures[key] < MEMORY_GOAL))
    return found


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _side_lines(name: str, side: dict[str, Any]) -> list[str]:
    latency = side["latency_ms"]
    cpu = ", ".join(f"{proc} {_f(ms)}" for proc, ms in side["cpu_ms_per_request"].items())
    return [
        f"  {name:<24}{side['throughput_rps']:>9.1f}{_f(latency['p50']):>9}{_f(latency['p99']):>9}"
        f"{side['requests_ok']:>8}{side['requests_failed']:>8}",
        f"  {'':<24}CPU ms/request: {cpu}",
    ]


def _comparison_lines(title: str, part: dict[str, Any], baseline_name: str) -> list[str]:
    ratio = part["ratio"]
    return [
        title,
        f"  {'':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ok':>8}{'failed':>8}",
        *_side_lines(baseline_name, part["baseline"]),
        *_side_lines("asyncgate", part["subject"]),
        f"  {'asyncgate / baseline':<24}{_f(ratio['throughput']):>9}{_f(ratio['p50_latency']):>9}"
        f"{_f(ratio['p99_latency']):>9}",
        "",
    ]


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    size = memory["image_bytes"]
    reset = (
        "VmHWM reset to idle before the upload"
        if memory["peak_reset_before_upload"]
        else ("VmHWM could not be reset: peak is since process start")
    )
    lines = [
        f"Memory: {size / MB:.1f} MB PNG ({memory['image']}) through the bridge, 202 after "
        f"{memory['upload_seconds']:.1f} s; {reset}",
        f"  {'':<14}{'idle MB':>9}{'peak MB':>9}{'peak-idle':>11}{'(peak-idle)/img':>17}{'peak/img':>10}",
    ]
    for name, f in memory["processes"].items():
        lines.append(
            f"  {name:<14}{f['idle_rss_bytes'] / MB:>9.1f}{f['peak_rss_bytes'] / MB:>9.1f}"
            f"{f['growth_bytes'] / MB:>11.1f}{f['growth_per_image']:>17.2f}{f['peak_per_image']:>10.2f}"
        )
    return [*lines, ""]


def format_report(report: dict[str, Any]) -> str:
    meta = report["meta"]
    settings = meta["settings"]
    lines = [
        f"asyncgate bench: {meta['cpus']} CPUs, Python {meta['python']}, load average "
        f"{meta['load_average_start']:.2f} at start, {meta['load_average_end']:.2f} at end; "
        f"{meta['total_seconds']:.0f} s in all",
        f"{settings['concurrency']} concurrent clients; {settings['duration']:g} s measured per side in "
        f"{settings['rounds']} alternating rounds after {settings['warmup']:g} s warm-up; "
        f"latency in ms",
        f"Note: {meta['note']}.",
        "",
    ]
    if "rest" in report:
        rest = report["rest"]
        title = f"REST submit: POST /v1/async/images/edits, {rest['body_bytes']:,} B multipart (256x256 PNG)"
        lines += _comparison_lines(title, rest, "bare aiohttp")
    if "grpc" in report:
        grpc = report["grpc"]
        title = f"gRPC submit: CreateImageEditJob, {grpc['message_bytes']:,} B message (256x256 PNG)"
        lines += _comparison_lines(title, grpc, "bare grpc.aio")
    if "memory" in report:
        lines += _memory_lines(report["memory"])
    lines.append("Goals (reported, not enforced):")
    for goal in report.get("goals", []):
        lines.append(f"  {goal['goal']:<44}{_f(goal['value']):>8}  {'met' if goal['met'] else 'NOT MET'}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # NaN (no successful request) is written as null: strict JSON readers refuse NaN.
    path.write_text(json.dumps(_nan_to_none(report), indent=2) + "\n")
    return path


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
