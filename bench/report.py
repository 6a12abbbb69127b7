"""The goals, the printed table, and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.ceilings import ceiling_goals, ceiling_lines
from bench.enqueue import enqueue_lines
from bench.fairness import fairness_lines
from bench.report_inflight import inflight_goals, inflight_lines
from bench.report_jobs import embeddings_lines, generations_lines, postgres_lines
from bench.report_waiters import waiters_lines
from bench.tables import comparison_lines, f

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
THROUGHPUT_GOALS = {"rest": 0.45, "grpc": 0.5}
"""Submit throughput against the bare handler (the issue's goals: the bridge's own HTTP work
comes on top of the server's for REST)."""
POLL_GOALS = {"rest": 0.3, "grpc": 0.5}
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
            text = f"{label} submit throughput >= {THROUGHPUT_GOALS[part]} x baseline"
            found.append(_goal(text, ratio, ratio >= THROUGHPUT_GOALS[part]))
    if "memory" in report:
        # Both readings of "under 2x the image": what the upload added, and the whole process.
        for name, figures in report["memory"]["processes"].items():
            for key, what in (("growth_per_image", "peak - idle"), ("peak_per_image", "peak RSS")):
                text = f"{name} {what} < {MEMORY_GOAL} x image"
                found.append(_goal(text, figures[key], figures[key] < MEMORY_GOAL))
    if "inflight" in report:
        found += inflight_goals(report["inflight"])
    for part, label in (("rest", "REST poll"), ("grpc", "gRPC GetJob")):
        if part in report.get("polls", {}):
            ratio = report["polls"][part]["ratio"]["throughput"]
            goal = POLL_GOALS[part]
            found.append(_goal(f"{label} throughput >= {goal} x baseline", ratio, ratio >= goal))
    if "ceilings" in report:
        found += ceiling_goals(report["ceilings"])
    return found


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
    for name, fig in memory["processes"].items():
        lines.append(
            f"  {name:<14}{fig['idle_rss_bytes'] / MB:>9.1f}{fig['peak_rss_bytes'] / MB:>9.1f}"
            f"{fig['growth_bytes'] / MB:>11.1f}{fig['growth_per_image']:>17.2f}{fig['peak_per_image']:>10.2f}"
        )
    return [*lines, ""]


def bomb_lines(bombs: dict[str, Any]) -> list[str]:
    lines = [
        f"Pixel bombs: {bombs['requests']} lossless WEBPs of {bombs['bomb_bytes']:,} B declaring "
        f"{bombs['bomb_pixels'] / 1e6:.0f} Mpx each, at once through the bridge, /health asked meanwhile",
        f"  {'':<8}{'statuses':>22}{'burst s':>9}{'peak RSS MB':>13}{'/health max ms':>16}{'p50 ms':>8}",
    ]
    for side in ("before", "after"):
        fig = bombs[side]
        if "skipped" in fig:
            lines.append(f"  {side:<8}skipped: {fig['skipped']}")
            continue
        statuses = ",".join(f"{s}x{fig['statuses'].count(s)}" for s in sorted(set(fig["statuses"])))
        lines.append(
            f"  {side:<8}{statuses:>22}{fig['burst_seconds']:>9.1f}{fig['peak_rss_bytes'] / MB:>13.0f}"
            f"{fig['health_max_ms']:>16.1f}{fig['health_p50_ms']:>8.1f}"
        )
    if "peak_rss_after_to_before" in bombs:
        lines.append(
            f"  after/before: peak RSS {bombs['peak_rss_after_to_before']:.2f}, "
            f"longest /health {bombs['health_max_after_to_before']:.3f}"
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
        lines += comparison_lines(title, rest, "bare aiohttp")
    if "grpc" in report:
        grpc = report["grpc"]
        title = f"gRPC submit: CreateImageEditJob, {grpc['message_bytes']:,} B message (256x256 PNG)"
        lines += comparison_lines(title, grpc, "bare grpc.aio")
    if "ceilings" in report:
        lines += ceiling_lines(report["ceilings"])
    if "memory" in report:
        lines += _memory_lines(report["memory"])
    if "embeddings" in report:
        lines += embeddings_lines(report["embeddings"])
    if "generations" in report:
        lines += generations_lines(report["generations"])
    if "postgres" in report:
        lines += postgres_lines(report["postgres"])
    if "enqueue" in report:
        lines += enqueue_lines(report["enqueue"])
    if "inflight" in report:
        lines += inflight_lines(report["inflight"])
    if "polls" in report:
        polls = report["polls"]
        lines += comparison_lines(
            f"REST poll of an ended embedding job: {polls['answer_bytes']:,} B answer",
            polls["rest"],
            "bare aiohttp",
        )
        lines += comparison_lines(
            f"gRPC GetJob of the same job: {polls['reply_bytes']:,} B reply", polls["grpc"], "bare grpc.aio"
        )
        if "rest_ceiling" in polls:
            lines += comparison_lines(
                "REST poll ceiling: the bare aiohttp handler plus one GetJob to the bare grpc.aio one",
                polls["rest_ceiling"],
                "bare aiohttp",
                "relay",
            )
        if "rest_to_ceiling" in polls:
            lines += comparison_lines("REST poll against that ceiling", polls["rest_to_ceiling"], "relay")
    if "bombs" in report:
        lines += bomb_lines(report["bombs"])
    if "fairness" in report:
        lines += fairness_lines(report["fairness"])
    if "waiters" in report:
        lines += waiters_lines(report["waiters"])
    lines.append("Goals (reported, not enforced):")
    for goal in report.get("goals", []):
        lines.append(f"  {goal['goal']:<60}{f(goal['value']):>8}  {'met' if goal['met'] else 'NOT MET'}")
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
