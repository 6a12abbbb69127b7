"""`python -m rest_bridge` as a real process: out of file descriptors it logs one line per
interval instead of a traceback per failed accept, and keeps serving once they return; it
refuses to start beyond loopback without --public-url or --allowed-hosts."""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, free_port

FD_LIMIT = 64


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def _http_status(port: int) -> int | None:
    """The status of GET /health, or None if the connection fails or closes unanswered."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        line = await reader.readline()
        return int(line.split()[1]) if line else None
    except OSError:
        return None
    finally:
        writer.close()


@pytest.mark.slow
async def test_out_of_file_descriptors_logs_one_line_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rest_bridge",
            "--http-port",
            str(port),
            "--grpc-target",
            "127.0.0.1:1",  # nothing there: /health answers 503, which is an answer
            "--accept-error-log-interval",
            "3600",  # so that exactly one line is expected, however long the test takes
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=log_file,
            preexec_fn=_low_fd_limit,
        )
    held: list[socket.socket] = []
    try:
        while await _http_status(port) is None:  # up and answering
            await asyncio.sleep(0.05)
        for _ in range(3 * FD_LIMIT):  # the kernel completes these; the bridge cannot take them
            conn = socket.socket()
            conn.setblocking(False)
            try:
                conn.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            held.append(conn)
        while "cannot accept connections" not in log_path.read_text():
            await asyncio.sleep(0.05)
        for conn in held:
            conn.close()
        held.clear()
        while await _http_status(port) != 503:  # serving again once descriptors are free
            await asyncio.sleep(0.05)
    finally:
        for conn in held:
            conn.close()
        proc.terminate()
        await proc.wait()
    text = log_path.read_text()
    assert text.count("cannot accept connections") == 1, text[-3000:]
    assert "socket.accept() out of system resource" not in text
    assert "Traceback" not in text, text[-3000:]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "bridge.example"])
async def test_listening_beyond_loopback_needs_a_public_url_or_allowed_hosts(host: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rest_bridge",
        "--http-host",
        host,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert "--public-url" in last and "--allowed-hosts" in last, err
    assert "Traceback" not in err.decode()
