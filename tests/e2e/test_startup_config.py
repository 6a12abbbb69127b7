"""A bad configuration stops `python -m grpc_server` and `python -m asyncgate` at start:
exit status 2 and one line on stderr naming the setting, no traceback. Real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.pg import fresh_database
from tests.processes import REPO_ROOT, GrpcServerProcess, free_port

pytestmark = pytest.mark.slow

COMMANDS = ["grpc_server", "asyncgate"]
HANG_GUARD_SECONDS = 60
"""Only against a process that never exits (the failure this file looks for): not a measure."""


def run(
    module: str, config: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config_path = tmp_path / "asyncgate.toml"
    config_path.write_text(config)
    args = [
        "--config",
        str(config_path),
        "--data-dir",
        str(tmp_path / "data"),
        "--grpc-port",
        str(free_port()),
    ]
    if module == "asyncgate":
        args += ["--http-port", str(free_port())]
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", module, *args, *extra],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {}), "PYTHONPATH": python_path},
        timeout=HANG_GUARD_SECONDS,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], line: str) -> None:
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, output
    assert result.stderr.splitlines() == [f"config error: {line}"], output
    assert "Traceback" not in result.stdout + result.stderr, output


@pytest.mark.parametrize("module", COMMANDS)
@pytest.mark.parametrize(
    ("config", "line"),
    [
        ("[dispatcher]\nlease_seconds = 0\n", "dispatcher.lease_seconds: must be > 0, got 0"),
        (
            '[[virtual_keys]]\nid = "a"\nvalue = "sk-bf-a"\nallowed_model = ["local/*"]\n',
            "virtual_keys[0]: unknown setting(s) allowed_model (did you mean allowed_models?)",
        ),
        (
            'database_url_env = "ASYNCGATE_TEST_NOT_SET"\n',
            "database_url_env: environment variable ASYNCGATE_TEST_NOT_SET is not set",
        ),
        ("max_images = 1.5\n", "max_images: must be an integer, got float 1.5"),
        (  # found while the server starts (building the providers), after it opened its store
            '[providers.x]\nkind = "nope"\n',
            "providers.x: unknown kind 'nope' (expected one of local, openai-compatible, openai, azure,"
            " gemini, stability)",
        ),
    ],
    ids=["zero-lease", "virtual-key-typo", "dsn-variable-unset", "float-for-int", "unknown-kind-at-start"],
)
def test_a_bad_setting_stops_the_process_with_one_line(
    module: str, config: str, line: str, tmp_path: Path
) -> None:
    assert_refused(run(module, config, tmp_path), line)


@pytest.mark.parametrize("module", COMMANDS)
def test_a_zero_byte_url_signing_key_left_behind_stops_the_process(module: str, tmp_path: Path) -> None:
    key = tmp_path / "data" / "url-signing.key"
    key.parent.mkdir()
    key.touch()
    result = run(module, "", tmp_path)
    assert_refused(
        result,
        f"{key}: URL-signing key is 0 bytes, at least 32 needed"
        " (delete the file to have a new one generated; URLs already given out stop working)",
    )


def test_a_short_url_signing_secret_stops_the_process(tmp_path: Path) -> None:
    result = run("grpc_server", "url_signing_secret_env = 'S'\n", tmp_path, env={"S": "too-short"})
    assert_refused(result, "url_signing_secret: must be at least 32 bytes long, got 9 bytes")


def test_a_command_line_value_out_of_range_stops_the_process(tmp_path: Path) -> None:
    result = run("grpc_server", "", tmp_path, "--grpc-port", "70000")  # the last --grpc-port wins
    assert_refused(result, "port: must be <= 65535, got 70000")


def test_a_missing_or_unparsable_file_stops_the_process(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = run("grpc_server", "", tmp_path, "--config", str(missing))
    assert_refused(result, f"{missing}: cannot read: No such file or directory")
    result = run("asyncgate", "port = \n", tmp_path)
    assert_refused(
        result, f"{tmp_path / 'asyncgate.toml'}: not valid TOML: Invalid value (at line 1, column 8)"
    )


async def test_asyncgate_database_url_from_the_environment_puts_jobs_in_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fresh_database() as dsn:
        monkeypatch.setenv("ASYNCGATE_DATABASE_URL", dsn)
        data_dir = tmp_path / "data"
        async with GrpcServerProcess(tmp_path, {}, data_dir):
            conn = await asyncpg.connect(dsn)
            try:
                tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
            finally:
                await conn.close()
        assert {"jobs", "schema_migrations"} <= tables
        assert not (data_dir / "asyncgate.sqlite3").exists()
