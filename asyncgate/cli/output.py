"""What asyncgate-cli prints: a line per event for people, one JSON object for scripts,
and a live status line (rich) while waiting, only when stdout is a terminal."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.status import Status

from asyncgate.client import AsyncGateError, EmbeddingsResult, ImagesResult, Job


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def job_dict(job: Job) -> dict[str, Any]:
    return dataclasses.asdict(job)


def print_json(value: object, stream: TextIO | None = None) -> None:
    print(json.dumps(value, default=_plain), file=stream or sys.stdout)


def summary(job: Job) -> str:
    """One line: id, type, status, and what the job came to."""
    kind = f" ({job.request_type})" if job.request_type else ""
    details = []
    if job.queue_position is not None:
        details.append(f"queue position {job.queue_position}")
    if job.completed_at is not None:
        details.append(f"in {(job.completed_at - job.created_at).total_seconds():.2f} s")
    if isinstance(job.result, ImagesResult):
        count = len(job.result.data)
        details.append(f"{count} image{'s' * (count != 1)} by {job.result.provider}/{job.result.model}")
    elif isinstance(job.result, EmbeddingsResult):
        count, dims = len(job.result.data), len(job.result.data[0].embedding) if job.result.data else 0
        by = f"{job.result.provider}/{job.result.model}"
        details.append(f"{count} vector{'s' * (count != 1)} of {dims} numbers by {by}")
    if job.error is not None:
        param = f" (param: {job.error.param})" if job.error.param else ""
        details.append(
            f"{job.error.status_code} {job.error.code or job.error.type}: {job.error.message}{param}"
        )
    return f"job {job.id}{kind}: {job.status}" + "".join(f", {detail}" for detail in details)


def error_line(error: AsyncGateError) -> str:
    param = f" (param: {error.param})" if error.param else ""
    code = f" [{error.code}]" if error.code else ""
    return f"error: {type(error).__name__}{code}: {error.message}{param}"


def error_dict(error: AsyncGateError) -> dict[str, Any]:
    return {
        "error": {
            "kind": type(error).__name__,
            "message": error.message,
            "code": error.code,
            "param": error.param,
            "status": error.status,
        }
    }


def output_paths(output: str, count: int) -> list[Path]:
    """`out.png` for one file; `out-0.png`, `out-1.png`, ... for several."""
    path = Path(output)
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{index}{path.suffix}") for index in range(count)]


class Progress:
    """A live status line while a job is waited on; silent unless stdout is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self._status: Status | None = None
        if enabled:
            self._status = Console().status("submitting", spinner="dots")

    def __enter__(self) -> Progress:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def show(self, job: Job) -> None:
        if self._status is not None:
            self._status.update(summary(job))
