"""The bench's fairness part, briefly (a backlog of 200): with fair share key B's jobs start among
the first claims, without it after the whole backlog; on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fairness import SLOTS, SMALL_JOBS, fairness_lines, fairness_measurement
from tests.pg import TEST_DATABASE_URL

pytestmark = pytest.mark.slow


async def test_fair_share_starts_the_small_key_among_the_first_claims(tmp_path: Path) -> None:
    report = await fairness_measurement(tmp_path, TEST_DATABASE_URL, backlog=200)
    for backend in ("sqlite", "postgres"):
        fair = report[backend]["fair_share"]["claims_before_each_b_job"]
        oldest = report[backend]["oldest_first"]["claims_before_each_b_job"]
        assert oldest == list(range(200, 200 + SMALL_JOBS))  # behind the whole backlog
        assert fair[0] == 1 and fair[-1] < 2 * SLOTS  # taking turns from the first claim
        assert report[backend]["fair_share"]["claim_statements"] > 200 // SLOTS
    assert "postgres fair_share" in "\n".join(fairness_lines(report))
