"""The enqueue part (asyncgate's submit on PostgreSQL next to procrastinate's) against the real
processes, briefly: every side accepts its jobs, and they land where each store keeps them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.enqueue import enqueue_lines, enqueue_measurement
from bench.pg import BACKENDS
from bench.runner import Settings
from tests.test_bench_smoke import check_comparison, check_side
from tests.unavailable import unavailable

pytestmark = pytest.mark.slow

BRIEF = Settings(duration=1.0, warmup=0.2, concurrency=2, rounds=1, parts=("enqueue",))


async def test_enqueue_part_puts_jobs_in_both_queues(tmp_path: Path) -> None:
    report = await enqueue_measurement(tmp_path, BRIEF)
    if "skipped" in report:
        unavailable(report["skipped"], "PostgreSQL")
    variants = ["embedding", "image_database", "image_directory", "image_s3"]
    if "skipped" in report["image_s3"] and os.environ.get("CI") == "true":
        pytest.fail(f"CI needs SeaweedFS: {report['image_s3']['skipped']}")
    for name in (v for v in variants if "skipped" not in report[v]):
        for protocol, processes in (("grpc", {"grpc-server"}), ("rest", {"rest-bridge", "grpc-server"})):
            part = report[name][protocol]
            check_side(part["baseline"], "OK", {BACKENDS})
            assert isinstance(part["baseline"]["sample_answer"]["id"], int)  # procrastinate's job id
            bucket = {"seaweedfs"} if name == "image_s3" else set()
            ok = "202" if protocol == "rest" else "OK"
            check_side(part["subject"], ok, {*processes, *bucket, BACKENDS})
            check_comparison(part)

    # The image jobs' files went where [blobs] store said: a directory beside the server, or not.
    def files(name: str) -> list[Path]:
        return [p for p in (tmp_path / f"enqueue-{name}-grpc-server-data").rglob("in~image-0") if p.is_file()]

    directory = report["image_directory"]
    accepted = sum(directory[protocol]["subject"]["requests_ok"] for protocol in ("grpc", "rest"))
    assert len(files("image_directory")) >= accepted
    assert files("image_database") == []
    sizes = report["payload_bytes"]
    assert sizes["image"]["procrastinate_args"] > sizes["image"]["grpc"] > 100_000
    printed = "\n".join(enqueue_lines(report))
    assert "procrastinate" in printed and "store = directory" in printed
