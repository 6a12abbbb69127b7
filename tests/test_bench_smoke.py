"""The bench's load and memory functions against the real processes, briefly: no timing thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.memory import measure_upload
from bench.payloads import multipart_form, small_png, write_big_png
from bench.report import format_report
from bench.runner import Settings, grpc_comparison, rest_comparison, run_all

pytestmark = pytest.mark.slow

BRIEF = Settings(duration=1.0, warmup=0.2, concurrency=2, rounds=1, parts=("rest", "grpc"))
SIDE_KEYS = {
    "requests_ok",
    "requests_failed",
    "statuses",
    "seconds",
    "throughput_rps",
    "latency_ms",
    "cpu_seconds",
    "cpu_ms_per_request",
    "sample_answer",
    "errors",
}


def check_side(side: dict[str, Any], ok_status: str, processes: set[str]) -> None:
    assert set(side) == SIDE_KEYS
    assert side["requests_ok"] > 0, side
    assert side["requests_failed"] == 0, side
    assert set(side["statuses"]) == {ok_status}, side
    assert set(side["latency_ms"]) == {"p50", "p99", "mean"}
    assert set(side["cpu_ms_per_request"]) == {"bench-client", *processes}
    assert side["sample_answer"]["id"]


def check_comparison(part: dict[str, Any]) -> None:
    assert set(part["ratio"]) == {"throughput", "p50_latency", "p99_latency"}
    assert part["ratio"]["throughput"] > 0


async def test_rest_submit_load_is_accepted(tmp_path: Path) -> None:
    rest = await rest_comparison(tmp_path, BRIEF)
    check_side(rest["baseline"], "202", {"rest-baseline"})
    check_side(rest["subject"], "202", {"rest-bridge", "grpc-server"})
    answer = rest["subject"]["sample_answer"]
    assert answer["status"] == "pending" and answer["created_at"], answer
    check_comparison(rest)


async def test_grpc_submit_load_is_accepted(tmp_path: Path) -> None:
    grpc = await grpc_comparison(tmp_path, BRIEF)
    check_side(grpc["baseline"], "OK", {"grpc-baseline"})
    check_side(grpc["subject"], "OK", {"grpc-server"})
    assert grpc["subject"]["sample_answer"]["status"] == "JOB_STATUS_PENDING"
    check_comparison(grpc)


async def test_memory_of_an_upload_is_reported(tmp_path: Path) -> None:
    image = tmp_path / "upload.png"
    size = write_big_png(image, side=600)  # about 1 MB: the path of the 50 MB one, quicker
    memory = await measure_upload(tmp_path, image, multipart_form(small_png()))
    assert memory["image_bytes"] == size
    assert set(memory["processes"]) == {"rest-bridge", "grpc-server"}
    for figures in memory["processes"].values():
        assert figures["peak_rss_bytes"] >= figures["idle_rss_bytes"] > 0
        assert figures["growth_bytes"] == figures["peak_rss_bytes"] - figures["idle_rss_bytes"]


async def test_whole_report_has_goals_and_prints() -> None:
    report = await run_all(BRIEF)
    assert {"meta", "rest", "grpc", "goals"} <= set(report)
    assert [g["goal"].split()[0] for g in report["goals"]] == ["REST", "gRPC"]
    printed = format_report(report)
    assert "REST submit" in printed and "gRPC submit" in printed and "accept-only" in printed
