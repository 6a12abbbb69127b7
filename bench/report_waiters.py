"""The waiters part's printed table (bench.waiters)."""

from __future__ import annotations

from typing import Any

from bench.waiter_clients import MODES

WHAT = {
    "rest-wait": "REST Prefer: wait",
    "rest-poll": "REST GET every 1 s",
    "grpc-wait": "gRPC WaitJob",
    "grpc-watch": "gRPC WatchJob",
    "grpc-poll": "gRPC GetJob every 1 s",
}
KIB = 1024


def _per_client(mib: float, clients: int) -> float:
    return mib * KIB / clients


def _cores(cpu: dict[str, float]) -> str:
    return f"{cpu['server']:.2f}/{cpu['bridge']:.2f}"


def waiters_lines(part: dict[str, Any]) -> list[str]:
    clients = part["clients"]
    lines = [
        f"Waiters: {clients:,} clients on {part['jobs']:,} running jobs, fresh processes per mode; paced: "
        f"{part['paced']:,} completions at {part['rate']:g}/s, then the rest at once (burst); latency "
        "from the commit to the client's answer, ms; RSS growth per client, KiB (bare: grpc.aio or "
        "aiohttp holding the same calls); CPU in cores, server/bridge",
        f"  {'':<22}{'server':>8}{'bridge':>8}{'bare':>7}{'CPU waiting':>13}{'paced p50':>11}{'p99':>8}"
        f"{'CPU paced':>11}{'burst p50':>11}{'p99':>8}{'requests':>10}  errors",
    ]
    for mode in MODES:
        if mode not in part:
            continue
        fig = part[mode]
        rss = fig["waiting"]["rss_growth_mib"]
        paced, burst = fig["paced"], fig["burst"]
        bare = f"{_per_client(fig['bare']['rss_growth_mib'], clients):.1f}" if "bare" in fig else "-"
        errors = ",".join(f"{k} x{v}" for k, v in fig["client_errors"].items()) or "none"
        lines.append(
            f"  {WHAT[mode]:<22}{_per_client(rss['server'], clients):>8.1f}"
            f"{_per_client(rss['bridge'], clients):>8.1f}{bare:>7}"
            f"{_cores(fig['waiting']['cpu_cores']):>13}{paced['p50_ms']:>11.1f}{paced['p99_ms']:>8.0f}"
            f"{_cores(paced['cpu_cores']):>11}{burst['p50_ms']:>11.0f}{burst['p99_ms']:>8.0f}"
            f"{fig['requests']:>10,}  {errors}"
        )
    return [*lines, ""]
