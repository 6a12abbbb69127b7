"""How a job's documents are stored: the same JSON text in every backend.

Backends keep the scalar columns (ids, status, times, counters) natively and
the structured parts (request parameters, inputs, result, error) as JSON
documents produced and read here, so a change to a document's shape is made
once for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from grpc_server.domain.jobs import (
    InputFile,
    Job,
    JobError,
    JobResult,
    JobStatus,
    RequestType,
    params_from_json,
    result_from_json,
)
from grpc_server.store.base import StagedFile

JOB_COLUMNS = (
    "id",
    "request_type",
    "status",
    "model",
    "owner_key_id",
    "params",
    "inputs",
    "ttl_seconds",
    "created_at",
    "labels",
    "idempotency_key",
    "request_hash",
    "webhook",
    "blob_store",
)
"""The columns a new job's row sets, in the order of job_row's values."""


def job_row(
    job: Job, files: Sequence[StagedFile], created_at: object, blob_store: str | None = None
) -> tuple[Any, ...]:
    """A new job's values for JOB_COLUMNS; `created_at` as the backend stores times; `blob_store`
    the blob store that holds its files (None: the job database)."""
    return (
        job.id,
        job.request_type.value,
        job.status.value,
        job.params.model,
        job.owner_key_id,
        params_json(job),
        inputs_json(files),
        job.ttl_seconds,
        created_at,
        json.dumps(job.labels),
        job.idempotency_key,
        job.request_hash,
        job.webhook,
        blob_store,
    )


def params_json(job: Job) -> str:
    return json.dumps(job.params.to_json())


def inputs_json(files: Sequence[StagedFile]) -> str:
    return json.dumps([vars(f.info) for f in files])


def result_json(result: JobResult) -> str:
    return json.dumps(result.to_json())


def error_json(error: JobError) -> str:
    return json.dumps(error.to_json())


def job_from_row(
    row: Mapping[str, Any], created_at: datetime, completed_at: datetime | None, expires_at: datetime | None
) -> Job:
    """A Job from a row whose timestamps the backend has already turned into datetimes."""
    return Job(
        id=str(row["id"]),
        request_type=RequestType(row["request_type"]),
        status=JobStatus(row["status"]),
        params=params_from_json(RequestType(row["request_type"]), json.loads(row["params"])),
        created_at=created_at,
        ttl_seconds=row["ttl_seconds"],
        owner_key_id=row["owner_key_id"],
        inputs=tuple(InputFile(**f) for f in json.loads(row["inputs"])),
        completed_at=completed_at,
        expires_at=expires_at,
        status_code=row["status_code"],
        result=result_from_json(json.loads(row["result"])) if row["result"] else None,
        error=JobError.from_json(json.loads(row["error"])) if row["error"] else None,
        attempts=row["attempts"],
        labels=json.loads(row["labels"]),
        change_seq=row["change_seq"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        webhook=row["webhook"],
        blob_store=row["blob_store"],
        outputs_token=row["outputs_token"],
    )
