"""The SQL conditions of the stores' compare-and-set writes, made from the state table.

A store moves a job only with `UPDATE ... WHERE <guard>`, and every guard is built here
from grpc_server.domain.states: a move the table does not allow cannot be written (asking
for one fails when the store module is imported), and a change to the table changes the
guards of both stores at once.
"""

from __future__ import annotations

from grpc_server.domain.jobs import JobStatus
from grpc_server.domain.states import sources_of


def moving_to(to: JobStatus, *, only_from: JobStatus | None = None, column: str = "status") -> str:
    """The condition for moving a job to `to`: its status is one the table allows the move from,
    or only `only_from` (which the table must allow). One status renders as `=`, which lets
    SQLite use the partial indexes (`WHERE status = 'pending'`)."""
    sources = sources_of(to)
    if only_from is not None:
        if only_from not in sources:
            raise ValueError(f"{only_from} -> {to} is not a transition of the state table")
        sources = frozenset({only_from})
    if not sources:
        raise ValueError(f"no status may move to {to}")
    return in_status(*sorted(sources), column=column)


def in_status(*statuses: JobStatus, column: str = "status") -> str:
    """`column` holds one of `statuses` (the enum's own values, so safe as SQL literals)."""
    literals = [f"'{JobStatus(s).value}'" for s in statuses]
    return f"{column} = {literals[0]}" if len(literals) == 1 else f"{column} IN ({', '.join(literals)})"
