"""The SQL of the job API shared by both stores: the guards of cancel and retry (from the state
table) and the ListJobs query."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from grpc_server.domain.jobs import JobStatus
from grpc_server.domain.states import RETRYABLE, sources_of
from grpc_server.jobs_list import ListQuery
from grpc_server.store.guards import in_status, moving_to

CANCELLABLE = moving_to(JobStatus.CANCELLED)
"""A job that has not ended: the cancel's compare-and-set, so no outcome is overwritten."""

if not RETRYABLE <= sources_of(JobStatus.PENDING):
    raise ValueError("the state table must allow a retry (failed, cancelled -> pending)")
RETRYABLE_GUARD = in_status(*sorted(RETRYABLE))
"""A failed or cancelled job, which a retry moves back to pending."""

PENDING = in_status(JobStatus.PENDING)


class Dialect(Protocol):
    def param(self, n: int) -> str:
        """The n-th (1-based) parameter's placeholder."""
        ...

    def time(self, value: datetime) -> object:
        """A time as this store keeps it."""
        ...

    def label(self, key_param: str) -> str:
        """SQL for the value of the label whose key is the parameter `key_param` (NULL if none)."""
        ...


def list_sql(query: ListQuery, dialect: Dialect) -> tuple[str, list[object]]:
    """One page (and one job more, to tell whether another page follows), newest first: the
    owner's jobs by the jobs_by_owner index, keyset paging on (created_at, id)."""
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return dialect.param(len(args))

    where = ["owner_key_id = " + arg(query.owner_key_id) if query.owner_key_id is not None else "TRUE"]
    if query.statuses:
        where.append(in_status(*query.statuses))
    if query.request_type is not None:
        where.append("request_type = " + arg(query.request_type.value))
    for key, value in sorted(query.labels.items()):
        where.append(f"{dialect.label(arg(key))} = {arg(value)}")
    if query.created_after is not None:
        where.append("created_at >= " + arg(dialect.time(query.created_after)))
    if query.created_before is not None:
        where.append("created_at < " + arg(dialect.time(query.created_before)))
    if query.after is not None:
        # A row comparison: PostgreSQL bounds the index scan with it (an OR would be a filter).
        created, job_id = arg(dialect.time(query.after.created_at)), arg(query.after.id)
        where.append(f"(created_at, id) < ({created}, {job_id})")
    sql = (
        f"SELECT * FROM jobs WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, id DESC LIMIT {arg(query.page_size + 1)}"
    )
    return sql, args
