"""The bench's load and memory functions against the real processes, briefly: no timing thresholds."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import settings_from_args
from bench.ceilings import ceilings_measurement
from bench.e2e import embeddings_measurement, generations_measurement
from bench.inflight import inflight_measurement
from bench.memory import measure_upload
from bench.payloads import multipart_form, small_png, write_big_png
from bench.pg import BACKENDS
from bench.pixel_bombs import pixel_bomb_measurement
from bench.polls import poll_measurement
from bench.postgres import postgres_measurement
from bench.report import bomb_lines, format_report
from bench.report_inflight import inflight_goals, inflight_lines
from bench.report_jobs import embeddings_lines, generations_lines, postgres_lines
from bench.runner import PARTS, Settings, grpc_comparison, rest_comparison, run_all
from tests.unavailable import unavailable

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


JOB_KEYS = SIDE_KEYS | {"submit_ms", "polls_per_job", "server_job_ms"}
MS_KEYS = {"p50", "p99", "mean", "count"}


def check_side(
    side: dict[str, Any],
    ok_status: str,
    processes: set[str],
    keys: set[str] = SIDE_KEYS,
    sample_key: str = "id",
) -> None:
    assert set(side) == keys
    assert side["requests_ok"] > 0, side
    assert side["requests_failed"] == 0, side
    assert set(side["statuses"]) == {ok_status}, side
    assert set(side["latency_ms"]) == {"p50", "p99", "mean"}
    assert set(side["cpu_ms_per_request"]) == {"bench-client", *processes}
    assert side["sample_answer"][sample_key]


def check_comparison(part: dict[str, Any]) -> None:
    assert set(part["ratio"]) == {"throughput", "p50_latency", "p99_latency"}
    assert part["ratio"]["throughput"] > 0
    by_round = part["throughput_ratio_by_round"]
    assert len(by_round) == BRIEF.rounds and all(r > 0 for r in by_round), by_round


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


async def test_ceilings_store_every_job_and_bridge_to_the_bare_handlers(tmp_path: Path) -> None:
    ceilings = await ceilings_measurement(tmp_path, BRIEF)
    check_side(ceilings["grpc_directory_vs_sqlite"]["baseline"], "OK", {"grpc-storing"})
    check_comparison(ceilings["grpc_directory_vs_sqlite"])
    for part in ("grpc_storing", "grpc_storing_in_sqlite"):
        check_side(ceilings[part]["baseline"], "OK", {"grpc-baseline"})
        check_side(ceilings[part]["subject"], "OK", {"grpc-storing"})
        check_comparison(ceilings[part])
    check_side(ceilings["rest_bridge_storing"]["subject"], "202", {"rest-bridge", "grpc-storing"})
    check_side(ceilings["rest_bridge_bare"]["subject"], "202", {"rest-bridge", "grpc-baseline"})
    for part in ("rest_bridge_storing", "rest_bridge_bare"):
        check_side(ceilings[part]["baseline"], "202", {"rest-baseline"})
        check_comparison(ceilings[part])
    # asyncgate against its ceilings, side by side.
    check_side(ceilings["grpc_to_ceiling"]["baseline"], "OK", {"grpc-storing"})
    check_side(ceilings["grpc_to_ceiling"]["subject"], "OK", {"grpc-server"})
    check_side(ceilings["rest_to_ceiling"]["baseline"], "202", {"rest-bridge", "grpc-storing"})
    check_side(ceilings["rest_to_ceiling"]["subject"], "202", {"rest-bridge", "grpc-server"})
    for part in ("grpc_to_ceiling", "rest_to_ceiling"):
        check_comparison(ceilings[part])
    # The storing handlers really stored every job they answered (warm-up requests too, not
    # counted): the default one each image as a file beside its row, the other in the SQLite file.
    answered = sum(
        ceilings[part]["subject"]["requests_ok"] for part in ("grpc_storing", "rest_bridge_storing")
    ) + sum(ceilings[part]["baseline"]["requests_ok"] for part in ("grpc_to_ceiling", "rest_to_ceiling"))
    data = tmp_path / "grpc-storing-data"
    with sqlite3.connect(data / "baseline.sqlite3") as conn:
        jobs, chunks, beside = conn.execute(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM blob_chunks),"
            " COUNT(*) FILTER (WHERE blob_store = 'directory') FROM jobs"
        ).fetchone()
    files = [path for path in (data / "blobs").rglob("*/in~image-0") if path.is_file()]
    assert jobs == beside == len(files) >= answered and chunks == 0
    in_sqlite = tmp_path / "grpc-storing-in-sqlite-data"
    with sqlite3.connect(in_sqlite / "baseline.sqlite3") as conn:
        jobs, images = conn.execute(
            "SELECT (SELECT COUNT(*) FROM jobs), (SELECT COUNT(DISTINCT job_id) FROM blob_chunks)"
        ).fetchone()
    assert jobs == images >= ceilings["grpc_storing_in_sqlite"]["subject"]["requests_ok"]
    assert not (in_sqlite / "blobs").exists()


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


def check_jobs(side: dict[str, Any], processes: set[str], dispatch: bool = True) -> None:
    """Every job completed, and (`dispatch`) every one was matched to its call at the provider."""
    check_side(side, "completed", processes, JOB_KEYS | ({"dispatch_ms"} if dispatch else set()))
    for key in ("submit_ms", "server_job_ms"):
        assert set(side[key]) == MS_KEYS and side[key]["count"] == side["requests_ok"], side[key]
    assert side["polls_per_job"] >= 1
    if dispatch:
        assert side["dispatch_ms"]["count"] == side["requests_ok"], side["dispatch_ms"]


async def test_embedding_jobs_run_end_to_end(tmp_path: Path) -> None:
    part = await embeddings_measurement(tmp_path, BRIEF)
    gateway = {"rest-bridge", "grpc-server", "fake-provider"}
    for run in (part, part["one_client"]):
        check_side(run["baseline"], "200", {"fake-provider"}, sample_key="vectors")  # OpenAI's has no id
        check_jobs(run["subject"], gateway)
        check_comparison(run)
        assert set(run["gateway_share"]) == {"end_to_end_p50", "server_side_p50"}
        assert run["provider_call_p50_ms"] > 0
    assert part["subject"]["sample_answer"]["result_items"] == 1
    assert part["provider_handler_mean_ms"] > 0
    assert "Embeddings end to end" in "\n".join(embeddings_lines(part))


async def test_generation_jobs_run_end_to_end(tmp_path: Path) -> None:
    part = await generations_measurement(tmp_path, BRIEF)
    check_jobs(part["subject"], {"rest-bridge", "grpc-server"}, dispatch=False)
    assert part["subject"]["sample_answer"]["status"] == "completed"
    assert "Image generations end to end" in "\n".join(generations_lines(part))


async def test_postgres_part_runs_jobs_on_both_stores(tmp_path: Path) -> None:
    part = await postgres_measurement(tmp_path, BRIEF)
    if "skipped" in part:
        unavailable(part["skipped"], "PostgreSQL")
    check_side(part["submit"]["baseline"], "OK", {"submit-sqlite"})
    check_side(part["submit"]["subject"], "OK", {"submit-postgres", BACKENDS})
    check_comparison(part["submit"])
    e2e, dispatch, replicas = part["end_to_end"], part["dispatch"], part["replicas"]
    check_jobs(e2e["baseline"], {"e2e-sqlite", "fake-provider"})
    check_jobs(e2e["subject"], {"e2e-postgres", "fake-provider", BACKENDS})
    check_jobs(dispatch["baseline"], {"notify-sqlite", "fake-provider"})
    # The accepting replica runs nothing: the worker can only have heard of the jobs from PostgreSQL.
    check_jobs(dispatch["subject"], {"notify-accepting", "notify-worker", "fake-provider", BACKENDS})
    check_jobs(replicas["baseline"], {"replica-single", "fake-provider", BACKENDS})
    check_jobs(replicas["subject"], {"replica-a", "replica-b", "fake-provider", BACKENDS})
    for comparison in (e2e, dispatch, replicas):
        check_comparison(comparison)
    printed = "\n".join(postgres_lines(part))
    assert "PostgreSQL next to SQLite" in printed and "LISTEN/NOTIFY" in printed


async def test_inflight_part_runs_every_job_once_on_both_stores(tmp_path: Path) -> None:
    settings = replace(BRIEF, inflight_jobs=12, inflight_latency=0.5, parts=("inflight",))
    part = await inflight_measurement(tmp_path, settings)
    if "skipped" in part["postgres"]:
        unavailable(part["postgres"]["skipped"], "PostgreSQL")
    for store in ("sqlite", "postgres"):
        run = part[store]
        assert (run["jobs"], run["completed"], run["failed"]) == (12, 12, 0), run
        assert run["provider_calls"] == 12 and not run["jobs_called_more_than_once"], run
        assert run["provider_calls_per_job"] == 1.0
        assert run["elapsed_seconds"] >= 0.5 and run["ideal_seconds"] >= 0.5
        assert run["peak_rss_bytes"] >= run["idle_rss_bytes"] > 0
        assert run["server_cpu_ms_per_job"] > 0
        assert 0 < run["provider_calls_at_once_max"] <= 12
    assert part["postgres"]["database_cpu_ms_per_job"] is not None
    assert part["sqlite"]["database_cpu_ms_per_job"] is None
    assert len(inflight_goals(part)) == 8
    assert "In flight: 12 embedding jobs" in "\n".join(inflight_lines(part))


def test_command_line_takes_the_new_parts() -> None:
    settings = settings_from_args(
        ["--quick", "--only", "embeddings,postgres", "--database-url", "postgresql://x/y"]
    )
    assert settings.parts == ("embeddings", "postgres")
    assert settings.database_url == "postgresql://x/y"
    assert settings.inflight_jobs == 2000
    assert settings.inflight_latency == 10.0
    big = settings_from_args(["--only", "inflight", "--inflight-jobs", "10000", "--inflight-latency", "40"])
    assert (big.inflight_jobs, big.inflight_latency) == (10000, 40.0)
    with pytest.raises(SystemExit):
        settings_from_args(["--inflight-jobs", "0"])
    assert {"embeddings", "generations", "postgres"} <= set(settings_from_args([]).parts) == set(PARTS)


async def test_pixel_bombs_part_reports_both_sides(tmp_path: Path) -> None:
    """Two bombs a side; `before` is this very commit, so the part's git worktree path runs."""
    part = await pixel_bomb_measurement(tmp_path, count=2, before_ref="HEAD")
    assert part["requests"] == 2 and part["bomb_pixels"] == 64_000_000
    for side in ("before", "after"):
        figures = part[side]
        assert figures["statuses"] == [202, 202], figures
        assert figures["peak_rss_bytes"] >= figures["idle_rss_bytes"] > 0
        assert figures["health_answers"] >= 1
    assert part["peak_rss_after_to_before"] > 0
    assert "Pixel bombs" in "\n".join(bomb_lines(part))


async def test_polls_part_compares_both_transports_with_bare_servers(tmp_path: Path) -> None:
    part = await poll_measurement(tmp_path, BRIEF)
    assert part["answer_bytes"] > 0 and part["reply_bytes"] > 0
    for transport in ("rest", "grpc", "rest_ceiling", "rest_to_ceiling"):
        for side in ("baseline", "subject"):
            figures = part[transport][side]
            assert figures["requests_ok"] > 0 and figures["requests_failed"] == 0, figures
