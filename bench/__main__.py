"""`python -m bench [--quick] [--duration S] [--concurrency N] [--only rest,grpc,...] [--database-url U]
[--inflight-jobs N] [--inflight-latency S] [--waiters-clients N]`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.pg import ADMIN_URL, DEFAULT_ADMIN_URL
from bench.report import format_report, write_json
from bench.runner import PARTS, Settings
from bench.waiters import WaiterSettings

QUICK_WAITERS = 2000
"""Clients per mode of the waiters part under --quick."""


def settings_from_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="asyncgate submit throughput, upload memory and end-to-end jobs, against baselines",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s per side, 2 rounds, shorter warm-up (about 90 s)"
    )
    parser.add_argument("--duration", type=float, help="measured seconds per side (default 10, --quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per side (default 1, --quick 0.5)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client workers (default 16)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per comparison (default 4, --quick 2)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--database-url",
        default=ADMIN_URL,
        help="PostgreSQL maintenance database the postgres part creates (and drops) bench_<hex> databases "
        f"from (default: $ASYNCGATE_BENCH_DATABASE_URL, else {DEFAULT_ADMIN_URL})",
    )
    parser.add_argument(
        "--inflight-jobs",
        type=int,
        default=2000,
        help="jobs the inflight part submits at once, each answered by the provider after 10 s "
        "(default 2000; the goal is 10000 on one replica)",
    )
    parser.add_argument(
        "--inflight-latency",
        type=float,
        default=10.0,
        help="seconds the inflight part's provider takes per call (default 10; longer than the submit "
        "time puts every job in flight at once)",
    )
    parser.add_argument(
        "--waiters-clients",
        type=int,
        help="clients the waiters part runs per mode, each waiting on a job of its own "
        f"(default {WaiterSettings.clients:,}, --quick {QUICK_WAITERS:,})",
    )
    args = parser.parse_args(argv)
    parts = tuple(p for p in args.only.split(",") if p)
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    for name in ("concurrency", "rounds", "duration", "inflight_jobs", "inflight_latency", "waiters_clients"):
        if (value := getattr(args, name)) is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return Settings(
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0),
        concurrency=args.concurrency,
        rounds=args.rounds or (2 if args.quick else 4),
        parts=parts,
        database_url=args.database_url,
        inflight_jobs=args.inflight_jobs,
        inflight_latency=args.inflight_latency,
        waiters=WaiterSettings(
            clients=args.waiters_clients or (QUICK_WAITERS if args.quick else WaiterSettings.clients)
        ),
    )


def main() -> None:
    from bench.runner import run_all  # imported late: --help stays instant

    settings = settings_from_args()
    report = asyncio.run(run_all(settings, progress=lambda text: print(text, file=sys.stderr, flush=True)))
    print(format_report(report))
    print(f"\nJSON: {write_json(report)}")


if __name__ == "__main__":
    main()
