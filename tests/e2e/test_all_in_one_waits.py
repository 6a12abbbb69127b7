"""`python -m asyncgate`: one process, one setting for waits. The bridge honours a
`Prefer: wait` as long as the configuration's `max_wait_seconds` (never less than its own
default of 60), unless --max-wait says otherwise. Real processes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest

from tests.processes import AsyncGateProcess

pytestmark = pytest.mark.slow

EMBEDDINGS = "/v1/async/embeddings"


class WithFlags(AsyncGateProcess):
    def __init__(self, tmp_path: Path, config: dict[str, float], *flags: str) -> None:
        super().__init__(tmp_path, config, tmp_path / "data")
        self.flags = flags

    def args(self) -> Sequence[str]:
        return [*super().args(), *self.flags]


async def wait_applied(proc: AsyncGateProcess, asked: int) -> str:
    """Submit an embedding and ask for it with `Prefer: wait=<asked>`: the wait the bridge applied."""
    async with aiohttp.ClientSession(proc.base_url) as http:
        body = {"model": "local/hashing", "input": "hello", "dimensions": 8}
        async with http.post(EMBEDDINGS, json=body) as accepted:
            assert accepted.status == 202, await accepted.text()
            job_id = (await accepted.json())["id"]
        async with http.get(f"{EMBEDDINGS}/{job_id}", headers={"Prefer": f"wait={asked}"}) as answer:
            assert answer.status == 200, await answer.text()
            return answer.headers["Preference-Applied"]


@pytest.mark.parametrize(
    ("config", "flags", "applied"),
    [
        ({}, (), "wait=60"),  # both defaults
        ({"max_wait_seconds": 150}, (), "wait=150"),  # the configuration raises the bridge's too
        ({"max_wait_seconds": 10}, (), "wait=60"),  # never below the bridge's default
        ({"max_wait_seconds": 150}, ("--max-wait", "30"), "wait=30"),  # the flag wins
    ],
)
async def test_the_bridge_waits_as_long_as_the_configuration_says(
    tmp_path: Path, config: dict[str, float], flags: tuple[str, ...], applied: str
) -> None:
    async with WithFlags(tmp_path, config, *flags) as proc:
        assert await wait_applied(proc, 200) == applied
