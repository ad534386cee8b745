"""The child Python that parses the candidate's source for us: it answers what our script prints, and
gives up (None) rather than let the work grow without bound in memory, CPU or time."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader import limited_python
from grader.limited_python import run_limited


def test_the_script_reads_its_job_and_its_printed_answer_comes_back() -> None:
    assert run_limited("print(json.dumps(sorted(job)))", {"b": 1, "a": 2}) == ["a", "b"]


def test_the_child_sees_none_of_the_services_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CVGRADE_SECRET_FOR_TEST", "do-not-leak")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    answer = run_limited("import os; print(json.dumps([dict(os.environ), sys.path]))", None)
    assert isinstance(answer, list)
    environment, path = answer
    assert "CVGRADE_SECRET_FOR_TEST" not in environment
    assert str(tmp_path) not in path and "" not in path  # neither PYTHONPATH nor the current folder


def test_a_script_that_outgrows_the_memory_limit_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limited_python, "MEMORY_BYTES", 200 * 2**20)
    assert run_limited("x = bytearray(400 * 2**20); print('1')", None) is None
    assert run_limited("x = bytearray(20 * 2**20); print('1')", None) == 1


def test_a_script_that_outlasts_the_cpu_limit_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child runs under the CPU limit (it reads its own), and a busy loop ends as None."""
    monkeypatch.setattr(limited_python, "CPU_S", 1)
    assert run_limited("import resource; print(json.dumps(resource.getrlimit(resource.RLIMIT_CPU)))", None) == [1, 1]
    assert run_limited("while True: pass", None) is None


def test_a_script_that_outlasts_the_time_out_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limited_python, "TIMEOUT_S", 1)
    assert run_limited("import time; time.sleep(30)", None) is None


def test_output_that_is_not_json_gives_none() -> None:
    assert run_limited("print('not json')", None) is None
