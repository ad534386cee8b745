"""What one sandbox could signal to another: a lock, a watch, the host's name. None gets through.

The worker installs the harness's filter on itself (``seccomp.build_worker_filter``) before it
imports the submission, whatever the backend: so even a plain process (no bubblewrap, the
filter being the only fence) locks nothing another process can see. The locks of a process
outside it stay what they are for it: a lock taken there is not seen, a lock taken here is not
taken.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends import make_sandbox
from harness.sandbox import SANDBOX_HOSTNAME, Limits, SandboxConfig, WorkerSpec
from harness.session import WorkerSession

PROBE = '''
import ctypes, errno, fcntl, socket

HELD = []

def hold_lock(path):
    handle = open(path, "rb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    HELD.append(handle)
    return "held"

def exclusive_lock(path):
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            return errno.errorcode[err.errno]
        return "taken"

def inotify():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    return "ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()]

def hostname():
    return socket.gethostname()
'''


@pytest.fixture
def probe(workspace: Path, request: pytest.FixtureRequest) -> Iterator[WorkerSession]:
    (workspace / "solution.py").write_text(PROBE)
    (workspace / "shared.txt").write_text("a file another process holds a lock on\n")
    (workspace / "shared.txt").chmod(0o644)
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[], limits=Limits())
    config = SandboxConfig(backend="docker") if request.param == "docker" else \
        SandboxConfig(backend="local", isolation=request.param)
    if request.param == "docker":
        request.getfixturevalue("docker")
    elif request.param == "bwrap":
        request.getfixturevalue("bwrap")
    session = WorkerSession(make_sandbox(config), spec)
    yield session
    session.close()


@pytest.mark.parametrize("probe", ["process", "bwrap", "docker"], indirect=True)
def test_a_lock_held_outside_is_not_seen_inside(probe: WorkerSession, workspace: Path) -> None:
    with (workspace / "shared.txt").open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # held by this test process, outside the sandbox
        # Unfiltered, this is EWOULDBLOCK: the lock outside would be seen. Filtered, it "succeeds".
        assert probe.call("exclusive_lock", ["shared.txt"], {}, 240).value == "taken"
    assert probe.call("inotify", [], {}, 60).value == "ENOSYS"


@pytest.mark.parametrize("probe", ["process", "bwrap", "docker"], indirect=True)
def test_a_lock_taken_inside_is_not_taken(probe: WorkerSession, workspace: Path) -> None:
    assert probe.call("hold_lock", ["shared.txt"], {}, 240).value == "held"
    with (workspace / "shared.txt").open("rb") as outside:
        fcntl.flock(outside, fcntl.LOCK_EX | fcntl.LOCK_NB)  # unfiltered: BlockingIOError


@pytest.mark.parametrize("probe", ["bwrap", "docker"], indirect=True)
def test_every_sandbox_has_the_same_neutral_host_name(probe: WorkerSession) -> None:
    assert probe.call("hostname", [], {}, 240).value == SANDBOX_HOSTNAME
