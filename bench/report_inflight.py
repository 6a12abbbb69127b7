"""The inflight part's printed section and its goals (issue 14: 10,000 jobs of 10 s in flight on
one replica within 1.3 x ideal, RSS under 1 GB, under 2 ms of server CPU per job; issue 17: one
provider call per job)."""

from __future__ import annotations

from typing import Any

from bench.tables import f

ELAPSED_GOAL = 1.3
RSS_GOAL_BYTES = 1e9
CPU_GOAL_MS = 2.0
CALLS_GOAL = 1.0
STORES = ("sqlite", "postgres")
MB = 1e6


def inflight_goals(part: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with its figure, per store that ran; reported, never enforced."""
    found = []
    for store in STORES:
        run = part.get(store, {})
        if "skipped" in run or not run:
            continue
        label = f"in flight {run['jobs']} jobs, {store}:"
        for text, value, met in (
            (
                f"elapsed / ideal <= {ELAPSED_GOAL}",
                run["elapsed_to_ideal"],
                run["elapsed_to_ideal"] <= ELAPSED_GOAL,
            ),
            ("peak RSS < 1 GB (GB)", run["peak_rss_bytes"] / 1e9, run["peak_rss_bytes"] < RSS_GOAL_BYTES),
            (
                f"server CPU ms/job < {CPU_GOAL_MS:g}",
                run["server_cpu_ms_per_job"],
                run["server_cpu_ms_per_job"] < CPU_GOAL_MS,
            ),
            (
                "provider calls/job == 1.00",
                run["provider_calls_per_job"],
                run["provider_calls"] == run["jobs"],
            ),
        ):
            found.append({"goal": f"{label} {text}", "value": value, "met": met})
    return found


def inflight_lines(part: dict[str, Any]) -> list[str]:
    lines = [
        f"In flight: {part['jobs']:,} embedding jobs submitted at once over gRPC ({part['submit_clients']} "
        f"clients), the provider answering each after {part['latency_seconds']:g} s; "
        f"dispatcher.concurrency = jobs, provider pool unlimited",
        f"  {'':<10}{'done':>7}{'failed':>7}{'submit s':>10}{'elapsed s':>11}{'ideal s':>9}{'ratio':>7}"
        f"{'idle MB':>9}{'peak MB':>9}{'KB/job':>8}{'CPU ms/job':>12}{'DB ms/job':>11}{'calls/job':>11}"
        f"{'at once':>9}",
    ]
    for store in STORES:
        run = part.get(store)
        if run is None:
            continue
        if "skipped" in run:
            lines.append(f"  {store:<10}skipped: {run['skipped']}")
            continue
        database = run["database_cpu_ms_per_job"]
        lines.append(
            f"  {store:<10}{run['completed']:>7}{run['failed']:>7}{run['submit_seconds']:>10.1f}"
            f"{run['elapsed_seconds']:>11.1f}{run['ideal_seconds']:>9.1f}{f(run['elapsed_to_ideal']):>7}"
            f"{run['idle_rss_bytes'] / MB:>9.0f}{run['peak_rss_bytes'] / MB:>9.0f}"
            f"{run['rss_growth_per_job_bytes'] / 1e3:>8.1f}{f(run['server_cpu_ms_per_job']):>12}"
            f"{f(database):>11}{f(run['provider_calls_per_job']):>11}{run['provider_calls_at_once_max']:>9}"
        )
    lines.append(
        "  ideal = latency + submit time; KB/job = (peak - idle RSS) / jobs; CPU: the server process "
        "(DB: PostgreSQL's backends for its database)"
    )
    return [*lines, ""]
