"""The printed sections of the end-to-end job parts: embeddings, generations, postgres."""

from __future__ import annotations

from typing import Any

from bench.tables import f, header, ratio_line, side_lines


def _pct(share: float) -> str:
    return f(share * 100, 0) + "%"


def _job_detail(side: dict[str, Any]) -> list[str]:
    """The server's own time and, where the provider's arrivals were matched, dispatch latency."""
    server = side["server_job_ms"]
    text = (
        f"submit p50 {f(side['submit_ms']['p50'])}, {f(side['polls_per_job'], 1)} polls/job; "
        f"server created -> completed p50 {f(server['p50'], 1)}, p99 {f(server['p99'], 1)}"
    )
    if (dispatch := side.get("dispatch_ms")) is not None:
        text += f"; submit returned -> provider called p50 {f(dispatch['p50'])}, p99 {f(dispatch['p99'])}"
    return [f"  {'':<24}{text}"]


def _job_side(name: str, side: dict[str, Any]) -> list[str]:
    return [*side_lines(name, side, per="job"), *_job_detail(side)]


def _share_line(part: dict[str, Any]) -> str:
    share = part["gateway_share"]
    return (
        f"  {'':<24}gateway share = 1 - provider call / job: {_pct(share['end_to_end_p50'])} of the "
        f"end-to-end p50, {_pct(share['server_side_p50'])} of the server's created -> completed p50"
    )


def embeddings_lines(part: dict[str, Any]) -> list[str]:
    one = part["one_client"]
    return [
        f"Embeddings end to end (REST): submit, run against a provider that answers at once "
        f"({part['dimensions']}-dim vectors), poll every {part['poll_interval_ms']:g} ms until 200",
        header("jobs/s"),
        *side_lines("provider, called direct", part["baseline"]),
        *_job_side("asyncgate", part["subject"]),
        ratio_line("asyncgate / direct", part["ratio"]),
        _share_line(part),
        f"  One client (nothing waits for CPU); the provider spends "
        f"{f(part['provider_handler_mean_ms'], 3)} ms in its handler per request",
        *side_lines("provider, called direct", one["baseline"]),
        *_job_side("asyncgate", one["subject"]),
        ratio_line("asyncgate / direct", one["ratio"]),
        _share_line(one),
        "",
    ]


def generations_lines(part: dict[str, Any]) -> list[str]:
    return [
        f"Image generations end to end (REST): {part['model']} {part['size']} (CPU work in the server), "
        f"poll every {part['poll_interval_ms']:g} ms until 200",
        header("jobs/s"),
        *_job_side("asyncgate", part["subject"]),
        "",
    ]


def _failed(title: str, part: dict[str, Any]) -> list[str]:
    """A measurement whose servers could not start: the end of the reason."""
    return [f"  {title}: FAILED", *(f"    {line}" for line in part["error"].splitlines()[-5:])]


def _versus(title: str, part: dict[str, Any], names: tuple[str, str], unit: str) -> list[str]:
    if "error" in part:
        return _failed(title, part)
    detail = _job_side if unit == "jobs/s" else side_lines
    return [
        f"  {title}",
        header(unit),
        *detail(names[0], part["baseline"]),
        *detail(names[1], part["subject"]),
        ratio_line(f"{names[1]} / {names[0]}", part["ratio"]),
    ]


def _dispatch_lines(part: dict[str, Any]) -> list[str]:
    title = "Dispatch latency: submit returned -> provider called"
    if "error" in part:
        return _failed(title, part)
    lines = [f"  {title}, {part['clients']} clients, each submit -> GetJob until done"]
    for key, what in (
        ("baseline", "SQLite, one process (the submit wakes its dispatcher)"),
        (
            "subject",
            f"PostgreSQL, accept-only replica + worker replica (safety poll "
            f"{part['worker_poll_interval_seconds']:g} s: LISTEN/NOTIFY)",
        ),
    ):
        dispatch = part[key]["dispatch_ms"]
        lines.append(
            f"    {what}: p50 {f(dispatch['p50'])} ms, p99 {f(dispatch['p99'])} ms "
            f"({dispatch['count']} jobs; end to end p50 {f(part[key]['latency_ms']['p50'])} ms)"
        )
    return lines


def postgres_lines(part: dict[str, Any]) -> list[str]:
    if "skipped" in part:
        return [f"PostgreSQL: skipped ({part['skipped']})", ""]
    submit = part["submit"]
    return [
        "PostgreSQL next to SQLite (gRPC; embedding jobs against the provider that answers at once)",
        *_versus(
            f"Submit: CreateEmbeddingJob ({submit['message_bytes']} B), accept-only servers",
            submit,
            ("SQLite", "PostgreSQL"),
            "req/s",
        ),
        *_versus(
            "End to end: submit, run, GetJob every 10 ms, read the vectors; one server each",
            part["end_to_end"],
            ("SQLite", "PostgreSQL"),
            "jobs/s",
        ),
        *_dispatch_lines(part["dispatch"]),
        *_versus(
            "Replicas on one PostgreSQL database, end to end, clients spread over them",
            part["replicas"],
            ("one replica", "two replicas"),
            "jobs/s",
        ),
        "",
    ]
