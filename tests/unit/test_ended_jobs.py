"""The kept answers of ended jobs (grpc_server.ended_jobs): what is kept, what an event drops,
and an answer read while an event came is never kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grpc_server.domain.jobs import ImageEditParams, Job, JobStatus, RequestType
from grpc_server.ended_jobs import EndedJobs
from grpc_server.observed_store import observed
from grpc_server.store.base import EVENT_KINDS, StoreEvent
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _job(job_id: str = "j1", status: JobStatus = JobStatus.COMPLETED, change_seq: int = 3) -> Job:
    return Job(
        job_id,
        RequestType.IMAGE_EDIT,
        status,
        ImageEditParams(model="local/x"),
        NOW,
        ttl_seconds=60,
        owner_key_id="vk-a",
        expires_at=NOW + timedelta(seconds=60),
        change_seq=change_seq,
    )


def _kept(job: Job, answer: str = "answer") -> EndedJobs[str]:
    ended: EndedJobs[str] = EndedJobs(trusted=True)
    ended.put(job, answer, ended.reading())
    return ended


def test_an_ended_job_is_kept_with_what_each_poll_checks() -> None:
    entry = _kept(_job()).get("j1")
    assert entry is not None and entry.answer == "answer"
    assert (entry.owner_key_id, entry.request_type, entry.change_seq) == ("vk-a", RequestType.IMAGE_EDIT, 3)
    assert not entry.is_expired(NOW + timedelta(seconds=59))
    assert entry.is_expired(NOW + timedelta(seconds=60))


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_a_job_not_ended_is_never_kept(status: JobStatus) -> None:
    assert _kept(_job(status=status)).get("j1") is None


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_any_event_of_the_job_drops_it(kind: str) -> None:
    ended = _kept(_job())
    ended.on_event(StoreEvent(kind, "other"))  # type: ignore[arg-type]
    assert ended.get("j1") is not None
    ended.on_event(StoreEvent(kind, "j1"))  # type: ignore[arg-type]
    assert ended.get("j1") is None


def test_events_may_have_been_lost_drops_everything() -> None:
    ended = _kept(_job("j1"))
    ended.put(_job("j2"), "two", ended.reading())
    ended.on_event(StoreEvent("submitted", ""))
    assert len(ended) == 0


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS - {"submitted"}))
def test_an_answer_read_while_an_event_came_is_not_kept(kind: str) -> None:
    """The read may predate a delete or retry whose event came before its result did."""
    ended: EndedJobs[str] = EndedJobs(trusted=True)
    mark = ended.reading()
    ended.on_event(StoreEvent(kind, "j1"))  # type: ignore[arg-type]
    ended.put(_job(), "stale", mark)
    assert ended.get("j1") is None
    ended.put(_job(), "fresh", ended.reading())  # the next poll's read is kept
    assert ended.get("j1") is not None


def test_a_new_jobs_event_does_not_stop_a_read_being_kept() -> None:
    ended: EndedJobs[str] = EndedJobs(trusted=True)
    mark = ended.reading()
    ended.on_event(StoreEvent("submitted", "j9"))
    ended.put(_job(), "answer", mark)
    assert ended.get("j1") is not None


def test_untrusted_entries_answer_only_the_state_just_read() -> None:
    ended: EndedJobs[str] = EndedJobs(trusted=False)
    job = _job()
    ended.put(job, "answer", ended.reading())
    assert ended.get("j1") is None  # never without a read
    assert ended.kept(job) == "answer"
    assert ended.kept(replace(job, change_seq=4)) is None  # another state: rendered anew


def test_the_least_recently_polled_go_first() -> None:
    ended: EndedJobs[str] = EndedJobs(trusted=True, max_entries=2)
    for job_id in ("j1", "j2"):
        ended.put(_job(job_id), job_id, ended.reading())
    assert ended.get("j1") is not None  # j2 is now the least recent
    ended.put(_job("j3"), "j3", ended.reading())
    assert ended.get("j2") is None
    assert ended.get("j1") is not None and ended.get("j3") is not None and len(ended) == 2


def test_only_a_store_that_hears_every_write_is_trusted(tmp_path: Path) -> None:
    sqlite = SQLiteStore(tmp_path / "a.sqlite3")
    assert sqlite.hears_every_write and observed(sqlite).hears_every_write
    postgres = PostgresStore("postgresql://postgres@127.0.0.1:5432/unused")
    assert not postgres.hears_every_write and not observed(postgres).hears_every_write
