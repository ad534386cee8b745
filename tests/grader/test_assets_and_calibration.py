"""Challenge assets, the adapter that runs beside a submission, and calibrated thresholds.

A challenge such as ``finetune`` hands the candidate a model and a data set: they
travel as read-only assets into every worker, and an adapter module in the
worker turns the judge's plain-data calls into calls on real objects. Figures
that depend on the machine come from the calibration cache, which only a run
of the reference itself may write.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from grader.calibration import CalibrationCache, hardware_class
from grader.challenge import load_challenge
from grader.errors import ChallengeError
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult

ADAPTER = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    _state = {}

    def bind(solution, assets_dir):
        _state["solution"] = solution
        _state["assets"] = assets_dir

    def scale_from_assets():
        factor = int((Path(_state["assets"]) / "factor.txt").read_text())
        return _state["solution"].scale(3, factor)

    def environment_names_assets():
        return os.environ.get("CVGRADE_ASSETS") == _state["assets"]

    def remember(value):
        _state["remembered"] = value

    def recall():
        if "remembered" not in _state:
            raise RuntimeError("nothing remembered: remember() did not run in this worker")
        return _state["remembered"]

    def try_to_write_assets():
        try:
            (Path(_state["assets"]) / "planted.txt").write_text("x")
        except OSError:
            return "refused"
        return "written"
    '''
)

ADAPTER_CHECKS = textwrap.dedent(
    """
    def test_adapter_calls_the_solution_with_assets(candidate):
        assert candidate.call("adapter.scale_from_assets") == 21, "scale(3, 7) is wrong"

    def test_adapter_keeps_state_between_calls(candidate):
        candidate.call("adapter.remember", [1, 2])
        assert candidate.call("adapter.recall") == [1, 2], "state was lost"

    def test_assets_are_read_only_and_named_in_the_environment(candidate):
        assert candidate.call("adapter.environment_names_assets"), "CVGRADE_ASSETS is not the assets folder"
        assert candidate.call("adapter.try_to_write_assets") == "refused", "the assets folder is writable"
    """
)
ADAPTER_LIST = [
    {"name": "calls", "test": "test_adapter.py::test_adapter_calls_the_solution_with_assets", "points": 1},
    {"name": "state", "test": "test_adapter.py::test_adapter_keeps_state_between_calls", "points": 1},
    {"name": "read_only", "test": "test_adapter.py::test_assets_are_read_only_and_named_in_the_environment",
     "points": 1},
]
ASSETS_TOML = '[assets]\nfolder = "assets"\nadapter = "adapter.py"'
SCALE = "def scale(x, factor):\n    return x * factor\n"


def grade(challenge: Path, source: str, folder: Path, backend: str) -> GradeResult:
    path = folder / "solution.py"
    path.write_text(source)
    return grade_submission(path, load_challenge(challenge), GradeOptions(backend=backend))  # type: ignore[arg-type]


def assets_challenge(challenge_factory, checks: str, listed: list[dict[str, object]], **kwargs: object) -> Path:
    return challenge_factory(
        {"test_adapter.py": checks}, listed, functions=(("scale", ["x", "factor"]),), reference=SCALE,
        starter="def scale(x, factor):\n    raise NotImplementedError\n", extra_toml=ASSETS_TOML,
        files={"assets/adapter.py": ADAPTER, "assets/factor.txt": "7"}, **kwargs,
    )


def test_the_adapter_runs_beside_the_submission_and_reads_the_assets(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    challenge = assets_challenge(challenge_factory, ADAPTER_CHECKS, ADAPTER_LIST)
    result = grade(challenge, SCALE, submission_dir, backend)
    failures = {test.name: test.output for test in result.tests if test.status != "passed"}
    assert failures == {}
    assert result.score == 3


def test_a_failing_adapter_call_fails_its_check_with_the_adapters_message(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    checks = "def test_recall_first(candidate):\n    candidate.call('adapter.recall')\n"
    listed = [{"name": "recall_first", "test": "test_adapter.py::test_recall_first", "points": 1}]
    challenge = assets_challenge(challenge_factory, checks, listed)
    (test,) = grade(challenge, SCALE, submission_dir, backend).tests
    assert test.status == "failed"
    assert "remember() did not run in this worker" in test.output


def test_the_result_names_the_device_the_worker_computed_on(challenge_factory, submission_dir: Path) -> None:
    challenge = assets_challenge(challenge_factory, ADAPTER_CHECKS, ADAPTER_LIST)
    result = grade(challenge, SCALE, submission_dir, "local")
    device = result.environment["device"]
    assert device["type"] in ("cpu", "cuda")
    assert hardware_class(device) == "cpu" or hardware_class(device).startswith("cuda-")


@pytest.mark.parametrize("folder", ["hidden", "reference", "known_bad", "known_good"])
def test_a_secret_folder_can_never_be_the_assets(challenge_factory, folder: str) -> None:
    challenge = challenge_factory({"test_a.py": "def test_a(candidate):\n    pass\n"},
                                  [{"name": "a", "test": "test_a.py::test_a", "points": 1}],
                                  extra_toml=f'[assets]\nfolder = "{folder}"')
    (challenge / folder).mkdir(exist_ok=True)
    with pytest.raises(ChallengeError, match=f"{folder}/ is secret"):
        load_challenge(challenge)


def test_a_symbolic_link_in_the_assets_is_refused(challenge_factory) -> None:
    challenge = assets_challenge(challenge_factory, ADAPTER_CHECKS, ADAPTER_LIST)
    (challenge / "assets" / "checks.py").symlink_to(challenge / "hidden" / "test_adapter.py")
    with pytest.raises(ChallengeError, match=r"checks\.py is a symbolic link"):
        load_challenge(challenge)


def test_a_missing_adapter_is_named(challenge_factory) -> None:
    challenge = assets_challenge(challenge_factory, ADAPTER_CHECKS, ADAPTER_LIST)
    (challenge / "assets" / "adapter.py").unlink()
    with pytest.raises(ChallengeError, match=r"assets.adapter: no file assets/adapter.py"):
        load_challenge(challenge)


CALIBRATED_CHECKS = textwrap.dedent(
    """
    def test_scaled_within_calibrated_bound(candidate, reference, calibration):
        bound = calibration.value("bound", lambda: reference.scale(2, 5))
        assert candidate.scale(2, 5) <= bound, "scale(2, 5) is above the calibrated bound"
    """
)
CALIBRATED = [{"name": "bounded", "test": "test_adapter.py::test_scaled_within_calibrated_bound", "points": 1}]


def cached_figures(cache_root: Path) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in sorted(cache_root.glob("calibration/tiny@1.0.0/*.json"))]


def test_only_grading_the_reference_stores_a_calibrated_figure(
    challenge_factory, submission_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_root = tmp_path / "cache"
    monkeypatch.setenv("CVGRADE_CACHE", str(cache_root))
    challenge = assets_challenge(challenge_factory, CALIBRATED_CHECKS, CALIBRATED)

    candidate_run = grade(challenge, "def scale(x, factor):\n    return factor * x\n", submission_dir, "local")
    assert candidate_run.score == 1
    used = candidate_run.environment["calibration"]["values"]["bound"]
    assert (used["value"], used["source"]) == (10.0, "measured")
    assert used["candidate_during_measurement"].startswith(("frozen (", "stopped (")), "the candidate ran meanwhile"
    assert cached_figures(cache_root) == [], "a candidate's run stored a calibrated figure"

    reference_run = grade_submission(challenge / "reference" / "solution.py", load_challenge(challenge),
                                     GradeOptions(backend="local"))
    assert reference_run.score == 1
    (stored,) = cached_figures(cache_root)
    figures = {key: value for key, value in stored["values"].items() if not key.startswith(("call_s.", "check_s."))}
    assert figures == {"bound": 10.0}
    assert stored["machine"]["hardware_class"] == reference_run.environment["calibration"]["machine"][
        "hardware_class"]


def test_a_cached_figure_is_used_and_reported_as_cached(
    challenge_factory, submission_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_root = tmp_path / "cache"
    monkeypatch.setenv("CVGRADE_CACHE", str(cache_root))
    challenge = assets_challenge(challenge_factory, CALIBRATED_CHECKS, CALIBRATED)
    grade_submission(challenge / "reference" / "solution.py", load_challenge(challenge), GradeOptions(backend="local"))
    (path,) = sorted(cache_root.glob("calibration/tiny@1.0.0/*.json"))
    stored = json.loads(path.read_text())
    CalibrationCache(cache_root / "calibration", "tiny", "1.0.0", stored["machine"]).write("bound", 9.0)

    result = grade(challenge, SCALE, submission_dir, "local")
    assert result.environment["calibration"]["values"]["bound"] == {"value": 9.0, "source": "cached"}
    assert result.metrics["calibration.bound"] == 9.0
    (test,) = result.tests
    assert test.status == "failed" and "above the calibrated bound" in test.output
