"""Training outside the measured window (ATTACKS.md; issue 13, F2) earns nothing in ``finetune``.

The submissions in ``submissions/finetune/`` return from ``finetune`` a model that trains itself
for 1.5 budgets when it is first called: at once with an untrained model, after a full budget's
training, or only when it is not being traced. Before the fix each got full marks. Each is
graded by the real grader, under both production backends, against a copy of ``finetune`` with
short budgets and low gates (the verdicts are under test, not the calibration: a grading takes
about a minute instead of two). A fair grader scores the state
``finetune`` handed over, charges any work done to produce it to the time budget, and never runs
the candidate's code to predict; so none of them earns the accuracy checks, and the controls
(the reference and the known-good solution) still pass.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from grader.challenge import Challenge, load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult

HERE = Path(__file__).resolve().parent
SUBMISSIONS = HERE / "submissions" / "finetune"
FINETUNE_DIR = HERE.parent.parent / "challenges" / "finetune"

BUDGET_S = 12.0  # the main run's time_budget_s in the quick copy; stopped at 12 * 1.1 + 2 = 15.2 s
ACCURACY = frozenset({"accuracy_partial", "accuracy"})

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_finetune(tmp_path_factory: pytest.TempPathFactory) -> Challenge:
    """``finetune`` with a 12 s budget, no machine scaling, and gates of 30% and 20% (a busy machine's)."""
    target = tmp_path_factory.mktemp("challenges") / "finetune"
    shutil.copytree(FINETUNE_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    thresholds = target / "hidden" / "thresholds.toml"
    text = thresholds.read_text()
    for key, value in (("budget_s", BUDGET_S), ("small_budget_s", 5.0), ("pass_accuracy", 0.3),
                       ("partial_accuracy", 0.2)):
        text, count = re.subn(rf"(?m)^{key} = [0-9.]+", f"{key} = {value}", text)
        assert count == 2, f"thresholds.toml no longer has {key} in both entries"
    text = re.sub(r"(?m)^benchmark_s = .*$", "", text)
    thresholds.write_text(text)
    toml = target / "challenge.toml"  # 3 minutes to import: a busy shared machine takes more than one
    toml.write_text(re.sub(r"(?m)^setup_timeout_s = \d+$", "setup_timeout_s = 180", toml.read_text()))
    return load_challenge(target)


_GRADED: dict[tuple[str, str], GradeResult] = {}


def graded(submission: Path, challenge: Challenge, backend: str) -> GradeResult:
    key = (str(submission), backend)
    if key not in _GRADED:
        _GRADED[key] = grade_submission(submission, challenge, GradeOptions(backend=backend))  # type: ignore[arg-type]
    result = _GRADED[key]
    assert (result.status, result.error) == ("graded", None), result.error
    return result


def verdicts(result: GradeResult) -> dict[str, str]:
    return {test.name: test.status for test in result.tests}


def output(result: GradeResult, name: str) -> str:
    return next(test.output for test in result.tests if test.name == name)


@pytest.mark.parametrize("control", [
    pytest.param(FINETUNE_DIR / "reference" / "solution.py", id="reference"),
    pytest.param(FINETUNE_DIR / "known_good" / "crop_flip_sgd.py", id="known-good crops and flips"),
])
def test_sound_solutions_still_pass_when_their_model_is_graded_from_its_weights(
    quick_finetune: Challenge, backend: str, control: Path
) -> None:
    result = graded(control, quick_finetune, backend)
    assert result.passed and result.score == 100, result.output
    # predicted in the trusted worker, within the reference architecture's time times eval_ratio
    assert 0 < result.metrics["predict_s"] <= result.metrics["predict_limit_s"]


@pytest.mark.parametrize("submission", [
    pytest.param("trains_on_first_call.py", id="untrained model that trains on its first call"),
    pytest.param("trains_past_the_budget_on_first_call.py", id="full budget, then more on its first call"),
])
def test_training_on_the_first_call_is_charged_to_the_time_budget(
    quick_finetune: Challenge, backend: str, submission: str
) -> None:
    result = graded(SUBMISSIONS / submission, quick_finetune, backend)
    passing = {name for name, status in verdicts(result).items() if status == "passed"}
    assert not passing & (ACCURACY | {"time_budget"}), result.output
    assert "time budget exceeded" in output(result, "time_budget")
    assert not result.passed


def test_a_model_that_trains_only_when_not_traced_is_scored_untrained(
    quick_finetune: Challenge, backend: str
) -> None:
    result = graded(SUBMISSIONS / "trains_unless_traced.py", quick_finetune, backend)
    status = verdicts(result)
    assert {name: status[name] for name in ACCURACY} == {"accuracy_partial": "failed", "accuracy": "failed"}
    assert result.metrics["accuracy"] < 0.2, "the training it hides for its first call ran somewhere"
    # It is fast and honest about everything else: only the accuracy it did not earn is missing.
    assert status["time_budget"] == status["no_work_outside_finetune"] == "passed"
    assert result.metrics["train_s"] < BUDGET_S / 2
    assert not result.passed
