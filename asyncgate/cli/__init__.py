"""asyncgate-cli: submit jobs, wait for them with a live status, fetch their results.

    asyncgate-cli submit image-edit --image in.png --type background_removal \\
        --model local/pillow --wait -o out.png
    asyncgate-cli --grpc 127.0.0.1:50051 submit embeddings --input "a cat" --model local/hashing --wait
    asyncgate-cli jobs list --status failed --json

Exit codes are listed by `asyncgate-cli --help` and in docs/clients.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from asyncgate.cli.output import (
    Progress,
    error_dict,
    error_line,
    job_dict,
    output_paths,
    print_json,
    summary,
)
from asyncgate.cli.parser import build_parser, connection
from asyncgate.client import AsyncClient, AsyncGateError, EmbeddingsResult, Job, Unavailable

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_TIMEOUT = range(6)


class UsageError(Exception):
    """Bad arguments found after parsing (an unreadable file): exit 2."""


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model,
        "fallbacks": args.fallback or None,
        "labels": dict(args.label),
        "idempotency_key": args.idempotency_key,
        "result_ttl_seconds": args.ttl,
        **dict(args.param),
    }


async def _submit(client: AsyncClient, args: argparse.Namespace) -> Job:
    common = _common(args)
    if args.command == "image-edit":
        images = [_read(path) for path in args.image]
        mask = _read(args.mask) if args.mask else None
        return await client.submit_image_edit(
            images, type=args.type, prompt=args.prompt, mask=mask, n=args.n, size=args.size, **common
        )
    if args.command == "image-generation":
        return await client.submit_image_generation(
            args.prompt, n=args.n, size=args.size, quality=args.quality, **common
        )
    if args.command == "image-variation":
        return await client.submit_image_variation(_read(args.image), n=args.n, size=args.size, **common)
    texts: str | list[str] = args.input[0] if len(args.input) == 1 else args.input
    return await client.submit_embeddings(texts, dimensions=args.dimensions, **common)


async def _ended(client: AsyncClient, job: Job, args: argparse.Namespace) -> Job:
    """The job once it ends or the timeout passes: followed live on a terminal, else one wait."""
    live = sys.stdout.isatty() and not args.json
    if not live:
        return await client.wait(job.id, args.timeout)
    with Progress(enabled=True) as progress:
        progress.show(job)
        try:
            async with asyncio.timeout(args.timeout):
                async for state in client.watch(job.id):
                    progress.show(state)
                    job = state
        except TimeoutError:
            job = await client.get(job.id)
    return job


async def _write_outputs(client: AsyncClient, job: Job, output: str) -> list[str]:
    if isinstance(job.result, EmbeddingsResult):
        path = Path(output)
        path.write_text(json.dumps(await client.download_embeddings(job)))
        return [str(path)]
    files = await client.download_images(job)
    written = []
    for path, data in zip(output_paths(output, len(files)), files, strict=True):
        path.write_bytes(data)
        written.append(str(path))
    return written


async def _finish(client: AsyncClient, job: Job, args: argparse.Namespace) -> int:
    """Wait, write the outputs, report; the exit code says how the job ended."""
    job = await _ended(client, job, args)
    written = (
        await _write_outputs(client, job, args.output) if job.status == "completed" and args.output else []
    )
    if args.json:
        print_json({**job_dict(job), "outputs": written})
    else:
        print(summary(job))
        for path in written:
            print(f"wrote {path} ({Path(path).stat().st_size} bytes)")
    if not job.done:
        if not args.json:
            print(
                f"still {job.status} after {args.timeout} s; `jobs wait {job.id}` to wait again",
                file=sys.stderr,
            )
        return EXIT_TIMEOUT
    return EXIT_OK if job.status == "completed" else EXIT_JOB_FAILED


def _show(job: Job, args: argparse.Namespace) -> None:
    if args.json:
        print_json(job_dict(job))
    else:
        print(summary(job))


async def _jobs(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.command == "get":
        _show(await client.get(args.job_id), args)
    elif args.command == "wait":
        return await _finish(client, await client.get(args.job_id), args)
    elif args.command == "watch":
        job = None
        async for job in client.watch(args.job_id):
            _show(job, args)
            sys.stdout.flush()
        assert job is not None, "a watch yields the job at least once"
        return EXIT_OK if job.status == "completed" else EXIT_JOB_FAILED
    elif args.command == "cancel":
        _show(await client.cancel(args.job_id), args)
    elif args.command == "retry":
        _show(await client.retry(args.job_id), args)
    elif args.command == "delete":
        await client.delete(args.job_id)
        print_json({"id": args.job_id, "deleted": True}) if args.json else print(f"deleted job {args.job_id}")
    else:
        listed: list[Job] = []
        async for job in client.iter_jobs(status=args.status, type=args.type, labels=dict(args.label)):
            listed.append(job)
            if len(listed) >= args.limit:
                break
        if args.json:
            print_json([job_dict(job) for job in listed])
        else:
            for job in listed:
                print(summary(job))
    return EXIT_OK


async def run(args: argparse.Namespace) -> int:
    async with AsyncClient(**connection(args)) as client:  # type: ignore[arg-type]
        if args.group == "jobs":
            return await _jobs(client, args)
        job = await _submit(client, args)
        if args.wait or args.output:
            if not args.json and not sys.stdout.isatty():
                print(f"submitted {summary(job)}")
            return await _finish(client, job, args)
        _show(job, args)
        return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = asyncio.run(run(args))
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {error}\n")
    except AsyncGateError as error:
        if args.json:
            print_json(error_dict(error))
        print(error_line(error), file=sys.stderr)
        code = EXIT_UNAVAILABLE if isinstance(error, Unavailable) else EXIT_REFUSED
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
