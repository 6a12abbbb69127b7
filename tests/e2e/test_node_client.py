"""The Node.js client in clients/node/: @grpc/grpc-js and @grpc/proto-loader from npm, the
protos loaded at run time with the include files `scripts/gen_protos.py --include-dir`
writes, against the real server. It submits an embeddings job, waits, and reads the
vectors with ReadJobOutput.

`npm ci` runs once (skipped while clients/node/node_modules matches package-lock.json).
Without node or npm the test is skipped on a developer's machine and fails under CI."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY_A, Stack
from tests.processes import REPO_ROOT
from tests.unavailable import unavailable

NODE_CLIENT = REPO_ROOT / "clients" / "node"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class NodeClient:
    node: str
    include_dir: Path

    async def run(self, stack: Stack, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            self.node,
            str(NODE_CLIENT / "embeddings.js"),
            "--target",
            stack.grpc_target,
            "--include-dir",
            str(self.include_dir),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, stdout.decode(), stderr.decode()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (clients/node needs node and npm)", name)
    return path


def _installed_matches_lock() -> bool:
    """Whether node_modules holds what package-lock.json pins (npm's hidden lockfile agrees)."""
    hidden = NODE_CLIENT / "node_modules" / ".package-lock.json"
    if not hidden.exists():
        return False
    locked: dict[str, Any] = json.loads((NODE_CLIENT / "package-lock.json").read_text())["packages"]
    installed: dict[str, Any] = json.loads(hidden.read_text())["packages"]
    return {k: v for k, v in locked.items() if k} == installed


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    node, npm = _tool("node"), _tool("npm")
    if not _installed_matches_lock():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_CLIENT, check=True
        )
    include_dir = tmp_path_factory.mktemp("include")
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_protos.py"), "--include-dir", str(include_dir)],
        check=True,
        capture_output=True,
    )
    yield NodeClient(node, include_dir)


def _float32(value: float) -> bytes:
    return struct.pack("<f", value)


async def test_node_client_submits_waits_and_reads_the_vectors(stack: Stack, node_client: NodeClient) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew"]
    inputs = [arg for text in texts for arg in ("--input", text)]
    code, stdout, stderr = await node_client.run(stack, "--dimensions", "24", "--key", KEY_A.value, *inputs)
    assert code == 0, stderr
    summary: dict[str, Any] = json.loads(stdout)
    assert summary["status"] == "JOB_STATUS_COMPLETED"
    assert (summary["count"], summary["dimensions"]) == (3, 24)
    assert summary["bytes"] == 3 * 24 * 4
    assert [len(row) for row in summary["vectors"]] == [24, 24, 24]

    # The same vectors, bit for bit, as the REST bridge answers for that job (same key).
    path = f"/v1/async/embeddings/{summary['job_id']}"
    async with stack.http.get(path, headers={"x-bf-vk": KEY_A.value}) as response:
        assert response.status == 200
        job = await response.json()
    rest_rows = [item["embedding"] for item in job["result"]["data"]]
    assert [[_float32(x) for x in row] for row in summary["vectors"]] == [
        [_float32(x) for x in row] for row in rest_rows
    ]
    assert summary["vectors"][0] != summary["vectors"][2]  # different texts, different vectors


async def test_node_client_reports_a_refused_submit(stack: Stack, node_client: NodeClient) -> None:
    code, stdout, stderr = await node_client.run(stack, "--model", "nowhere/model", "--input", "hi")
    assert code == 3 and stdout == ""
    assert "INVALID_ARGUMENT" in stderr and "nowhere" in stderr, stderr
    assert stack.stored_jobs() == 0
