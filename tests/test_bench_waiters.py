"""The waiters part of the bench against the real processes, at a tiny scale: every mode
answers every client, without errors, and reports its figures. No timing thresholds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.__main__ import settings_from_args
from bench.report_waiters import waiters_lines
from bench.runner import PARTS
from bench.waiter_clients import MODES
from bench.waiters import WaiterSettings, waiters_measurement

pytestmark = pytest.mark.slow


async def test_every_mode_answers_every_client(tmp_path: Path) -> None:
    settings = WaiterSettings(clients=6, jobs=3, paced=1, rate=20.0)
    part = await waiters_measurement(tmp_path, settings)
    assert (part["clients"], part["jobs"], part["paced"]) == (6, 3, 1)
    for mode in MODES:
        figures = part[mode]
        assert figures["client_errors"] == {}, (mode, figures)
        assert figures["paced"]["answers"] == 2 and figures["burst"]["answers"] == 4, (mode, figures)
        for phase in ("paced", "burst"):
            assert figures[phase]["p50_ms"] >= 0 and not math.isnan(figures[phase]["p99_ms"])
        assert set(figures["waiting"]["cpu_cores"]) == {"server", "bridge", "clients"}
        assert figures["requests"] >= 6
    polling = part["grpc-poll"]["requests"]
    assert polling > part["grpc-wait"]["requests"] == 6  # each waiter asked once, each poller more
    lines = waiters_lines(part)
    assert len(lines) == 2 + len(MODES) + 1


def test_the_part_is_registered() -> None:
    assert "waiters" in PARTS
    settings = settings_from_args(["--only", "waiters", "--waiters-clients", "500"])
    assert settings.parts == ("waiters",) and settings.waiters.clients == 500
    assert settings_from_args(["--quick"]).waiters.clients < settings_from_args([]).waiters.clients == 10_000
