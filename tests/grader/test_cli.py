"""The cvgrade command line: exit codes, JSON output, practice folders, validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from grader.challenge import list_challenge_ids, load_challenge
from tests.conftest import judges_of

runner = CliRunner()
CHECKS = "def test_adds(candidate):\n    assert candidate.add(1, 2) == 3, 'wrong sum'\n"
CHECK = [{"name": "adds", "test": "test_add.py::test_adds", "points": 1}]
PUBLIC = {"test_public.py": "def test_adds_zero(candidate):\n    assert candidate.add(0, 0) == 0\n"}


@pytest.fixture
def tiny(challenge_factory) -> Path:
    folder = challenge_factory({"test_add.py": CHECKS}, CHECK, public=PUBLIC)
    (folder / "known_bad").mkdir()
    (folder / "known_bad" / "minus.py").write_text("def add(a, b):\n    return a - b\n")
    with (folder / "challenge.toml").open("a") as toml:
        toml.write('\n[[known_bad]]\nfile = "known_bad/minus.py"\nmust_fail = ["adds"]\n')
    return folder


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_exit_code_0_when_passed_1_when_not(tiny: Path, submission_dir: Path) -> None:
    good = write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    bad = write(submission_dir, "bad.py", "def add(a, b):\n    return 0\n")
    code, output = invoke("grade", str(good), "--challenge", str(tiny))
    assert code == 0 and "PASSED" in output
    code, output = invoke("grade", str(bad), "--challenge", str(tiny))
    assert code == 1 and "NOT PASSED" in output and "wrong sum" in output


def test_json_prints_one_object_per_submission(tiny: Path, submission_dir: Path) -> None:
    good = write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    bad = write(submission_dir, "bad.py", "def add(a, b):\n    return 0\n")
    code, output = invoke("grade", str(good), str(bad), "-c", str(tiny), "--json")
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [r["passed"] for r in lines] == [True, False]
    assert code == 1  # the worst verdict decides


def test_relative_paths_work_from_any_folder(
    tiny: Path, submission_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The judge runs in a folder of its own: a relative challenge path must be made absolute first.
    write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    submission = os.path.relpath(submission_dir / "good.py")
    code, output = invoke("grade", submission, "-c", os.path.relpath(tiny))
    assert code == 0 and "PASSED" in output, output
    code, output = invoke("grade", submission, "-c", "tiny", "--challenges-dir", os.path.relpath(tiny.parent))
    assert code == 0 and "PASSED" in output, output
    monkeypatch.chdir(tiny)
    code, output = invoke("grade", os.path.relpath(submission_dir / "good.py"), "-c", ".")
    assert code == 0 and "PASSED" in output, output


def test_exit_code_2_for_a_hostile_zip_with_a_clear_message(tiny: Path, submission_dir: Path) -> None:
    archive = submission_dir / "sub.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../evil.py", "x = 1")
    code, output = invoke("grade", str(archive), "-c", str(tiny))
    assert code == 2
    assert "points outside the archive" in output


def test_json_prints_a_refused_zip_as_one_object_in_its_place(tiny: Path, submission_dir: Path) -> None:
    archive = submission_dir / "sub.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../evil.py", "x = 1")
    good = write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    done = subprocess.run([str(Path(sys.executable).parent / "cvgrade"), "grade", str(archive), str(good),
                           "-c", str(tiny), "--json", "--backend", "local"],
                          capture_output=True, text=True, check=False)
    objects = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but JSON on stdout
    assert [o["status"] for o in objects] == ["refused", "graded"]
    refused = objects[0]
    assert refused["score"] is None and refused["passed"] is False
    assert refused["submission"]["name"] == "sub.zip" and refused["challenge"]["id"] == "tiny"
    assert "points outside the archive" in refused["error"]
    assert done.returncode == 2  # the worst of refused (2) and passed (0), as documented


def test_json_prints_one_refusal_per_submission_for_an_unknown_challenge(tmp_path: Path, submission_dir: Path) -> None:
    good = write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    other = write(submission_dir, "other.py", "def add(a, b):\n    return a + b\n")
    done = subprocess.run([str(Path(sys.executable).parent / "cvgrade"), "grade", str(good), str(other),
                           "-c", "nope", "--challenges-dir", str(tmp_path), "--json"],
                          capture_output=True, text=True, check=False)
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(o["status"], o["submission"]["name"]) for o in objects] == [("refused", "good.py"),
                                                                          ("refused", "other.py")]
    assert "no challenge 'nope'" in objects[0]["error"] and done.returncode == 2


def test_progress_shows_on_a_terminal_and_never_in_json_or_a_pipe(tiny: Path, submission_dir: Path) -> None:
    import pty

    # The check lasts 2 s, whatever else a grading needs: the display refreshes 4 times a second.
    good = write(submission_dir, "good.py", "import time\n\ndef add(a, b):\n    time.sleep(2)\n    return a + b\n")
    command = [str(Path(sys.executable).parent / "cvgrade"), "grade", str(good), "-c", str(tiny), "--backend", "local"]
    on_terminal = _run_on_a_terminal(pty, command)
    assert "check 1 of 1: adds" in on_terminal, on_terminal
    piped = subprocess.run(command, capture_output=True, text=True, check=False)
    assert "check 1 of" not in piped.stdout + piped.stderr and "PASSED" in piped.stdout
    as_json = _run_on_a_terminal(pty, [*command, "--json"])
    assert "check 1 of" not in as_json
    assert json.loads(as_json.strip().splitlines()[-1])["passed"] is True


def _run_on_a_terminal(pty: object, command: list[str]) -> str:
    """Run ``command`` with stdout and stderr on a pseudo-terminal; return all it wrote there."""
    import os as os_module

    leader, follower = pty.openpty()  # type: ignore[attr-defined]
    process = subprocess.Popen(command, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL)
    os_module.close(follower)
    chunks = []
    while True:
        try:
            chunk = os_module.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    os_module.close(leader)
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_exit_code_2_for_a_broken_notebook(tiny: Path, submission_dir: Path) -> None:
    notebook = write(submission_dir, "solution.ipynb", "{not json")
    code, output = invoke("grade", str(notebook), "-c", str(tiny))
    assert code == 2 and "not a valid Jupyter notebook" in output


def test_exit_code_2_for_an_unknown_challenge(tmp_path: Path, submission_dir: Path) -> None:
    good = write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    code, output = invoke("grade", str(good), "-c", "nope", "--challenges-dir", str(tmp_path))
    assert code == 2 and "no challenge 'nope'" in output


def test_exit_code_3_when_our_side_fails(challenge_factory, submission_dir: Path) -> None:
    broken = challenge_factory({"test_add.py": "def test_adds(candidate:\n"}, CHECK, challenge_id="broken")
    good = write(submission_dir, "good.py", "def add(a, b):\n    return a + b\n")
    code, output = invoke("grade", str(good), "-c", str(broken), "--json")
    result = json.loads(output)
    assert code == 3 and result["status"] == "error" and result["score"] is None


def test_start_copies_public_parts_only_and_test_runs_public_checks(tiny: Path, tmp_path: Path) -> None:
    practice = tmp_path / "practice"
    code, _ = invoke("start", "tiny", str(practice), "--challenges-dir", str(tiny.parent))
    assert code == 0
    copied = sorted(str(p.relative_to(practice)) for p in practice.rglob("*") if p.is_file())
    assert copied == [".cvgrade.toml", "README.md", "public_tests/test_public.py", "solution.py"]
    code, output = invoke("test", str(practice), "--challenges-dir", str(tiny.parent))
    assert code == 1 and "public checks" in output  # the starter does not pass
    write(practice, "solution.py", "def add(a, b):\n    return a + b\n")
    code, output = invoke("test", str(practice), "--challenges-dir", str(tiny.parent))
    assert code == 0 and "adds_zero" in output


def test_start_copies_the_assets_a_candidate_practises_with(challenge_factory, tmp_path: Path) -> None:
    folder = challenge_factory(
        {"test_add.py": CHECKS}, CHECK, challenge_id="with_assets", extra_toml='[assets]\nfolder = "assets"',
        files={"assets/model.py": "WEIGHTS = 'w.pt'\n", "assets/data/classes.txt": "disc\nsquare\n"},
    )
    practice = tmp_path / "practice"
    code, _ = invoke("start", "with_assets", str(practice), "--challenges-dir", str(folder.parent))
    assert code == 0
    assert (practice / "assets" / "model.py").read_text() == "WEIGHTS = 'w.pt'\n"
    assert (practice / "assets" / "data" / "classes.txt").read_text() == "disc\nsquare\n"
    assert not (practice / "hidden").exists() and not (practice / "reference").exists()


def test_start_refuses_a_folder_that_is_not_empty(tiny: Path, tmp_path: Path) -> None:
    write(tmp_path, "keep.txt", "mine")
    code, output = invoke("start", "tiny", str(tmp_path), "--challenges-dir", str(tiny.parent))
    assert code == 2 and "not empty" in output


def test_validate_accepts_a_sound_challenge_and_reports_a_weak_one(tiny: Path) -> None:
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 0 and "valid" in output
    # A known-bad solution that is in fact right exposes a check that cannot tell.
    (tiny / "known_bad" / "minus.py").write_text("def add(a, b):\n    return b + a\n")
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 1 and "should fail ['adds']" in output


def test_validate_fails_a_challenge_that_fails_a_sound_solution(tiny: Path) -> None:
    # A known-good solution written another way (b + a) passes: valid.
    (tiny / "known_good").mkdir()
    (tiny / "known_good" / "swapped.py").write_text("def add(a, b):\n    return b + a\n")
    with (tiny / "challenge.toml").open("a") as toml:
        toml.write('\n[[known_good]]\nfile = "known_good/swapped.py"\n')
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 0 and "known_good/swapped.py: 1 of 1 checks passed, score 1 / 1. PASSED" in output
    # One that the checks wrongly fail (this check compares with ==, so a sum a hair off fails) is reported.
    (tiny / "known_good" / "swapped.py").write_text("def add(a, b):\n    return float(b + a) + 1e-9\n")
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 1 and "known_good/swapped.py is a sound solution and should pass" in output
    assert "adds: wrong sum" in output


def test_validate_refuses_a_hidden_test_that_is_not_a_check(tiny: Path) -> None:
    unlisted = "\n\ndef test_forgotten(candidate):\n    assert candidate.add(2, 2) == 5, 'never runs'\n"
    with (tiny / "hidden" / "test_add.py").open("a") as hidden:
        hidden.write(unlisted)
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 1
    assert "hidden/test_add.py::test_forgotten is not listed in [[checks]]" in output


def test_validate_refuses_a_check_that_names_no_test(challenge_factory) -> None:
    folder = challenge_factory({"test_add.py": CHECKS},
                               [*CHECK, {"name": "gone", "test": "test_add.py::test_gone", "points": 1}])
    code, output = invoke("validate", str(folder))
    assert code == 1 and "check 'gone' names test_add.py::test_gone, which pytest does not collect" in output


def test_validate_runs_the_public_tests_on_the_reference_and_the_starter(tiny: Path) -> None:
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 0
    assert "public tests on the reference: 1 of 1 passed" in output
    assert "public tests on the starter: 0 of 1 passed" in output
    (tiny / "public" / "test_public.py").write_text(
        "def test_adds_zero(candidate):\n    assert candidate.add(0, 0) == 1, 'a public test that is wrong'\n")
    code, output = invoke("validate", "tiny", "--challenges-dir", str(tiny.parent))
    assert code == 1 and "the public tests must pass on the reference, but 1 failed" in output


def test_validate_checks_the_partial_credit_a_known_bad_solution_keeps(challenge_factory) -> None:
    checks = CHECKS + "\ndef test_adds_zero(candidate):\n    assert candidate.add(0, 0) == 0, 'zero'\n"
    folder = challenge_factory({"test_add.py": checks},
                               [*CHECK, {"name": "zero", "test": "test_add.py::test_adds_zero", "points": 1}])
    (folder / "known_bad").mkdir()
    (folder / "known_bad" / "minus.py").write_text("def add(a, b):\n    return a - b\n")  # 0 - 0 is right
    with (folder / "challenge.toml").open("a") as toml:
        toml.write('\n[[known_bad]]\nfile = "known_bad/minus.py"\nmust_fail = ["adds"]\nmust_pass = ["zero"]\n')
    code, output = invoke("validate", str(folder))
    assert code == 0, output
    (folder / "known_bad" / "minus.py").write_text("def add(a, b):\n    return a - b - 1\n")
    code, output = invoke("validate", str(folder))
    assert code == 1 and "known_bad/minus.py should still pass ['zero'] (partial credit) but failed them" in output


def test_challenges_lists_the_shipped_ones_with_levels_and_summaries() -> None:
    code, output = invoke("challenges")
    assert code == 0
    rows: dict[str, list[list[str]]] = {}
    current = ""
    for line in output.splitlines():
        if line.count("│") > 3:  # a table line; a row's wrapped summary continues on lines with no id
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            current = cells[0] or current
            rows.setdefault(current, []).append(cells)
    assert sorted(rows) == list_challenge_ids() and len(rows) == 7
    for challenge_id, lines in rows.items():
        info = load_challenge(challenge_id).spec.challenge
        assert lines[0][1] == info.level, challenge_id
        shown = " ".join(" ".join(cells[3] for cells in lines).split())
        assert shown == f"{info.title} {' '.join(info.summary.split())}", challenge_id
    assert rows["compress"][0][1] == "senior" and rows["augment"][0][1] == "junior"


def test_the_console_script_is_installed() -> None:
    done = subprocess.run([Path(sys.executable).parent / "cvgrade", "--help"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert textwrap.dedent("grade") in done.stdout


def test_sigterm_stops_validate_and_its_judge(challenge_factory) -> None:
    import signal
    import time

    slow = "import time\n\ndef test_slow(candidate):\n    time.sleep(120)\n"
    challenge = challenge_factory({"test_slow.py": slow}, [{"name": "slow", "test": "test_slow.py::test_slow",
                                                           "points": 1}])
    process = subprocess.Popen([str(Path(sys.executable).parent / "cvgrade"), "validate", str(challenge),
                                "--backend", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def judges() -> list[int]:
        return judges_of(process.pid)

    deadline = time.monotonic() + 300
    while not (started := judges()):
        assert process.poll() is None and time.monotonic() < deadline, "validate never started a judge"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143
    assert "terminated" in stderr
    for pid in started:
        assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
