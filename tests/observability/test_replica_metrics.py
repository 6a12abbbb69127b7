"""Two replicas on one PostgreSQL database: each exposes its own /metrics, and the queue
gauges come from the shared store, so a replica that accepted nothing still reports the
jobs another one accepted (counters are per process: these two share the test's). When its
store goes away, a replica says so (store_up 0, health_serving 0) instead of reporting an
empty queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from grpc_server.config import DispatcherSettings
from tests.conftest import Stack, StackFactory
from tests.observability.scrape import Samples, scrape, value
from tests.pg import fresh_database, server_address, with_address
from tests.rest import edit_form, submit
from tests.tcp_proxy import TcpProxy

ACCEPT_ONLY = DispatcherSettings(concurrency=0, poll_interval_seconds=0.2, sweep_interval_seconds=0.3)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database() as dsn:
        yield dsn


async def server_metrics(stack: Stack) -> Samples:
    return await scrape(f"http://127.0.0.1:{stack.server.metrics.port}/metrics")


async def test_every_replica_reports_the_shared_queue(database: str, make_stack: StackFactory) -> None:
    first = await make_stack(database_url=database, metrics_port=0, dispatcher=ACCEPT_ONLY)
    second = await make_stack(database_url=database, metrics_port=0, dispatcher=ACCEPT_ONLY)
    for _ in range(3):
        status, _ = await submit(first.http, edit_form())
        assert status == 202
    on_first, on_second = await server_metrics(first), await server_metrics(second)

    for samples in (on_first, on_second):
        assert value(samples, "asyncgate_queue_jobs", state="pending") == 3
        assert value(samples, "asyncgate_oldest_pending_job_age_seconds") > 0
    assert value(on_first, "asyncgate_running_jobs") == value(on_second, "asyncgate_running_jobs") == 0


async def test_a_replica_without_its_store_says_so(database: str, make_stack: StackFactory) -> None:
    async with TcpProxy(*server_address()) as proxy:
        stack = await make_stack(
            database_url=with_address(database, "127.0.0.1", proxy.port),
            metrics_port=0,
            dispatcher=ACCEPT_ONLY,
        )
        await submit(stack.http, edit_form())
        healthy = await server_metrics(stack)
        assert value(healthy, "asyncgate_store_up") == 1
        assert value(healthy, "asyncgate_health_serving") == 1
        assert value(healthy, "asyncgate_queue_jobs", state="pending") == 1

        proxy.cut()
        while value(down := await server_metrics(stack), "asyncgate_health_serving") == 1:
            pass  # the health monitor notices within its check interval
        assert value(down, "asyncgate_store_up") == 0
        assert not [name for name, _ in down if name == "asyncgate_queue_jobs"]  # absent, not 0
        stats = {"method": "stats", "outcome": "unavailable"}
        assert value(await server_metrics(stack), "asyncgate_store_operation_seconds_count", **stats) >= 1

        proxy.restore()
        while value(up := await server_metrics(stack), "asyncgate_store_up") == 0:
            pass
        assert value(up, "asyncgate_queue_jobs", state="pending") == 1
