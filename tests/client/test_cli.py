"""asyncgate-cli run as a user runs it: a subprocess against a real `python -m asyncgate`,
judged by its exit codes, its output and the files it writes."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.images import subject_on_background
from tests.processes import AsyncGateProcess

KEY = "sk-bf-cli-secret"
CONFIG = f'[[virtual_keys]]\nid = "vk-cli"\nvalue = "{KEY}"\n'
ACCEPT_ONLY = CONFIG + "[dispatcher]\nconcurrency = 0\n"


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def cli(*args: str, cwd: Path, key: str | None = KEY, program: tuple[str, ...] = ()) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCGATE_")}
    if key is not None:
        env["ASYNCGATE_KEY"] = key
    command = program or (sys.executable, "-m", "asyncgate.cli")
    process = await asyncio.create_subprocess_exec(
        *command, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


@pytest.mark.slow
async def test_cli_submits_waits_and_writes_results(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(subject_on_background(64))
    async with AsyncGateProcess(tmp_path, CONFIG, tmp_path / "data") as service:
        url, grpc = ("--url", service.base_url), ("--grpc", service.grpc_target)
        script = Path(sys.executable).with_name("asyncgate-cli")
        edit = await cli(
            *url,
            "submit", "image-edit", "--image", "in.png", "--type", "background_removal",
            "--model", "local/pillow", "--wait", "-o", "out.png",
            cwd=tmp_path, program=(str(script),),
        )  # fmt: skip
        assert edit.code == 0, edit.err
        assert "completed" in edit.out and "wrote out.png" in edit.out
        with Image.open(tmp_path / "out.png") as image:
            assert image.mode == "RGBA" and image.getchannel("A").getpixel((0, 0)) == 0

        embed = await cli(
            *grpc, "submit", "embeddings", "--input", "a cat", "--input", "a dog", "--dimensions", "8",
            "--model", "local/hashing", "--wait", "--json", "-o", "vectors.json", cwd=tmp_path,
        )  # fmt: skip
        assert embed.code == 0, embed.err
        job = json.loads(embed.out)
        vectors = json.loads((tmp_path / "vectors.json").read_text())
        assert job["status"] == "completed" and job["outputs"] == ["vectors.json"]
        assert [row["embedding"] for row in job["result"]["data"]] == vectors
        assert [len(row) for row in vectors] == [8, 8]

        # The same job read back over REST, and listed with the key from the environment.
        got = await cli(*url, "jobs", "get", job["id"], "--json", cwd=tmp_path)
        assert got.code == 0 and json.loads(got.out)["result"]["data"][1]["embedding"] == vectors[1]
        listed = await cli("jobs", "list", "--type", "embedding", *url, cwd=tmp_path)
        assert listed.code == 0 and listed.out.count("\n") == 1 and job["id"] in listed.out

        failed = await cli(
            *url, "submit", "image-edit", "--image", "in.png", "--prompt", "hi", "--model", "local/pillow",
            "--wait", cwd=tmp_path,
        )  # fmt: skip
        assert failed.code == 1 and "failed" in failed.out and "(param: type)" in failed.out

        for transport in (url, grpc):
            refused = await cli(
                *transport, "submit", "image-generation", "--prompt", "x", "--model", "local/placeholder",
                "--n", "11", "--json", cwd=tmp_path,
            )  # fmt: skip
            assert refused.code == 3, refused.err
            assert json.loads(refused.out)["error"]["param"] == "n" and "InvalidRequest" in refused.err

        unknown = await cli(*grpc, "jobs", "get", "00000000-0000-4000-8000-000000000000", cwd=tmp_path)
        assert unknown.code == 3 and "job_not_found" in unknown.err
        missing = await cli(
            *url, "submit", "image-variation", "--image", "nope.png", "--model", "local/pillow", cwd=tmp_path
        )
        assert missing.code == 2 and "cannot read nope.png" in missing.err
        assert (await cli("jobs", "wait", cwd=tmp_path)).code == 2

        # On a terminal the wait shows a live status line (rich), and ends the same way.
        main, child = pty.openpty()
        env = {**os.environ, "ASYNCGATE_KEY": KEY, "TERM": "xterm"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "asyncgate.cli", *url,
            "submit", "image-generation", "--prompt", "a fox", "--model", "local/placeholder",
            "--size", "256x256", "--param", "seed=7", "--wait", "-o", "tty.png",  # seed: a JSON integer
            cwd=tmp_path, env=env, stdout=child, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        os.close(child)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        screen = os.read(main, 65536).decode(errors="replace")
        os.close(main)
        assert "wrote tty.png" in screen
        with Image.open(tmp_path / "tty.png") as image:
            assert image.size == (256, 256)

    down = await cli(*url, "jobs", "get", job["id"], cwd=tmp_path)
    assert down.code == 4 and "Unavailable" in down.err


@pytest.mark.slow
async def test_cli_steers_a_pending_job(tmp_path: Path) -> None:
    async with AsyncGateProcess(tmp_path, ACCEPT_ONLY, tmp_path / "data") as service:
        url = ("--url", service.base_url)
        submitted = await cli(
            *url,
            "submit",
            "embeddings",
            "--input",
            "a cat",
            "--model",
            "local/hashing",
            "--json",
            cwd=tmp_path,
        )
        assert submitted.code == 0, submitted.err
        job_id = json.loads(submitted.out)["id"]

        timed_out = await cli(*url, "jobs", "wait", job_id, "--timeout", "1", cwd=tmp_path)
        assert timed_out.code == 5 and "pending" in timed_out.out and "still pending" in timed_out.err

        env = {**os.environ, "ASYNCGATE_KEY": KEY}
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "asyncgate.cli", "--grpc", service.grpc_target,
            "jobs", "watch", job_id, "--json", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert watcher.stdout is not None
        first = json.loads(await asyncio.wait_for(watcher.stdout.readline(), 30))
        assert first["status"] == "pending"
        cancelled = await cli(*url, "jobs", "cancel", job_id, cwd=tmp_path)
        assert cancelled.code == 0 and "cancelled" in cancelled.out
        rest, _ = await asyncio.wait_for(watcher.communicate(), 30)
        assert [json.loads(line)["status"] for line in rest.decode().splitlines()] == ["cancelled"]
        assert watcher.returncode == 1

        again = await cli(*url, "jobs", "cancel", job_id, cwd=tmp_path)
        assert again.code == 3 and "job_finished" in again.err
        retried = await cli(*url, "jobs", "retry", job_id, cwd=tmp_path)
        assert retried.code == 0 and "pending" in retried.out
        assert (await cli(*url, "jobs", "delete", job_id, cwd=tmp_path)).code == 0
        gone = await cli(*url, "jobs", "get", job_id, cwd=tmp_path)
        assert gone.code == 3 and "NotFound" in gone.err
