"""The warm judge: every grading's judge is forked from one process that imported torch once,
and nothing of one grading reaches the next (grader/judge/forkserver.py).

Real gradings of small challenges on the local backend, two in one grader process, with hidden
checks that leave behind all they can (a module global, an environment variable, a module, a
file, a running process) and say what they found when they started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.judge.forkserver import shared_fork_server
from harness import cgroups
from tests.conftest import running

LEAKY_CHECKS = textwrap.dedent(
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import numpy
    import torch

    REPORT = Path({report!r})


    def test_leaves_everything_behind(candidate):
        seen = {{
            "torch_global": getattr(torch, "_cvgrade_leak", None),
            "environment": os.environ.get("CVGRADE_LEAK"),
            "module": "cvgrade_leaky_module" in sys.modules,
            "files": sorted(os.listdir(".")),
            "pid": os.getpid(),
            "parent": os.getppid(),
            "numpy_draw": float(numpy.random.random()),
            "tempdir": tempfile.gettempdir(),
        }}
        torch._cvgrade_leak = "set by an earlier grading"
        os.environ["CVGRADE_LEAK"] = "set by an earlier grading"
        sys.modules["cvgrade_leaky_module"] = type(sys)("cvgrade_leaky_module")
        Path("left-behind.txt").write_text("from an earlier grading")
        seen["child"] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid
        with REPORT.open("a") as report:
            report.write(json.dumps(seen) + "\\n")
        assert candidate.add(1, 2) == 3
    """
)
HANGING_CHECKS = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path


    def test_hangs(candidate):
        assert candidate.add(1, 2) == 3
        Path({report!r}).write_text(str(os.getpid()))
        time.sleep(600)
    """
)


def _grade_reference(challenge_dir: Path, judge: str) -> list[str]:
    challenge = load_challenge(challenge_dir)
    result = grade_submission(challenge.reference_dir / "solution.py", challenge,
                              GradeOptions(backend="local", judge=judge))  # type: ignore[arg-type]
    return [test.status for test in result.tests]


def _leaky_challenge(challenge_factory, report: Path) -> Path:
    return challenge_factory({"test_leaky.py": LEAKY_CHECKS.format(report=str(report))},
                             [{"name": "leaky", "test": "test_leaky.py::test_leaves_everything_behind", "points": 1}])


@pytest.mark.usefixtures("bwrap")
def test_nothing_of_one_grading_reaches_the_next(
    challenge_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "seen.jsonl"
    challenge = _leaky_challenge(challenge_factory, report)
    temporary = [tmp_path / "tmp-first", tmp_path / "tmp-second"]
    for folder in temporary:  # each grading's own TMPDIR, as a service's gradings may have
        folder.mkdir()
        monkeypatch.setenv("TMPDIR", str(folder))
        monkeypatch.setattr(tempfile, "tempdir", None)
        assert _grade_reference(challenge, "warm") == ["passed"]
    first, second = (json.loads(line) for line in report.read_text().splitlines())
    server = shared_fork_server().pid
    assert server is not None and first["parent"] == second["parent"] == server  # both forked by one warm server
    assert first["pid"] != second["pid"] != server
    for seen in (first, second):
        assert seen["torch_global"] is None
        assert seen["environment"] is None
        assert seen["module"] is False
        assert "left-behind.txt" not in seen["files"]
    assert [first["tempdir"], second["tempdir"]] == [str(folder) for folder in temporary]
    assert first["numpy_draw"] != second["numpy_draw"]  # a fresh global generator, as a fresh process has
    if cgroups.detect() is not None:  # the judge's cgroup takes whatever the judge started with it
        assert not running(first["child"]) and not running(second["child"])
    assert running(server)


@pytest.mark.usefixtures("bwrap")
def test_a_cold_judge_and_a_warm_one_agree(challenge_factory, tmp_path: Path) -> None:
    report = tmp_path / "seen.jsonl"
    challenge = _leaky_challenge(challenge_factory, report)
    assert _grade_reference(challenge, "cold") == _grade_reference(challenge, "warm") == ["passed"]
    cold, warm = (json.loads(line) for line in report.read_text().splitlines())
    assert cold["parent"] != shared_fork_server().pid == warm["parent"]


GRADER_THAT_IS_KILLED = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from grader.challenge import load_challenge
    from grader.grading import GradeOptions, grade_submission
    from grader.judge.forkserver import shared_fork_server

    server = shared_fork_server()
    server.start()
    Path(sys.argv[2]).write_text(str(server.pid))
    challenge = load_challenge(Path(sys.argv[1]))
    grade_submission(challenge.reference_dir / "solution.py", challenge, GradeOptions(backend="local"))
    """
)


