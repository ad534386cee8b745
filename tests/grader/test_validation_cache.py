"""`cvgrade validate --reuse-passed`: a passing validation is reused only for the very same inputs.

The validations here are real ones of a tiny challenge (one check, one known-bad solution, one
public test), on the local backend; the cache is a folder of the test's own ($CVGRADE_CACHE).
Without the option, `cvgrade validate` is the real validation that tests/grader/test_cli.py specifies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from grader.challenge import load_challenge
from grader.grading import GradeOptions
from grader.validate import ValidationReport
from grader.validation_cache import (
    Validation,
    read_passed,
    store_passed,
    validation_inputs,
    validation_key,
    validations_dir,
)

REPO = Path(__file__).resolve().parents[2]
CHECKS = "def test_adds(candidate):\n    assert candidate.add(1, 2) == 3, 'wrong sum'\n"
# A check too weak to tell the known-bad solution (a - b) from a right one: validation must fail.
WEAK_CHECKS = "def test_adds(candidate):\n    assert candidate.add(1, 2) in (3, -1), 'wrong sum'\n"
CHECK = [{"name": "adds", "test": "test_add.py::test_adds", "points": 1}]
PUBLIC = {"test_public.py": "def test_adds_zero(candidate):\n    assert candidate.add(0, 0) == 0\n"}


@pytest.fixture
def tiny(challenge_factory) -> Path:
    folder = challenge_factory({"test_add.py": CHECKS}, CHECK, public=PUBLIC,
                               files={"hidden/thresholds.toml": "tolerance = 0.0\n"})
    (folder / "known_bad").mkdir()
    (folder / "known_bad" / "minus.py").write_text("def add(a, b):\n    return a - b\n")
    with (folder / "challenge.toml").open("a") as toml:
        toml.write('\n[[known_bad]]\nfile = "known_bad/minus.py"\nmust_fail = ["adds"]\n')
    return folder


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CVGRADE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def validate(folder: Path, *flags: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", str(folder), "--backend", "local", *flags])
    return result.exit_code, result.output


def records() -> list[Path]:
    return sorted(validations_dir().glob("*/*.json"))


@pytest.mark.validation
def test_a_passing_validation_is_reused_until_a_check_changes_and_a_failure_is_never_stored(tiny: Path) -> None:
    code, first = validate(tiny, "--reuse-passed")
    assert code == 0 and "remembered as passed" in first and "reused" not in first, first
    [record] = records()
    stored = json.loads(record.read_text())  # JSON, readable by people
    assert stored["report"]["problems"] == []
    assert "public tests on the reference: 1 of 1 passed" in stored["report"]["lines"]
    assert stored["inputs"]["torch"] and stored["inputs"]["sandbox"]["backend"] == "local"

    code, second = validate(tiny, "--reuse-passed", "--jobs", "2")  # how many at once is not an input
    assert code == 0, second
    assert f"reused the passing validation of {stored['validated_at'][:10]}" in second
    assert f"(key {record.stem[:16]})" in second
    for line in stored["report"]["lines"]:  # the report really produced, every line of it
        assert line in second
    assert "remembered" not in second and records() == [record]

    (tiny / "hidden" / "test_add.py").write_text(WEAK_CHECKS)
    code, third = validate(tiny, "--reuse-passed")
    # Only a real validation can see that the weakened check no longer fails the known-bad solution.
    assert code == 1 and "reused" not in third, third
    assert "known_bad/minus.py should fail ['adds'] but passed them" in third
    assert records() == [record]  # the failure was not stored: the next run validates it again

    (tiny / "hidden" / "test_add.py").write_text(CHECKS)  # back as it was: the passing record applies again
    code, fourth = validate(tiny, "--reuse-passed")
    assert code == 0 and "reused the passing validation" in fourth


def key_of(folder: Path, options: GradeOptions | None = None) -> str:
    return validation_key(validation_inputs(load_challenge(str(folder)), options or GradeOptions(backend="local")))


def test_the_key_changes_with_any_file_of_the_challenge_thresholds_included(tiny: Path) -> None:
    key = key_of(tiny)
    assert key_of(tiny) == key  # the same tree, the same key
    (tiny / "hidden" / "thresholds.toml").write_text("tolerance = 0.1\n")
    changed = key_of(tiny)
    assert changed != key
    (tiny / "hidden" / "data.bin").write_bytes(b"\0")  # a new file of held-back data
    assert key_of(tiny) not in (key, changed)
    (tiny / "hidden" / "data.bin").unlink()
    # Bytecode and tools' caches are derived from the sources: not inputs.
    (tiny / "hidden" / "__pycache__").mkdir()
    (tiny / "hidden" / "__pycache__" / "test_add.cpython-311.pyc").write_bytes(b"\0")
    (tiny / "hidden" / "helpers.pyc").write_bytes(b"\0")
    (tiny / ".pytest_cache" / "v").mkdir(parents=True)
    (tiny / ".pytest_cache" / "v" / "nodeids").write_text("[]")
    assert key_of(tiny) == changed


@pytest.mark.usefixtures("bwrap")
def test_the_key_changes_with_the_sandbox(tiny: Path) -> None:
    process = key_of(tiny, GradeOptions(backend="local", isolation="process"))
    assert process != key_of(tiny, GradeOptions(backend="local", isolation="bwrap"))


def test_the_key_changes_with_any_source_of_the_grader_or_the_harness(tiny: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tree"
    for package in ("grader", "harness"):
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))

    def key_with_copied_sources() -> str:
        script = ("import sys, grader; from grader.challenge import load_challenge; from grader.grading import "
                  "GradeOptions; from grader.validation_cache import validation_inputs, validation_key; "
                  "assert grader.__file__.startswith(sys.argv[2]), grader.__file__; "
                  "options = GradeOptions(backend='local'); "
                  "print(validation_key(validation_inputs(load_challenge(sys.argv[1]), options)))")
        env = {**os.environ, "PYTHONPATH": str(copy)}
        done = subprocess.run([sys.executable, "-c", script, str(tiny), str(copy)], capture_output=True, text=True,
                              env=env, cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    key = key_with_copied_sources()
    assert key == key_of(tiny)  # the copy is the same source
    with (copy / "harness" / "worker" / "candidate_worker.py").open("a") as worker:
        worker.write("\n# one more line in the worker\n")
    assert key_with_copied_sources() != key


def test_a_record_that_does_not_read_back_or_did_not_pass_is_a_miss(tiny: Path) -> None:
    key = key_of(tiny)
    passed = Validation(ValidationReport("tiny", lines=["all good"]), key, reused=False,
                        validated_at=datetime.now(UTC))
    path = store_passed(passed, {"note": "test"})
    found = read_passed("tiny", key)
    assert found is not None and found.reused and found.report.lines == ["all good"]

    path.write_text("{ not json")
    assert read_passed("tiny", key) is None
    path.write_text(json.dumps({"format": 1, "key": key, "validated_at": "2026-12-03T00:00:00+00:00",
                                "report": {"challenge": "tiny", "problems": ["it failed"], "lines": []}}))
    assert read_passed("tiny", key) is None  # a record of a failure is never reused
    with pytest.raises(ValueError, match="only a passing validation is stored"):
        store_passed(Validation(ValidationReport("tiny", problems=["it failed"]), key, reused=False,
                                validated_at=passed.validated_at), {})
