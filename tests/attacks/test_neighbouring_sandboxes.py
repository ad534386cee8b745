"""Two gradings on one machine (ATTACKS.md, "Signals between concurrent sandboxes"; issue 13, F7).

- ``submissions/signal_a_neighbour.py``, graded twice at the same time on a copy of ``iou`` that
  ships an assets folder (as ``finetune`` and ``latency`` do), takes every lock it can on every
  file both sandboxes see (the runtime, device nodes, the assets) and watches for the other's,
  and tries inotify, fanotify and ``F_NOTIFY``. A fair grader shows each sandbox the same neutral
  host name and lets nothing one does to a shared file reach the other.
- ``cvgrade grade`` killed with SIGKILL in the middle of a check: its judge does not grade on for
  nobody (it stops, and its workers with it, within seconds), and what the grader could not
  remove (the workspace, the judge's folder) is private to the grading user and removed by
  ``cvgrade janitor``.

Both run under each production backend.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from grader.challenge import Challenge, load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult
from harness.containers import LABEL, docker_client
from tests.conftest import judges_of

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUBMISSIONS = HERE / "submissions"
CVGRADE = Path(sys.executable).parent / "cvgrade"
REPORT = re.compile(r"hostname=(\S+) appeared=(\S+) host=\S+ locked=(\d+) inotify=(.+?) fanotify=(.+?) "
                    r"dnotify=(.+?) proc_locks=")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iou_with_assets(tmp_path_factory: pytest.TempPathFactory) -> Challenge:
    """``iou`` with an assets folder: a file every worker of every grading of it sees."""
    target = tmp_path_factory.mktemp("challenges") / "iou"
    shutil.copytree(REPO / "challenges" / "iou", target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "assets").mkdir()
    (target / "assets" / "shared.txt").write_text("the same file for every worker\n")
    toml = target / "challenge.toml"  # 3 minutes to import: a busy shared machine takes more than one
    text = toml.read_text().replace("[limits]\n", "[limits]\nsetup_timeout_s = 180\n", 1)
    # Calls that take long on purpose (the probe's first watches for 10 s; the sleeper's blocks) get a
    # per-call limit of their own (and a version of their own, so that no per-call limit calibrated
    # for the real iou applies), or the first would be taken for hung and not called again.
    text = re.sub(r'(?m)^version = "[^"]+"$', 'version = "99.0.0"', text)
    text = re.sub(r"(?m)^call_timeout_s = \d+", "call_timeout_s = 120", text)
    toml.write_text(text + '\n[assets]\nfolder = "assets"\n')
    return load_challenge(target)


def grade_twice_at_once(submission: Path, challenge: Challenge, backend: str) -> list[GradeResult]:
    results: list[GradeResult] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(grade_submission(submission, challenge, GradeOptions(backend=backend)))  # type: ignore[arg-type]
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_two_sandboxes_at_once_share_no_host_name_lock_or_watch(iou_with_assets: Challenge, backend: str) -> None:
    results = grade_twice_at_once(SUBMISSIONS / "signal_a_neighbour.py", iou_with_assets, backend)
    for result in results:
        assert (result.status, result.error) == ("graded", None), result.error
        for test in result.tests:
            match = REPORT.search(test.output)
            assert match, f"{test.name}: no report in {test.output[:300]!r}"
            hostname, appeared, _, inotify, fanotify, dnotify = match.groups()
            assert hostname == "sandbox", f"{test.name}: the sandbox is called {hostname}"
            assert appeared == "none", f"{test.name}: the neighbour's locks showed on {appeared}"
            assert inotify.startswith("denied") and fanotify.startswith("denied") and dnotify.startswith("denied")
        # The probe did lock: the locks "succeeded" and locked nothing anyone else can see.
        first = REPORT.search(next(t.output for t in result.tests if t.name == "box_iou_edge_cases"))
        assert first is not None and int(first.group(3)) > 0


# ----------------------------------------------------------------------------- a grader killed with SIGKILL


def live(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def processes_naming(folder: Path) -> list[str]:
    """Live processes whose command line or mounts name ``folder`` (every worker of the grading does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or not live(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            mounts = (entry / "mountinfo").read_text(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline or str(folder) in mounts:
            found.append(f"pid {entry.name}: {cmdline[:160]}")
    return found


def containers_naming(folder: Path) -> list[str]:
    found = []
    for container in docker_client().containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        sources = [str(mount.get("Source", "")) for mount in container.attrs.get("Mounts", [])]
        if any(source.startswith(f"{folder}/") for source in sources):
            found.append(f"{container.short_id} ({container.status})")
    return found


def wait_for(what: str, condition: Callable[[], object], timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.25)
    raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def judge_of(cli: subprocess.Popen[str]) -> int | None:
    found = judges_of(cli.pid)
    return found[0] if found else None


def test_a_grader_killed_with_sigkill_takes_its_judge_along_and_the_janitor_removes_its_folders(
    tmp_path: Path, backend: str, iou_with_assets: Challenge
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["TMPDIR"] = str(tmp)
    # The sleeper blocks an hour in its first call; under iou's own per-call limit (seconds) the
    # grading would end before the kill, so the copy with a 120 s per-call limit is graded.
    cli = subprocess.Popen(
        [CVGRADE, "grade", SUBMISSIONS / "sleep_in_a_call.py", "-c", "iou", "--backend", backend, "--json",
         "--challenges-dir", str(iou_with_assets.root.parent)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
    )
    judge = None
    try:
        judge = wait_for("the judge", lambda: judge_of(cli), 120)
        # Its candidate's worker runs (and sleeps in a call): bwrap processes or a container, naming our folder.
        workers = (lambda: containers_naming(tmp)) if backend == "docker" else (lambda: processes_naming(tmp))
        wait_for("the grading's workers", lambda: len(workers()) >= 2, 180)
        time.sleep(2)
        cli.kill()  # SIGKILL: the grader cleans up nothing
        cli.wait()
        assert isinstance(judge, int)
        wait_for("the judge to stop by itself", lambda: not live(judge), 30)
        wait_for("the workers to be gone", lambda: not processes_naming(tmp) and not
                 (backend == "docker" and containers_naming(tmp)), 30)

        root = tmp / f"cvgrade-{os.getuid()}"
        mode = root.stat()
        assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()
        left = sorted(entry.name.split("-")[0] for entry in root.iterdir())
        assert left == ["judge", "ws", "ws"], left  # the grader's: the judge's folder, two workspaces
        cleaned = subprocess.run([CVGRADE, "janitor"], capture_output=True, text=True, env=env, timeout=120,
                                 check=False, cwd=REPO)
        assert cleaned.returncode == 0, cleaned.stderr[-2000:]
        assert "removed 3 folder(s)" in cleaned.stdout, cleaned.stdout
        assert list(root.iterdir()) == []
    finally:
        if cli.poll() is None:
            cli.kill()
        if judge is not None and live(judge):
            os.kill(judge, signal.SIGKILL)
        if backend == "docker":
            for container in docker_client().containers.list(all=True, filters={"label": LABEL}):
                sources = [str(mount.get("Source", "")) for mount in container.attrs.get("Mounts", [])]
                if any(source.startswith(f"{tmp}/") for source in sources):
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
