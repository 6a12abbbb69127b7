"""The benches of ListJobs plans and queue positions, briefly: they run, and what they report
is what the store does (each filter's index; fair positions against oldest-first ones)."""

from __future__ import annotations

import pytest

from bench import list_plans, queue_positions

pytestmark = pytest.mark.slow


async def test_the_list_plans_bench_shows_each_filter_on_its_index(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await list_plans.main(jobs=20_000, owners=10, rounds=1, plans_only=False)  # the caller: vk-7
    out = capsys.readouterr().out
    summary = dict(
        line.split(": indexes ", 1)
        for line in out.split("## Summary")[1].splitlines()
        if ": indexes " in line
    )
    assert summary["first page"].startswith("jobs_by_owner;")
    assert summary["failed"].startswith("jobs_by_owner_type_status;")
    assert summary["type and status"].startswith("jobs_by_owner_type_status;")
    assert summary["label team=t3 (common)"].startswith("job_labels_pkey, jobs_pkey;")
    assert "returned 21;" in summary["label team=t3 (common)"]  # the caller has jobs: a full page
    assert "before: label team=t3, GIN containment" in summary
    for store in ("PostgreSQL", "SQLite"):
        assert f"## Write costs, {store}" in out
    assert "0005 + GIN" in out


async def test_the_queue_positions_bench_compares_fair_and_oldest_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await queue_positions.main(backlog=200, calls=2, rounds=2)
    out = capsys.readouterr().out
    pending_a = 200 - queue_positions.RUNNING
    for store in ("SQLite", "PostgreSQL"):
        section = out.split(f"## {store}")[1]
        assert f"B's first job: position 0 / {pending_a};" in section  # A's pending turns come after B's
        assert f"A's first pending job: position {queue_positions.SMALL} / 0;" in section