@pytest.mark.usefixtures("bwrap")
def test_the_warm_server_and_its_judge_end_with_a_grader_that_is_killed(challenge_factory, tmp_path: Path) -> None:
    judge_pid_file, server_pid_file = tmp_path / "judge.pid", tmp_path / "server.pid"
    challenge = challenge_factory({"test_hang.py": HANGING_CHECKS.format(report=str(judge_pid_file))},
                                  [{"name": "hangs", "test": "test_hang.py::test_hangs", "points": 1}],
                                  limits="check_timeout_s = 600")
    script = tmp_path / "grader_script.py"
    script.write_text(GRADER_THAT_IS_KILLED)
    grader = subprocess.Popen([sys.executable, str(script), str(challenge), str(server_pid_file)])
    try:
        deadline = time.monotonic() + 180
        while not judge_pid_file.is_file() or not judge_pid_file.read_text():
            assert grader.poll() is None, "the grading ended before its check hung"
            assert time.monotonic() < deadline, "the hanging check never started"
            time.sleep(0.2)
        server, judge = int(server_pid_file.read_text()), int(judge_pid_file.read_text())
        assert running(server) and running(judge)
    finally:
        os.kill(grader.pid, signal.SIGKILL)
        grader.wait()
    deadline = time.monotonic() + 30
    while (running(server) or running(judge)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(server), "the warm judge server outlived its grader"
    assert not running(judge), "a forked judge outlived its grader"


GRADER_OF_ONE_OR_MORE = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    from grader.challenge import load_challenge
    from grader.grading import GradeOptions, grade_submission, warm_up_judges
    from grader.judge.forkserver import shared_fork_server

    options = GradeOptions(backend="local")
    if sys.argv[3] == "early":
        shared_fork_server().start(warm=False)  # as `cvgrade grade` starts it, before it has read its arguments
    warm_up_judges(options, gradings=int(sys.argv[2]))
    challenge = load_challenge(Path(sys.argv[1]))
    result = grade_submission(challenge.reference_dir / "solution.py", challenge, options)
    server = shared_fork_server()
    maps = Path(f"/proc/{server.pid}/maps").read_text()
    print(json.dumps({"statuses": [test.status for test in result.tests], "server": server.pid,
                      "warm": server.warm, "server_loaded_torch": "libtorch" in maps}))
    """
)


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize(("gradings", "server_started"), [(1, "early"), (2, "early"), (1, "by warm_up_judges")])
def test_a_grader_with_one_grading_keeps_its_server_light_and_its_judge_imports_torch_itself(
    challenge_factory, tmp_path: Path, gradings: int, server_started: str,
) -> None:
    """``early``: as ``cli.main`` does, light, before anything is known; else ``warm_up_judges`` starts it."""
    report = tmp_path / "seen.jsonl"
    challenge = _leaky_challenge(challenge_factory, report)
    script = tmp_path / "grader_script.py"
    script.write_text(GRADER_OF_ONE_OR_MORE)
    finished = subprocess.run([sys.executable, str(script), str(challenge), str(gradings), server_started],
                              capture_output=True, text=True, timeout=300, check=True)
    said = json.loads(finished.stdout.splitlines()[-1])
    seen = json.loads(report.read_text())
    assert said["statuses"] == ["passed"]
    assert seen["parent"] == said["server"]  # forked by the server either way, never a fresh interpreter
    assert said["warm"] is (gradings != 1)
    # A light server never loads torch: its one judge does, while the workers start beside it. Told that
    # more gradings follow, it imports torch once, for them all.
    assert said["server_loaded_torch"] is (gradings != 1)


@pytest.mark.parametrize(("argv", "starts_early"), [
    (["cvgrade", "grade", "a.py", "-c", "iou"], True),
    (["cvgrade", "test", "practice"], True),
    (["cvgrade", "grade", "a.py", "-c", "iou", "--judge", "cold"], False),
    (["cvgrade", "grade", "a.py", "--judge=cold", "-c", "iou"], False),
    (["cvgrade", "validate", "iou"], False),  # starts its (warm) server when it grades
    (["cvgrade", "serve"], False),
    (["cvgrade"], False),
])
def test_the_cli_starts_a_judge_server_before_its_own_imports_only_to_grade(
    argv: list[str], starts_early: bool,
) -> None:
    from cli.main import _grades

    assert _grades(argv) is starts_early
