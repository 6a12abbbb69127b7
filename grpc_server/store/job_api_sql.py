"""The SQL of the job API shared by both stores: the guards of cancel and retry (from the state
table) and the ListJobs query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from grpc_server.domain.jobs import JobStatus, RequestType
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


def oldest_first_position_sql(created: str, job_id: str) -> str:
    """The pending jobs an oldest-first claim takes before the job (created, job_id)."""
    return (
        f"SELECT count(*) FROM jobs WHERE {PENDING}"
        f" AND (created_at < {created} OR (created_at = {created} AND id < {job_id}))"
    )


NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"


class Dialect(Protocol):
    def param(self, n: int) -> str:
        """The n-th (1-based) parameter's placeholder."""
        ...

    def time(self, value: datetime) -> object:
        """A time as this store keeps it."""
        ...

    @property
    def limits_each_arm(self) -> bool:
        """Whether each arm of a UNION ALL gets its own ORDER BY and LIMIT: PostgreSQL then
        plans every arm as an ordered index scan under a Merge Append (without, it may read
        each arm whole by a bitmap and sort); SQLite merges plain arms in index order by
        itself, and would sort limited ones again."""
        ...


def list_sql(query: ListQuery, dialect: Dialect) -> tuple[str, list[object]]:
    """One page (and one job more, to tell whether another page follows), newest first, keyset
    paging on (created_at, id). Each filter of a caller's jobs is served by an index (migration
    0006) that yields the jobs in that order, so a page reads its own rows:

    - labels: the first label's rows in job_labels, by its primary key (each further label
      joined to it on the same job, so the planner may start from the rarer one or merge both);
    - status and/or type: one arm per (type, status) pair allowed, each a scan of
      jobs_by_owner_type_status, merged (a UNION ALL under the ORDER BY: PostgreSQL's Merge
      Append, SQLite's merge of co-routines; both stop at the LIMIT);
    - otherwise (a creation range, or nothing): jobs_by_owner.

    Other filters given with labels are checked on the job's row. A listing of every owner's
    jobs (an admin's) has no index of its own: it filters and sorts."""
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return dialect.param(len(args))

    owner = arg(query.owner_key_id) if query.owner_key_id is not None else None
    since = arg(dialect.time(query.created_after)) if query.created_after is not None else None
    until = arg(dialect.time(query.created_before)) if query.created_before is not None else None
    after = (
        (arg(dialect.time(query.after.created_at)), arg(query.after.id)) if query.after is not None else None
    )
    limit = arg(query.page_size + 1)

    def in_order(created: str, job_id: str) -> list[str]:
        """The creation range and the page's start, on these columns."""
        where = [f"{created} >= {since}"] if since is not None else []
        if until is not None:
            where.append(f"{created} < {until}")
        if after is not None:
            # A row comparison: PostgreSQL bounds the index scan with it (an OR would be a filter).
            where.append(f"({created}, {job_id}) < ({after[0]}, {after[1]})")
        return where

    statuses = sorted(set(query.statuses))
    if set(statuses) == set(JobStatus):
        statuses = []  # every status: no filter
    if query.labels:
        sql = _by_labels(query, owner, statuses, arg, in_order)
    elif owner is not None and (statuses or query.request_type is not None):
        types = [query.request_type] if query.request_type is not None else sorted(RequestType)
        arms = [
            _select(
                [
                    f"owner_key_id = {owner}",
                    f"request_type = '{t.value}'",
                    f"status = {_opaque(s)}",
                    *in_order("created_at", "id"),
                ]
            )
            for t in types
            for s in statuses or sorted(JobStatus)
        ]
        if dialect.limits_each_arm and len(arms) > 1:
            arms = [f"({arm} {NEWEST_FIRST} LIMIT {limit})" for arm in arms]
        sql = f"{' UNION ALL '.join(arms)} {NEWEST_FIRST}"
    else:
        where = [f"owner_key_id = {owner}"] if owner is not None else []
        if statuses:
            where.append(in_status(*statuses))
        if query.request_type is not None:
            where.append("request_type = " + arg(query.request_type.value))
        sql = f"{_select([*where, *in_order('created_at', 'id')])} {NEWEST_FIRST}"
    return f"{sql} LIMIT {limit}", args


def _opaque(status: JobStatus) -> str:
    """The status as a one-row sub-select rather than a literal: a scan of this index equal to
    it either way, but PostgreSQL can then no longer match the partial indexes on
    `status = 'pending'` (jobs_queue: every owner's pending jobs by creation), which its default
    cost model (random_page_cost 4, heap order following created_at) can rate cheaper than a
    page of this index's scattered rows while it reads every pending job of other owners."""
    return f"(SELECT '{JobStatus(status).value}')"


def _select(where: list[str]) -> str:
    return f"SELECT * FROM jobs WHERE {' AND '.join(where) or 'TRUE'}"


def _by_labels(
    query: ListQuery,
    owner: str | None,
    statuses: list[JobStatus],
    arg: Callable[[object], str],
    in_order: Callable[[str, str], list[str]],
) -> str:
    """The jobs carrying every label, from job_labels (l0: the first label, l1...: the others)."""
    joins, where = [], []
    for n, (key, value) in enumerate(sorted(query.labels.items())):
        label = [f"l{n}.key = {arg(key)}", f"l{n}.value = {arg(value)}"]
        if n == 0:
            where += ([f"l0.owner_key_id = {owner}"] if owner is not None else []) + label
        else:  # the same job: every column of the primary key given
            same = [f"l{n}.{column} = l0.{column}" for column in ("owner_key_id", "created_at", "job_id")]
            joins.append(f" JOIN job_labels l{n} ON {' AND '.join(same + label)}")
    if statuses:
        where.append(in_status(*statuses, column="jobs.status"))
    if query.request_type is not None:
        where.append("jobs.request_type = " + arg(query.request_type.value))
    where += in_order("l0.created_at", "l0.job_id")
    return (
        f"SELECT jobs.* FROM job_labels l0{''.join(joins)} JOIN jobs ON jobs.id = l0.job_id"
        f" WHERE {' AND '.join(where)} ORDER BY l0.created_at DESC, l0.job_id DESC"
    )
