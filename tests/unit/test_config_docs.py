"""docs/configuration.md is generated from grpc_server/config.py by scripts/gen_config_docs.py:
it must be current and name every setting, with the rule config_checks applies to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grpc_server.config import ServerConfig
from grpc_server.config_checks import RULES, setting_paths

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "configuration.md"


def test_checked_in_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/gen_config_docs.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_setting_has_a_row_with_its_rule() -> None:
    lines = [line for line in REFERENCE.read_text().splitlines() if line.startswith("| `")]
    rows = {line.split("|")[1].strip().strip("`"): line for line in lines}
    for path, _ in setting_paths(ServerConfig):
        assert path in rows, f"{path} is missing from docs/configuration.md"
        for _, want in RULES[path].checks:
            assert want.replace("|", "\\|") in rows[path], f"{path}: rule {want!r} not shown"


def test_field_docstrings_become_descriptions() -> None:
    rows = REFERENCE.read_text()
    assert "| `dispatcher.lease_seconds` |" in rows
    assert "How long a claim holds without renewal; renewed every third of it." in rows
