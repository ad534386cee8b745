"""A Docker grading that ends badly leaves no container and no judge behind.

Each test runs ``cvgrade grade SUBMISSION -c iou --backend docker`` as a subprocess on
``submissions/sleep_in_a_call.py`` (its calls print a marker and sleep for an hour), waits
until a worker container of that grading has printed the marker (the judge is inside its
first check), and then ends the grading the hard way:

- Ctrl-C (SIGINT) to ``cvgrade``: it stops its judge and exits non-zero; no container and
  no judge remain once it has returned.
- SIGKILL to the judge (a process forked by that ``cvgrade``'s warm judge server, or a child
  running ``grader.judge.runner`` under ``--judge cold``): the grader sees its judge die,
  removes the dead judge's containers itself, and reports an error; no container remains
  once it has returned.
- SIGKILL to ``cvgrade`` and to its judge, the judge stopped (SIGSTOP) first so that it cannot
  notice its grader's end and clean up: nobody is left to clean up, so the containers stay
  (labelled with their owner, a judge no longer running) until ``cvgrade janitor``, or the
  next ``cvgrade grade``, removes them. (SIGKILL to ``cvgrade`` alone: its judge stops by
  itself and removes its containers; ``test_neighbouring_sandboxes.py``.)
- SIGTERM to ``cvgrade`` (what ``timeout``, systemd or a CI runner sends): like Ctrl-C, exit code 143.

Every grading runs with its own ``TMPDIR`` (pytest's ``tmp_path``: too long for a Unix
socket's path, had the channel's socket followed it): the workspace of each of its worker
containers lives there, which tells this grading's containers from those of other gradings
on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.containers import LABEL, docker_client
from tests.conftest import judges_of

pytestmark = pytest.mark.usefixtures("docker")

HERE = Path(__file__).resolve().parent
SLEEPER = HERE / "submissions" / "sleep_in_a_call.py"
SLEEPING = "cvgrade-attack-suite: sleeping in a call"
CVGRADE = Path(sys.executable).parent / "cvgrade"
# Run cvgrade with Ctrl-C at its default action, as a terminal starts it. A suite started in the
# background by a shell without job control (`cmd &` in a script) inherits SIGINT ignored, and so
# would cvgrade: it would rightly keep ignoring Ctrl-C, as background jobs do, and this test hang.
AS_FROM_A_TERMINAL = [sys.executable, "-c",
                      "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                      "os.execv(sys.argv[1], sys.argv[1:])"]


def containers_of(folder: Path) -> list[object]:
    """Worker containers, running or not, with a folder of ``folder`` mounted."""
    found = []
    for container in docker_client().containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        sources = [str(mount.get("Source", "")) for mount in container.attrs.get("Mounts", [])]
        if any(source.startswith(f"{folder}/") for source in sources):
            found.append(container)
    return found


def described(containers: list[object]) -> list[str]:
    return [f"{c.short_id} ({c.status}, {c.labels.get('org.cvgrade.owner')})" for c in containers]  # type: ignore[attr-defined]


def process(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, command line) of a live process, None once it is gone (or a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    parent = re.search(r"^PPid:\s*(\d+)", status, re.MULTILINE)
    state = re.search(r"^State:\s*(\S)", status, re.MULTILINE)
    if state is None or state.group(1) in ("Z", "X"):
        return None
    return (int(parent.group(1)) if parent else 0), state.group(1), cmdline


def judges(*, parent: int | None = None, naming: Path | None = None) -> list[int]:
    """Live judge processes: those ``parent`` started (cold, or forked by its warm judge server), or
    cold ones with ``naming`` (their spec's folder) in their command line."""
    found = set(judges_of(parent)) if parent is not None else set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (seen := process(int(entry.name))):
            _, _, cmdline = seen
            if naming and "grader.judge.runner" in cmdline and str(naming) in cmdline:
                found.add(int(entry.name))
    return sorted(found)


def processes_naming(folder: Path) -> list[str]:
    """Live processes whose command line names ``folder`` (a judge's spec lives there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if (seen := process(int(entry.name))) and str(folder) in seen[2]:
            found.append(f"pid {entry.name}: {seen[2][:200]}")
    return found


def wait_for(what: str, condition: Callable[[], object], timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.25)
    raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def sleeping_in_a_check(folder: Path) -> bool:
    for container in containers_of(folder):
        with contextlib.suppress(Exception):
            if SLEEPING in container.logs().decode(errors="replace"):  # type: ignore[attr-defined]
                return True
    return False


class Grading:
    """``cvgrade grade sleep_in_a_call.py -c iou --backend docker`` in a TMPDIR of its own."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tmp.mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        env["TMPDIR"] = str(tmp)
        self.cli = subprocess.Popen(
            [*AS_FROM_A_TERMINAL, CVGRADE, "grade", SLEEPER, "-c", "iou", "--backend", "docker", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=HERE.parent.parent,
        )
        self.stdout = self.stderr = ""

    def wait_until_inside_a_check(self) -> int:
        """Wait until a worker sleeps in its first call; return the judge's pid."""
        def ready() -> bool:
            if self.cli.poll() is not None:
                self.finish()
                raise AssertionError(f"cvgrade ended early ({self.cli.returncode}): {self.stdout[:1500]}"
                                     f"{self.stderr[-1500:]}")
            return sleeping_in_a_check(self.tmp)

        wait_for("a worker container sleeping in a call", ready, 180)
        found = judges(parent=self.cli.pid)
        assert len(found) == 1, f"expected one judge under cvgrade (pid {self.cli.pid}), found {found}"
        return found[0]

    def finish(self, timeout_s: float = 120) -> int:
        self.stdout, self.stderr = self.cli.communicate(timeout=timeout_s)
        return self.cli.returncode

    def kill(self) -> None:
        if self.cli.poll() is None:
            self.cli.kill()
        self.cli.communicate()


@pytest.fixture
def grading(tmp_path: Path) -> Iterator[Grading]:
    started = Grading(tmp_path / "tmp")
    yield started
    started.kill()
    for judge in judges(parent=started.cli.pid, naming=started.tmp):  # whatever a failed test left
        with contextlib.suppress(ProcessLookupError):
            os.kill(judge, signal.SIGKILL)
    for container in containers_of(started.tmp):
        with contextlib.suppress(Exception):
            container.remove(force=True)  # type: ignore[attr-defined]


def test_ctrl_c_stops_the_judge_and_removes_every_container(grading: Grading) -> None:
    judge = grading.wait_until_inside_a_check()
    assert containers_of(grading.tmp), "the grading runs no container"
    grading.cli.send_signal(signal.SIGINT)
    code = grading.finish()
    assert code == 130, (code, grading.stderr[-2000:])
    assert "interrupted" in grading.stderr
    # Once cvgrade has returned, nothing of its grading is left: no container, no judge.
    assert described(containers_of(grading.tmp)) == []
    assert process(judge) is None, f"the judge (pid {judge}) outlived the interrupted grading"
    assert processes_naming(grading.tmp) == []


def test_a_judge_killed_mid_check_has_its_containers_removed_by_the_grader(grading: Grading) -> None:
    judge = grading.wait_until_inside_a_check()
    os.kill(judge, signal.SIGKILL)
    code = grading.finish()
    assert code == 3, (code, grading.stdout[-2000:], grading.stderr[-2000:])  # the grader's own error
    assert "the judge failed with exit code -9" in grading.stdout
    assert process(judge) is None
    assert described(containers_of(grading.tmp)) == []
    assert processes_naming(grading.tmp) == []


@pytest.mark.parametrize("cleaner", ["cvgrade janitor", "the next cvgrade grade"])
def test_containers_of_a_grader_killed_with_its_judge_are_removed_by_the_janitor(
    grading: Grading, cleaner: str
) -> None:
    judge = grading.wait_until_inside_a_check()
    os.kill(judge, signal.SIGSTOP)  # else it sees its grader die and removes its containers itself
    grading.cli.kill()  # SIGKILL: no clean-up of any kind
    grading.cli.communicate()
    os.kill(judge, signal.SIGKILL)
    wait_for("the killed judge to die", lambda: process(judge) is None, 60)  # a zombie is dead to the janitor too
    left = containers_of(grading.tmp)
    assert left, "nothing was left to clean up: the test shows nothing"
    assert all(c.labels.get("org.cvgrade.owner", "").endswith(f":{judge}") for c in left)  # type: ignore[attr-defined]
    if cleaner == "cvgrade janitor":
        command = [CVGRADE, "janitor"]
    else:  # a refused submission: the janitor runs before grading starts, and the refusal is quick
        command = [CVGRADE, "grade", HERE / "submissions" / "truncated_notebook.ipynb", "-c", "iou",
                   "--backend", "docker"]
    cleaned = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                             cwd=HERE.parent.parent)
    assert cleaned.returncode == (0 if cleaner == "cvgrade janitor" else 2), cleaned.stderr[-2000:]
    said = cleaned.stdout + cleaned.stderr
    assert described(containers_of(grading.tmp)) == [], said
    # Another grader's janitor on this machine may have got there first (any janitor removes the
    # containers of every dead owner on the host); when it did not, ours says what it removed.
    if cleaner == "cvgrade janitor":
        assert re.search(r"removed \d+ container", said), said
        removed_by_us = [c.short_id for c in left if c.short_id in said]  # type: ignore[attr-defined]
        assert removed_by_us in ([], [c.short_id for c in left]), said  # type: ignore[attr-defined]
    else:
        assert "not a valid Jupyter notebook" in said


def test_sigterm_stops_the_judge_and_removes_every_container(grading: Grading) -> None:
    judge = grading.wait_until_inside_a_check()
    assert containers_of(grading.tmp), "the grading runs no container"
    grading.cli.send_signal(signal.SIGTERM)
    code = grading.finish()
    assert code == 143, (code, grading.stderr[-2000:])  # 128 + SIGTERM, as a shell reports it
    assert "terminated: stopping the gradings in progress" in grading.stderr
    assert process(judge) is None, f"the judge (pid {judge}) outlived the terminated grading"
    assert described(containers_of(grading.tmp)) == []
    assert processes_naming(grading.tmp) == []
