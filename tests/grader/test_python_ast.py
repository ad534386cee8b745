"""The grader parses Python from many threads at once (``--jobs``, the service) and every parse gets its tree.

CPython 3.11's ``ast.parse`` is not safe in two threads at once: a garbage collection in the middle
of one parse can run a finalizer that lets another thread in, and when that thread parses too, the
first ends in ``SystemError: AST constructor recursion depth mismatch``. It broke a grading in CI.
These tests make that happen on purpose: finalizers that give up the GIL, and a collection every
hundred allocations, while threads parse side by side through ``grader.python_ast``.
"""

from __future__ import annotations

import ast
import gc
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import grader
from grader.check_targets import definitions
from grader.python_ast import parse_python
from grader.reference_use import checks_take_reference

THREADS = 4
PARSES_PER_THREAD = 20


class _LetsAnotherThreadIn:
    """Garbage whose finalizer gives up the GIL, as many real objects' do (files, sockets, processes)."""

    def __del__(self) -> None:
        time.sleep(0.0001)
        _make_garbage()  # so that the next collection switches threads too


def _make_garbage() -> None:
    cycle = _LetsAnotherThreadIn()
    cycle.itself = cycle  # type: ignore[attr-defined]  # freed only by a collection


@pytest.fixture
def collections_that_switch_threads() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.set_threshold(100, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.collect()


def _side_by_side(work: Callable[[], object]) -> list[object]:
    """``work``'s results from THREADS threads, each calling it PARSES_PER_THREAD times amid garbage whose every
    collection switches threads; an exception counts as a result."""
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        _make_garbage()
        for _ in range(PARSES_PER_THREAD):
            try:
                outcome: object = work()
            except Exception as error:  # the outcome under test
                outcome = error
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_threads_parsing_at_once_each_get_the_tree_of_their_source(collections_that_switch_threads: None) -> None:
    source = Path(grader.__file__).with_name("grading.py").read_text(encoding="utf-8")
    expected = ast.dump(ast.parse(source))

    results = _side_by_side(lambda: parse_python(source))

    assert [result for result in results if not isinstance(result, ast.Module)] == []
    assert {ast.dump(result) for result in results if isinstance(result, ast.Module)} == {expected}


def test_gradings_in_threads_all_learn_that_the_checks_never_take_the_reference(
    collections_that_switch_threads: None, tmp_path: Path
) -> None:
    # A check file of a realistic size that uses only the candidate: a parse that failed would answer "takes it".
    cases = "\n".join(f"    ({n}, {n + 1}, {2 * n + 1})," for n in range(60))
    (tmp_path / "test_adds.py").write_text(
        f"import pytest\n\nCASES = [\n{cases}\n]\n\n\n@pytest.mark.parametrize(('a', 'b', 'total'), CASES)\n"
        "def test_adds(candidate, a, b, total):\n    assert candidate.add(a, b) == total\n",
        encoding="utf-8",
    )

    assert set(map(repr, _side_by_side(lambda: checks_take_reference(tmp_path)))) == {"False"}


def test_reviewers_in_threads_all_find_where_the_candidate_defined_a_function(
    collections_that_switch_threads: None,
) -> None:
    code = "import torch\n\n\ndef box_iou(a, b):\n    return a\n" + "x = [1, 2, 3]\n" * 60

    results = _side_by_side(lambda: definitions([("solution.py", code)], ["box_iou"]).get("box_iou"))

    assert {(found.label, found.line) if hasattr(found, "line") else repr(found)  # type: ignore[union-attr]
            for found in results} == {("solution.py", 4)}


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("def broken(:\n", id="a syntax error"),
        pytest.param("x = 1\x00\n", id="a null byte"),
        pytest.param("(" * 200_000 + ")" * 200_000, id="parentheses nested too deep"),
    ],
)
def test_source_that_does_not_parse_gives_no_tree(source: str) -> None:
    assert parse_python(source) is None
