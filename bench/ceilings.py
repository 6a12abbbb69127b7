"""The ceilings of the submit ratios: the most each can be whatever asyncgate's own code does.

The storing handler (bench.baselines grpc --store) is the bare grpc.aio handler plus the one
thing a durable accept cannot skip: the job written with asyncgate's SQLite store, its image
where the server's default puts it (a directory beside the database). Measured in one run:

- gRPC: the storing handler against the bare handler (the ceiling of the gRPC ratio), and
  the old storing handler (the image in the SQLite file) against it too, and the two
  storing handlers against each other: what moving blobs out bought;
- REST: asyncgate's bridge in front of the storing handler, and in front of the bare one
  (a server doing nothing), against the bare aiohttp handler;
- asyncgate itself against its ceiling, side by side: the server against the storing
  handler (gRPC), bridge + server against the bridge in front of the storing handler (REST).
  The goal: 0.9 of the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import procs
from bench.compare import Side
from bench.load import GrpcTarget, RestTarget
from bench.payloads import create_request, multipart_form, small_png
from bench.stats import comparison
from bench.tables import comparison_lines

if TYPE_CHECKING:
    from bench.runner import Settings

CEILING_GOAL = 0.9
"""asyncgate's submit against the storing handler (the issue's goal)."""


def start_storing(
    stack: contextlib.ExitStack, workdir: Path, name: str, blobs: str = "directory"
) -> tuple[procs.Process, str]:
    """The storing handler, its store under a directory of its own; `blobs`: see bench.baselines."""
    port = procs.free_port()
    args = ["-m", "bench.baselines", "grpc", "--port", str(port), "--store", str(workdir / f"{name}-data")]
    return procs.start(stack, name, [*args, "--blobs", blobs], workdir), f"127.0.0.1:{port}"


async def ceilings_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    request, body = create_request(small_png()), multipart_form(small_png())
    with contextlib.ExitStack() as stack:
        bare, bare_target = procs.start_grpc_baseline(stack, workdir)
        storing, storing_target = start_storing(stack, workdir, "grpc-storing")
        in_sqlite, in_sqlite_target = start_storing(stack, workdir, "grpc-storing-in-sqlite", "database")
        server, server_target = procs.start_server(stack, workdir, "ceilings-grpc-server")
        rest_baseline, rest_baseline_url = procs.start_rest_baseline(stack, workdir)
        await asyncio.gather(
            *(
                procs.wait_grpc_ready(process, target)
                for process, target in (
                    (bare, bare_target),
                    (storing, storing_target),
                    (in_sqlite, in_sqlite_target),
                    (server, server_target),
                )
            )
        )
        on_bare, on_bare_url = procs.start_bridge(stack, workdir, bare_target, "bridge-on-bare")
        on_storing, on_storing_url = procs.start_bridge(stack, workdir, storing_target, "bridge-on-storing")
        bridge, bridge_url = procs.start_bridge(stack, workdir, server_target, "ceilings-rest-bridge")
        await asyncio.gather(
            *(
                procs.wait_http_ready(process, url)
                for process, url in (
                    (on_bare, on_bare_url),
                    (on_storing, on_storing_url),
                    (bridge, bridge_url),
                    (rest_baseline, rest_baseline_url),
                )
            )
        )
        async with (
            GrpcTarget(bare_target, request, settings.concurrency) as bare_grpc,
            GrpcTarget(storing_target, request, settings.concurrency) as storing_grpc,
            GrpcTarget(in_sqlite_target, request, settings.concurrency) as in_sqlite_grpc,
            GrpcTarget(server_target, request, settings.concurrency) as asyncgate_grpc,
            RestTarget(rest_baseline_url, body, settings.concurrency) as bare_rest,
            RestTarget(on_storing_url, body, settings.concurrency) as bridged_storing,
            RestTarget(on_bare_url, body, settings.concurrency) as bridged_bare,
            RestTarget(bridge_url, body, settings.concurrency) as asyncgate_rest,
        ):
            grpc_bare = Side("baseline", bare_grpc.run, {"grpc-baseline": bare.pid})
            rest_bare = Side("baseline", bare_rest.run, {"rest-baseline": rest_baseline.pid})
            storing_side = Side("storing", storing_grpc.run, {"grpc-storing": storing.pid})
            in_sqlite_side = Side("storing", in_sqlite_grpc.run, {"grpc-storing": in_sqlite.pid})
            bridge_on_storing = Side(
                "bridge", bridged_storing.run, {"rest-bridge": on_storing.pid, "grpc-storing": storing.pid}
            )
            bridge_on_bare = Side(
                "bridge", bridged_bare.run, {"rest-bridge": on_bare.pid, "grpc-baseline": bare.pid}
            )
            grpc_real = Side("asyncgate", asyncgate_grpc.run, {"grpc-server": server.pid})
            rest_real = Side(
                "asyncgate", asyncgate_rest.run, {"rest-bridge": bridge.pid, "grpc-server": server.pid}
            )
            return {
                "grpc_storing": comparison(*await settings.compare(grpc_bare, storing_side)),
                "grpc_storing_in_sqlite": comparison(*await settings.compare(grpc_bare, in_sqlite_side)),
                "grpc_directory_vs_sqlite": comparison(
                    *await settings.compare(replace(in_sqlite_side, name="in-sqlite"), storing_side)
                ),
                "rest_bridge_storing": comparison(*await settings.compare(rest_bare, bridge_on_storing)),
                "rest_bridge_bare": comparison(*await settings.compare(rest_bare, bridge_on_bare)),
                "grpc_to_ceiling": comparison(*await settings.compare(storing_side, grpc_real)),
                "rest_to_ceiling": comparison(*await settings.compare(bridge_on_storing, rest_real)),
            }


_LINES = (
    (
        "grpc_storing",
        "gRPC: the bare handler that also stores each job (row in SQLite, image in a directory beside it)",
        "bare grpc.aio",
        "storing handler",
    ),
    (
        "grpc_storing_in_sqlite",
        "gRPC: the same, its image in the SQLite file (the store before blobs moved out)",
        "bare grpc.aio",
        "storing in SQLite",
    ),
    (
        "grpc_directory_vs_sqlite",
        "gRPC: the storing handler against the same with its image in the SQLite file, side by side",
        "storing in SQLite",
        "storing handler",
    ),
    (
        "rest_bridge_storing",
        "REST: asyncgate's bridge in front of the storing handler",
        "bare aiohttp",
        "bridge + storing",
    ),
    (
        "rest_bridge_bare",
        "REST: asyncgate's bridge in front of the bare grpc.aio handler (no server work at all)",
        "bare aiohttp",
        "bridge + bare gRPC",
    ),
    (
        "grpc_to_ceiling",
        "gRPC: asyncgate's server against the storing handler (its ceiling)",
        "storing handler",
        "asyncgate",
    ),
    (
        "rest_to_ceiling",
        "REST: asyncgate's bridge + server against the bridge in front of the storing handler",
        "bridge + storing",
        "asyncgate",
    ),
)


def ceiling_lines(ceilings: dict[str, Any]) -> list[str]:
    lines = ["Ceilings: the most each submit ratio above can be, whatever asyncgate's own code does"]
    for key, title, baseline, subject in _LINES:
        if key in ceilings:  # results written before a part was added lack it
            lines += comparison_lines(title, ceilings[key], baseline, subject)
    return lines


def ceiling_goals(ceilings: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, label in (("grpc_to_ceiling", "gRPC"), ("rest_to_ceiling", "REST")):
        if key in ceilings:
            value = ceilings[key]["ratio"]["throughput"]
            text = f"{label} submit >= {CEILING_GOAL} x its storing ceiling"
            found.append({"goal": text, "value": value, "met": value >= CEILING_GOAL})
    return found
