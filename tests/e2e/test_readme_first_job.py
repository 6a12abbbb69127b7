"""The README's first job, run as a new user would: its bash block, against `python -m asyncgate`
started with no configuration at all, gives a result image with the background removed.

The block is taken from the README itself (the one after the `first-job` marker); only the
bridge's address (the README's 127.0.0.1:8080, here a free port) and the interpreter path
(the README's .venv/bin/python, here this test's) are put in."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.processes import AsyncGateProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def first_job_block() -> str:
    text = README.read_text()
    marker = text.index("<!-- first-job:")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.DOTALL)
    assert block is not None, "no bash block after the first-job marker"
    return block.group(1)


@pytest.mark.slow
async def test_the_readme_first_job_works_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed by the README's first job")
    async with AsyncGateProcess(tmp_path, "", tmp_path / "data") as service:
        script = (
            first_job_block()
            .replace("http://127.0.0.1:8080", service.base_url)
            .replace(".venv/bin/python", sys.executable)
        )
        work = tmp_path / "user"
        work.mkdir()
        shell = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            cwd=work,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(shell.communicate(), 60)
        assert shell.returncode == 0, output.decode()
    with Image.open(work / "out.png") as result:
        assert result.size == (256, 256) and result.mode == "RGBA"
        alpha = result.getchannel("A")
        assert alpha.getpixel((5, 5)) == 0  # the blue background is gone
        assert alpha.getpixel((128, 128)) == 255  # the red disc is kept
        red, _, blue, _ = result.getpixel((128, 128))  # type: ignore[misc]
        assert red > 200 and blue < 80
