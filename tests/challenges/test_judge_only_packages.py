"""The judge's oracle packages (pycocotools, for detection_map) are out of a submission's reach.

The judge imports pycocotools; a submission that tries gets ModuleNotFoundError and cannot read
the package's files, under both production backends: the Docker image does not have it, and the
local sandbox covers its folders (harness/local.py).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.challenge import load_challenge
from grader.grading import JUDGE_ONLY_DISTRIBUTIONS, GradeOptions, grade_submission

PROBE = textwrap.dedent('''
    import os
    import sys


    def probe():
        try:
            import pycocotools.cocoeval  # noqa: F401
            imported = "imported"
        except ImportError as err:
            imported = f"{type(err).__name__}: {err}"
        files = []
        for folder in sys.path:
            package = os.path.join(folder, "pycocotools")
            if os.path.isdir(package):
                files += sorted(os.listdir(package))
        return {"import": imported, "files": files}
''')

CHECK = textwrap.dedent('''
    def test_oracle_is_out_of_reach(candidate):
        from pycocotools.cocoeval import COCOeval  # the judge has it

        assert COCOeval is not None
        seen = candidate.probe()
        assert seen["import"].startswith("ModuleNotFoundError: No module named"), seen["import"]
        assert set(seen["files"]) <= {"__init__.py"}, "the submission can see pycocotools' files"
''')


def test_pycocotools_is_a_judge_only_package() -> None:
    import pycocotools.cocoeval  # noqa: F401 - installed for the judge (pyproject.toml)

    assert "pycocotools" in JUDGE_ONLY_DISTRIBUTIONS


def test_a_submission_cannot_import_or_read_the_oracle(challenge_factory, submission_dir: Path, backend: str) -> None:
    challenge = load_challenge(challenge_factory(
        {"test_oracle.py": CHECK},
        [{"name": "oracle_out_of_reach", "test": "test_oracle.py::test_oracle_is_out_of_reach", "points": 1}],
        functions=(("probe", []),), reference=PROBE, starter=PROBE,
    ))
    submission = submission_dir / "solution.py"
    submission.write_text(PROBE)
    result = grade_submission(submission, challenge, GradeOptions(backend=backend))  # type: ignore[arg-type]
    assert result.status == "graded", result.error
    check = result.tests[0]
    assert check.status == "passed", check.output


@pytest.mark.usefixtures("bwrap")
def test_the_local_sandbox_reports_what_it_hides() -> None:
    from harness.local import LocalSandbox

    described = LocalSandbox(isolation="bwrap", hidden_distributions=JUDGE_ONLY_DISTRIBUTIONS).describe()
    assert described["hidden_packages"] == ["pycocotools"]
