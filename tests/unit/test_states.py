"""The job state machine, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grpc_server.domain.jobs import ImageEditParams, Job, JobStatus, RequestType
from grpc_server.domain.states import ALLOWED, IllegalTransition, can_transition, transition

S = JobStatus
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVERY_MOVE = [(a, b) for a in S for b in S]
LEGAL = {
    (S.PENDING, S.PROCESSING),
    (S.PENDING, S.FAILED),  # refused before running (e.g. cancelled)
    (S.PROCESSING, S.PENDING),  # lease released or expired: back to the queue
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
    (S.PENDING, S.CANCELLED),  # cancelled before it ran: never reaches a provider
    (S.PROCESSING, S.CANCELLED),  # cancelled while running: its call is aborted
    (S.FAILED, S.PENDING),  # retried
    (S.CANCELLED, S.PENDING),  # retried
}


def _job(status: JobStatus) -> Job:
    return Job("id", RequestType.IMAGE_EDIT, status, ImageEditParams(model="local/x"), NOW, ttl_seconds=60)


@pytest.mark.parametrize(("current", "to"), EVERY_MOVE)
def test_allowed_table(current: JobStatus, to: JobStatus) -> None:
    assert can_transition(current, to) == ((current, to) in LEGAL)
    assert (to in ALLOWED[current]) == ((current, to) in LEGAL)


@pytest.mark.parametrize(("current", "to"), sorted(set(EVERY_MOVE) - LEGAL))
def test_illegal_moves_raise(current: JobStatus, to: JobStatus) -> None:
    with pytest.raises(IllegalTransition):
        transition(_job(current), to, NOW)


@pytest.mark.parametrize("to", [S.COMPLETED, S.FAILED, S.CANCELLED])
def test_terminal_moves_stamp_completion_and_expiry(to: JobStatus) -> None:
    done = transition(_job(S.PROCESSING), to, NOW)
    assert done.status == to and done.completed_at == NOW
    assert done.expires_at == NOW + timedelta(seconds=60)


def test_non_terminal_moves_stamp_nothing() -> None:
    moved = transition(_job(S.PENDING), S.PROCESSING, NOW)
    assert moved.status == S.PROCESSING and moved.completed_at is None and moved.expires_at is None


def test_terminal_states_are_final_but_for_a_retry() -> None:
    assert ALLOWED[S.COMPLETED] == frozenset()
    assert ALLOWED[S.FAILED] == ALLOWED[S.CANCELLED] == frozenset({S.PENDING})


def test_a_retry_clears_the_last_outcome() -> None:
    failed = transition(transition(_job(S.PROCESSING), S.FAILED, NOW), S.PENDING, NOW)
    assert (failed.status, failed.completed_at, failed.expires_at, failed.status_code) == (
        S.PENDING,
        None,
        None,
        0,
    )
