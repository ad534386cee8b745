"""A real Redis on loopback and real ``cvgrade worker`` processes, for the fleet's tests.

Redis comes from Debian's ``redis-server`` (``.ci/run`` installs it). Each test
gets its own server on a free port, persisting every write to an append-only
file in the test's folder, so that it can be restarted mid-run without losing
a message. Without ``redis-server`` the tests skip, and under ``CI=true`` fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CVGRADE = Path(sys.executable).parent / "cvgrade"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Redis:
    """One redis-server; ``restart`` stops it (saving everything) and starts it again on the same port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is needed (Debian: apt-get install redis-server)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"Redis is required under CI=true: {message}")
            pytest.skip(message)
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"],
            stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # redis flushes its append-only file and exits
            self.process.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Worker:
    """A ``cvgrade worker`` process grading with the local sandbox."""

    def __init__(self, broker: str, name: str, challenges_dir: Path, log: Path, *, visibility_timeout_s: float) -> None:
        self.name = name
        self.log = log
        env = dict(os.environ, CVGRADE_CHALLENGES_DIR=str(challenges_dir))
        self.process = subprocess.Popen(
            [str(CVGRADE), "worker", "--broker", broker, "--name", name, "--backend", "local",
             "--concurrency", "1", "--visibility-timeout", str(visibility_timeout_s)],
            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (its judges and their sandboxes)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
