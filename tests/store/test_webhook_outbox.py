"""The webhook outbox on every backend: an event is stored in the transaction that ends the job
(completed, failed, cancelled, failed by the reaper), only for an endpoint that wants it;
claims lease it to one deliverer; attempts are recorded, listed, and a 410 disables the
endpoint for every replica; redeliver makes an event pending again under the same id; finished
events past the configured history are deleted by the sweeper."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from grpc_server.config import DispatcherSettings, WebhookEndpoint
from grpc_server.dispatch.sweeper import sweep_once
from grpc_server.domain.jobs import JobStatus, cancelled_error
from grpc_server.store.base import JobStore
from grpc_server.store.outbox import AttemptOutcome, ClaimedDelivery
from grpc_server.webhooks.outbox import EndpointPlan
from tests.store.test_store_contract import ERROR, LEASE, T0, _create, _job, _result

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOKS = EndpointPlan(
    [
        WebhookEndpoint("all", "http://127.0.0.1:9/hook", (SECRET,)),
        WebhookEndpoint("failures", "http://127.0.0.1:9/hook", (SECRET,), events=("async_job.failed",)),
    ]
)


async def _running(store: JobStore, tmp_path: Path, webhook: str | None) -> str:
    job = await _create(store, tmp_path, replace(_job(), webhook=webhook))
    await store.claim_jobs("w1", 10, T0, T0 + LEASE)
    return job.id


async def _delivered_at_t0(store: JobStore, tmp_path: Path) -> ClaimedDelivery:
    """The event of a job of endpoint "all" that failed at T0, delivered at the first attempt."""
    store.use_webhooks(HOOKS)
    job_id = await _running(store, tmp_path, "all")
    assert await store.fail_job(job_id, "w1", ERROR, T0)
    (event,) = await store.claim_webhooks("d1", 10, T0, T0 + LEASE)
    assert await store.record_webhook_attempt(event.webhook_id, "d1", _outcome("delivered"))
    return event


def _outcome(state: str, status: int | None = 200, **kw: object) -> AttemptOutcome:
    return AttemptOutcome(T0, status, None if status else "timeout", 0.25, "ok", state, **kw)  # type: ignore[arg-type]


async def test_each_terminal_write_stores_the_event_its_endpoint_wants(
    store: JobStore, tmp_path: Path
) -> None:
    store.use_webhooks(HOOKS)
    completed = await _running(store, tmp_path, "all")
    assert await store.complete_job(completed, "w1", _result(_job(), 1), [], T0)
    failed = await _running(store, tmp_path, "all")
    assert await store.fail_job(failed, "w1", ERROR, T0)
    cancelled = await _create(store, tmp_path, replace(_job(), webhook="all"))
    assert await store.cancel_job(cancelled.id, cancelled_error(cancelled, "ev"), T0) is not None
    unwanted = await _running(store, tmp_path, "failures")  # wants failures only
    assert await store.complete_job(unwanted, "w1", _result(_job(), 1), [], T0)
    unnamed = await _running(store, tmp_path, None)
    assert await store.fail_job(unnamed, "w1", ERROR, T0)

    events = {d.job_id: d for d in await store.list_webhook_deliveries("all", 10)}
    assert set(events) == {completed, failed, cancelled.id}
    assert {d.event_type for d in events.values()} == {
        "async_job.completed",
        "async_job.failed",
        "async_job.cancelled",
    }
    assert all(d.state == "pending" and d.next_attempt_at == T0 and d.attempts == () for d in events.values())
    assert await store.list_webhook_deliveries("failures", 10) == []

    claimed = {c.job_id: c for c in await store.claim_webhooks("d1", 10, T0, T0 + LEASE)}
    body = json.loads(claimed[failed].body)
    assert body["type"] == "async_job.failed" and body["data"]["id"] == failed
    assert body["data"]["status"] == "failed" and body["data"]["webhook"] == "all"
    assert body["data"]["error"]["status_code"] == ERROR.status_code
    assert json.loads(claimed[completed].body)["data"]["result_omitted"] is True


async def test_a_lost_outcome_stores_no_event(store: JobStore, tmp_path: Path) -> None:
    store.use_webhooks(HOOKS)
    job_id = await _running(store, tmp_path, "all")
    assert await store.fail_job(job_id, "w1", ERROR, T0)
    assert not await store.complete_job(job_id, "w1", _result(_job(), 1), [], T0)  # ended already
    assert [d.event_type for d in await store.list_webhook_deliveries("all", 10)] == ["async_job.failed"]


async def test_the_reaper_failing_a_job_stores_its_event(store: JobStore, tmp_path: Path) -> None:
    store.use_webhooks(HOOKS)
    job_id = await _running(store, tmp_path, "failures")
    result = await store.reap_expired_leases(T0 + 2 * LEASE, 1, ERROR)
    assert result.failed == 1
    (event,) = await store.list_webhook_deliveries("failures", 10)
    assert event.job_id == job_id and event.event_type == "async_job.failed"


async def test_a_claim_leases_an_event_to_one_deliverer_until_its_lease_ends(
    store: JobStore, tmp_path: Path
) -> None:
    store.use_webhooks(HOOKS)
    job_id = await _running(store, tmp_path, "all")
    assert await store.fail_job(job_id, "w1", ERROR, T0)
    (first,) = await store.claim_webhooks("d1", 10, T0, T0 + LEASE)
    assert await store.claim_webhooks("d2", 10, T0, T0 + LEASE) == []
    (again,) = await store.claim_webhooks("d2", 10, T0 + 2 * LEASE, T0 + 3 * LEASE)  # d1 died
    assert again.webhook_id == first.webhook_id and again.body == first.body
    assert not await store.record_webhook_attempt(first.webhook_id, "d1", _outcome("delivered"))
    assert await store.record_webhook_attempt(first.webhook_id, "d2", _outcome("delivered"))
    assert await store.claim_webhooks("d1", 10, T0 + 9 * LEASE, T0 + 10 * LEASE) == []


async def test_attempts_are_recorded_and_a_retry_waits_for_its_time(store: JobStore, tmp_path: Path) -> None:
    store.use_webhooks(HOOKS)
    job_id = await _running(store, tmp_path, "all")
    assert await store.fail_job(job_id, "w1", ERROR, T0)
    (event,) = await store.claim_webhooks("d1", 10, T0, T0 + LEASE)
    later = T0 + timedelta(minutes=5)
    assert await store.record_webhook_attempt(
        event.webhook_id, "d1", _outcome("pending", None, next_attempt_at=later)
    )
    assert await store.claim_webhooks("d1", 10, T0 + LEASE, later + LEASE) == []  # not due yet
    (retry,) = await store.claim_webhooks("d1", 10, later, later + LEASE)
    assert retry.webhook_id == event.webhook_id and retry.attempts == 1
    assert await store.record_webhook_attempt(retry.webhook_id, "d1", _outcome("delivered", 204))
    (logged,) = await store.list_webhook_deliveries("all", 10)
    assert logged.state == "delivered" and logged.next_attempt_at is None and logged.last_status == 204
    assert [(a.attempt, a.status, a.error) for a in logged.attempts] == [(1, None, "timeout"), (2, 204, None)]
    assert logged.attempts[0].duration_seconds == 0.25 and logged.attempts[0].excerpt == "ok"


async def test_a_410_disables_the_endpoint_and_holds_its_other_events(
    store: JobStore, tmp_path: Path
) -> None:
    store.use_webhooks(HOOKS)
    first, second = [await _running(store, tmp_path, "all") for _ in range(2)]
    assert await store.fail_job(first, "w1", ERROR, T0)
    (event,) = await store.claim_webhooks("d1", 1, T0, T0 + LEASE)
    assert await store.fail_job(second, "w1", ERROR, T0)
    gone = _outcome("given_up", 410, disable_endpoint=True)
    assert await store.record_webhook_attempt(event.webhook_id, "d1", gone)
    assert await store.disabled_webhook_endpoints() == {"all"}
    assert await store.claim_webhooks("d1", 10, T0, T0 + LEASE) == []  # the other event waits


async def test_redeliver_makes_an_event_pending_again_under_its_id(store: JobStore, tmp_path: Path) -> None:
    event = await _delivered_at_t0(store, tmp_path)
    assert not await store.redeliver_webhook("failures", event.webhook_id, T0)  # another endpoint's
    assert not await store.redeliver_webhook("all", "msg_unknown", T0)
    assert await store.redeliver_webhook("all", event.webhook_id, T0 + LEASE)
    (again,) = await store.claim_webhooks("d1", 10, T0 + LEASE, T0 + 2 * LEASE)
    assert again.webhook_id == event.webhook_id and again.body == event.body and again.attempts == 1


async def test_finished_events_past_the_history_are_deleted_pending_ones_kept(
    store: JobStore, tmp_path: Path
) -> None:
    store.use_webhooks(HOOKS)
    day = timedelta(days=1)
    ended = {}
    for name, at in (
        ("delivered", T0),
        ("given_up", T0),
        ("pending", T0),
        ("recent", T0 + day),
        ("more", T0),
    ):
        job_id = await _running(store, tmp_path, "all")
        assert await store.fail_job(job_id, "w1", ERROR, at)  # the event is created at `at`
        ended[name] = job_id
    claimed = {c.job_id: c for c in await store.claim_webhooks("d1", 10, T0 + day, T0 + day + LEASE)}
    for name, state in (("delivered", "delivered"), ("given_up", "given_up"), ("recent", "delivered")):
        outcome = _outcome(state, 200 if state == "delivered" else 500)
        assert await store.record_webhook_attempt(claimed[ended[name]].webhook_id, "d1", outcome)
    more = _outcome("delivered")
    assert await store.record_webhook_attempt(claimed[ended["more"]].webhook_id, "d1", more)

    assert await store.delete_finished_webhooks(T0 + day / 2, 2) == 2  # a batch of at most 2
    assert await store.delete_finished_webhooks(T0 + day / 2, 2) == 1
    assert await store.delete_finished_webhooks(T0 + day / 2, 2) == 0
    kept = {d.job_id: d for d in await store.list_webhook_deliveries("all", 10)}
    assert set(kept) == {ended["pending"], ended["recent"]}  # pending however old; finished but recent
    assert [a.status for a in kept[ended["recent"]].attempts] == [200]


async def test_the_sweeper_deletes_events_past_the_configured_history(
    store: JobStore, tmp_path: Path
) -> None:
    await _delivered_at_t0(store, tmp_path)
    settings = DispatcherSettings(webhook_history_seconds=3600)
    await sweep_once(store, settings, T0 + timedelta(minutes=59))
    assert len(await store.list_webhook_deliveries("all", 10)) == 1  # within the history
    await sweep_once(store, settings, T0 + timedelta(minutes=61))
    assert await store.list_webhook_deliveries("all", 10) == []


async def test_without_a_plan_no_event_is_stored(store: JobStore, tmp_path: Path) -> None:
    job_id = await _running(store, tmp_path, "all")
    assert await store.fail_job(job_id, "w1", ERROR, T0)
    assert await store.list_webhook_deliveries("all", 10) == []
    got = await store.get_job(job_id)
    assert got is not None and got.status == JobStatus.FAILED and got.webhook == "all"
