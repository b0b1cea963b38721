"""`tsunagu serve --workers N`: each worker accepts on a listening socket of its own."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.core.serving import OwnListeners

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balances connections on Linux")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening_sockets(port: int) -> int:
    wanted = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == wanted and row.split()[3] == "0A")


def test_each_worker_unpickles_a_listening_socket_of_its_own() -> None:
    port = free_port()
    # What uvicorn's supervisor does for each worker it starts: pickle the socket list across.
    pickled = pickle.dumps(OwnListeners("127.0.0.1", port))
    first, second = (pickle.loads(pickled)[0] for _ in range(2))  # noqa: S301 - our own bytes
    with first, second:
        assert first.fileno() != second.fileno()
        for listener in (first, second):
            assert listener.getsockname() == ("127.0.0.1", port)
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            listener.listen()
        assert listening_sockets(port) == 2
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass


def _serve(database_url: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env={**os.environ, "TSUNAGU_DATABASE_URL": database_url, "TSUNAGU_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_with_two_workers_listens_twice_and_stops_cleanly(database_url: str) -> None:
    port = free_port()
    server = _serve(database_url, port)
    try:
        deadline = time.monotonic() + 180  # three processes import the whole app: slow on a busy machine
        while listening_sockets(port) < 2:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the two workers never listened"
            time.sleep(0.2)
        for _ in range(8):  # new connections, each to whichever worker the kernel picks
            assert (
                httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"connection": "close"}).status_code
                == 200
            )
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert listening_sockets(port) == 0


def test_serve_on_an_address_in_use_is_one_clear_line(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = _serve(database_url, port)
        _, stderr = server.communicate(timeout=120)
    assert server.returncode == 1
    assert "Traceback" not in stderr
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
