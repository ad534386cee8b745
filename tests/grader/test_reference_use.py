"""The reference's worker starts up front only for checks that can take it; a check that takes it anyway still gets it.

Reading the checks (``grader.reference_use``) is tested on small folders and on every shipped
challenge; what the judge does with the answer, on real gradings under bubblewrap, where
``environment.judge.reference_worker_starts`` says how often the reference's worker started.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.challenge import default_challenges_dir, list_challenge_ids, load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.reference_use import checks_take_reference
from grader.results import GradeResult
from harness.sandbox import CPU_DEVICE

CANDIDATE_ONLY = textwrap.dedent(
    """
    def test_adds(candidate):
        assert candidate.add(2, 3) == 5
    """
)
TAKES_THE_REFERENCE = textwrap.dedent(
    """
    def test_agrees(candidate, reference):
        assert candidate.add(2, 3) == reference.add(2, 3)
    """
)
# The name put together at run time: no reading of the file can see it.
HIDES_THAT_IT_TAKES_THE_REFERENCE = textwrap.dedent(
    """
    def test_agrees(candidate, request):
        trusted = request.getfixturevalue("refer" + "ence")
        assert candidate.add(2, 3) == trusted.add(2, 3)
    """
)
ADD = "def add(a, b):\n    return a + b\n"


def checks(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "hidden"
    folder.mkdir(exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(source)
    return folder


def test_checks_that_take_only_the_candidate_do_not_take_the_reference(tmp_path: Path) -> None:
    assert not checks_take_reference(checks(tmp_path, {"test_add.py": CANDIDATE_ONLY, "oracle.py": "X = 1\n"}))


@pytest.mark.parametrize("source", [
    TAKES_THE_REFERENCE,
    "def test_fast(candidate, calibration):\n    pass\n",  # calibration asks the reference's worker
    "import pytest\n\n@pytest.fixture\ndef both(candidate, reference):\n    return candidate, reference\n",
    "def test_late(request):\n    request.getfixturevalue('reference')\n",
    "import pytest\n\n@pytest.mark.usefixtures('reference')\ndef test_x():\n    pass\n",
    "def test_broken(:\n",  # unreadable: counted as taking it
], ids=["parameter", "calibration", "fixture", "getfixturevalue", "usefixtures", "syntax-error"])
def test_any_file_that_may_take_the_reference_counts(tmp_path: Path, source: str) -> None:
    assert checks_take_reference(checks(tmp_path, {"test_add.py": CANDIDATE_ONLY, "conftest.py": source}))


def test_an_edited_check_is_read_again(tmp_path: Path) -> None:
    folder = checks(tmp_path, {"test_add.py": CANDIDATE_ONLY})
    assert not checks_take_reference(folder)
    (folder / "test_add.py").write_text(TAKES_THE_REFERENCE)  # another size: a new fingerprint
    assert checks_take_reference(folder)


@pytest.mark.parametrize("challenge_id", list_challenge_ids())
def test_every_shipped_challenge_starts_its_reference_early(challenge_id: str) -> None:
    """They all compare with the reference or calibrate on it: their gradings start as before."""
    assert checks_take_reference(load_challenge(challenge_id, default_challenges_dir()).hidden_dir)


def grade(challenge_dir: Path, folder: Path, backend: str = "local") -> GradeResult:
    path = folder / "solution.py"
    path.write_text(ADD)
    return grade_submission(path, load_challenge(challenge_dir), GradeOptions(backend=backend))


def test_a_grading_whose_checks_never_take_the_reference_starts_no_reference_worker(
    challenge_factory, submission_dir: Path, backend: str,
) -> None:
    challenge = challenge_factory({"test_add.py": CANDIDATE_ONLY},
                                  [{"name": "adds", "test": "test_add.py::test_adds", "points": 1}])
    result = grade(challenge, submission_dir, backend)
    assert result.passed
    assert result.environment["judge"]["reference_worker_starts"] == 0
    assert result.metrics["worker_starts"] == 1
    assert result.environment["device"] == CPU_DEVICE  # no GPU leased: known without asking a worker


@pytest.mark.usefixtures("bwrap")
def test_a_grading_whose_checks_take_the_reference_starts_it_once(challenge_factory, submission_dir: Path) -> None:
    challenge = challenge_factory({"test_agree.py": TAKES_THE_REFERENCE},
                                  [{"name": "agrees", "test": "test_agree.py::test_agrees", "points": 1}])
    result = grade(challenge, submission_dir)
    assert result.passed
    assert result.environment["judge"]["reference_worker_starts"] == 1
    assert result.environment["device"] == CPU_DEVICE  # the reference's worker says the same of itself


@pytest.mark.usefixtures("bwrap")
def test_a_check_that_takes_the_reference_unseen_still_gets_it_at_its_first_call(
    challenge_factory, submission_dir: Path,
) -> None:
    """Reading the checks missed it: the reference's worker starts late, and the verdict is the same."""
    challenge = challenge_factory({"test_agree.py": HIDES_THAT_IT_TAKES_THE_REFERENCE},
                                  [{"name": "agrees", "test": "test_agree.py::test_agrees", "points": 1}])
    assert not checks_take_reference(challenge / "hidden")
    result = grade(challenge, submission_dir)
    assert result.passed, result.tests[0].output
    assert result.environment["judge"]["reference_worker_starts"] == 1
