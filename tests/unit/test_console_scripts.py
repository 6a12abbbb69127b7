"""The console scripts `pip install` puts next to the interpreter run each entry point:
`asyncgate` (server and bridge in one process), `asyncgate-server`, `asyncgate-bridge`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = {
    "asyncgate": ("--grpc-port", "--http-port"),  # both sides' flags
    "asyncgate-server": ("--grpc-port", "--config"),
    "asyncgate-bridge": ("--http-port", "--grpc-target"),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_installed_script_answers_help(name: str) -> None:
    script = Path(sys.executable).parent / name
    assert script.is_file(), f"{script} is not installed: pip install -e . creates it from [project.scripts]"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for flag in (*SCRIPTS[name], "--log-format"):
        assert flag in done.stdout, f"{name} --help does not mention {flag}:\n{done.stdout}"
