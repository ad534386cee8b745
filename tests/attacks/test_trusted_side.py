"""The trusted side under attack: what the candidate's worker sends is bounded, labelled and escaped.

Each submission here attacks the judge, the grader or the person reading the report rather than
the checks (ATTACKS.md, "Classes added after the first red-team round"), and each is graded by
the real grader under both backends, as in ``test_attacks.py`` (whose fixtures and assertions
these tests share):

- ``leak_held_back_data.py`` (finetune): held-back test images carried out in an exception;
- ``flood_the_judge.py``: a reply that expands on decoding (22 million empty JSON lists);
- ``oversized_reply.py``: a reply within the channel's bounds that still breaks the judge's
  own memory limit, which is the candidate's failure, not ours;
- ``bloat_the_result.py``: megabytes of exception text per check;
- ``forge_the_runtime.py``: a greeting that lies about the runtime and the device;
- ``terminal_escapes.py`` and ``markup_in_a_notebook.ipynb``: rich markup and escape sequences
  for the reviewer's terminal, through ``cvgrade grade`` and ``cvgrade submit``'s printing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from grader.challenge import Challenge, load_challenge
from grader.feedback import candidate_feedback
from grader.report import print_feedback
from harness.sandbox import OUTCOME_SENTENCES
from tests.attacks import test_attacks as attacks
from tests.attacks.test_attacks import (
    ALL,
    IOU_DIR,
    NMS,
    REPO,
    SUBMISSIONS,
    Graded,
    GradeWith,
    Verdict,
    assert_verdict,
    outputs,
)

# The attack suite's fixtures: a private temporary folder with a secret, a grader that grades once per backend.
private_tmp = attacks.private_tmp
grader = attacks.grader
grade = attacks.grade

FINETUNE = load_challenge(REPO / "challenges" / "finetune")
CANDIDATE_TEXT_LIMIT = 256 * 1024  # bytes of the solution's text a result may hold, in all
RESULT_OVERHEAD = 48 * 1024  # what a result holds besides: checks, descriptions, environment, metrics
CVGRADE = Path(sys.executable).parent / "cvgrade"


# ----------------------------------------------------------------------------- F1: held-back data


def leaked_test_images(text: str) -> int:
    """How many held-back test images a text carries, byte for byte (the submission's blob, decoded)."""
    found = 0
    for blob in re.findall(r"HELDBACK:([A-Za-z0-9+/=]+):END", text):
        try:
            images = np.load(io.BytesIO(zlib.decompress(base64.b64decode(blob))), allow_pickle=False)
        except (ValueError, zlib.error, OSError):
            continue
        with np.load(FINETUNE.hidden_dir / "data" / "test.npz", allow_pickle=False) as data:
            held_back = data["images"]
        same = min(len(images), len(held_back))
        found = max(found, int((images[:same] == held_back[:same]).reshape(same, -1).all(axis=1).sum()))
    return found


@pytest.fixture(scope="module")
def finetune(tmp_path_factory: pytest.TempPathFactory) -> Challenge:
    """The shipped finetune challenge, with a setup time limit that a busy shared machine cannot break."""
    target = tmp_path_factory.mktemp("challenges") / "finetune"
    shutil.copytree(FINETUNE.root, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (target / "challenge.toml").read_text()
    assert toml.count("setup_timeout_s = 60\n") == 1
    (target / "challenge.toml").write_text(toml.replace("setup_timeout_s = 60\n", "setup_timeout_s = 600\n"))
    return load_challenge(target)


def test_held_back_test_images_never_leave_through_feedback(grade: GradeWith, finetune: Challenge) -> None:
    graded = grade("leak_held_back_data.py", challenge=finetune)
    result = graded.result
    view = json.dumps(candidate_feedback(result, deadline_passed=True, show_scores=True))
    assert leaked_test_images(view) == 0, "held-back test images reached the candidate's feedback"
    assert leaked_test_images(graded.json) == 0, "held-back test images were stored whole in the result"
    assert "HELDBACK:" not in view, "text the solution produced after seeing held-back data reached the candidate"
    assert (result.status, result.error) == ("graded", None), result.error
    assert graded.leftovers == []
    by_name = {test.name: test for test in result.tests}
    # Since finetune evaluates the exported weights with the challenge's own model code (F2), the
    # recorder's forward never runs on held-back images: the accuracy checks fail (an untrained
    # head), and nothing the solution wrote can carry the test set out.
    passed = {name for name, test in by_name.items() if test.status == "passed"}
    assert passed <= {"small_task", "time_budget", "no_work_outside_finetune"}, result.output
    assert {"time_budget", "no_work_outside_finetune"} <= passed, result.output
    consistent = by_name["consistent_predictions"]
    assert "HELDBACK:" not in consistent.output
    assert len(consistent.output) <= 8000
    # The candidate sees, for every check after held-back data reached the worker, the property
    # (the check's description from challenge.toml) and the kind of failure, never a message.
    descriptions = {check.name: check.description for check in FINETUNE.spec.checks}
    sentences = {*OUTCOME_SENTENCES.values(), "failed", "passed"}
    for check in candidate_feedback(result, deadline_passed=True, show_scores=True)["checks"]:
        assert check["description"] == descriptions[check["name"]]
        assert check["message"] in sentences, f"{check['name']}: {check['message'][:200]!r}"


# ----------------------------------------------------------------------------- F3: the judge's own limits


def judge_figures(graded: Graded) -> dict[str, float]:
    judge = graded.result.environment.get("judge")
    assert isinstance(judge, dict), "the result does not say what the judge itself used"
    return judge


@pytest.fixture(scope="module")
def patient_iou(tmp_path_factory: pytest.TempPathFactory) -> Challenge:
    """The shipped iou challenge with a long setup time limit: every check of the flood restarts the worker,
    and on a busy shared machine importing torch ten times can outlast the usual minute."""
    target = tmp_path_factory.mktemp("challenges") / "iou"
    shutil.copytree(IOU_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (target / "challenge.toml").read_text()
    assert toml.count("[limits]\n") == 1
    (target / "challenge.toml").write_text(toml.replace("[limits]\n", "[limits]\nsetup_timeout_s = 600\n"))
    return load_challenge(target)


def test_a_reply_that_expands_on_decoding_is_refused_and_the_judge_stays_small(
    grade: GradeWith, patient_iou: Challenge
) -> None:
    graded = grade("flood_the_judge.py", challenge=patient_iou)
    reference = grade(IOU_DIR / "reference" / "solution.py", challenge=patient_iou)
    attacked, usual = judge_figures(graded), judge_figures(reference)
    # Measured from inside the judge (its peak resident memory), whatever the reply.
    assert attacked["peak_memory_mb"] <= usual["peak_memory_mb"] + 150, (attacked, usual)
    assert attacked["cpu_s"] <= usual["cpu_s"] + 60, (attacked, usual)
    assert attacked["memory_limit_mb"] == graded.result.limits["judge_memory_mb"]
    assert_verdict(graded, Verdict(0, failing_as=("bad_value",)))
    assert "the message's header is 66000001 bytes, more than the 4 MB the judge reads" in outputs(graded)


@pytest.fixture
def iou_with_a_small_judge(tmp_path: Path) -> Challenge:
    """iou with a 1 GB reply allowed for box_iou_edge_cases, and a judge limit too small to decode one.

    600 MB: a judge forked from the warm server is charged only for what it allocates itself (the
    imported torch is the server's), so 1,000 MB would still hold the 1 GB reply's decoding, just."""
    target = tmp_path / "iou"
    shutil.copytree(IOU_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (target / "challenge.toml").read_text()
    line = 'name = "box_iou_edge_cases"\n'
    assert toml.count(line) == 1
    toml = toml.replace(line, f"{line}max_reply_mb = 1000\n")
    toml = toml.replace("memory_mb = 2048\n", "memory_mb = 2048\njudge_memory_mb = 600\n")
    (target / "challenge.toml").write_text(toml)
    return load_challenge(target)


def test_a_reply_that_breaks_the_judges_memory_limit_is_the_candidates_failure(
    grade: GradeWith, iou_with_a_small_judge: Challenge
) -> None:
    graded = grade("oversized_reply.py", challenge=iou_with_a_small_judge)
    result = graded.result
    assert (result.status, result.error) == ("graded", None), result.error  # charged, not "not gradable"
    edge = graded.check("box_iou_edge_cases")
    assert edge.outcome == "out_of_memory", edge.output
    assert "the judge's memory limit of 600 MB" in edge.output
    assert result.score is not None and result.score < 100 and not result.passed
    assert graded.leftovers == []
    assert judge_figures(graded)["peak_memory_mb"] <= 600 + 50


# ----------------------------------------------------------------------------- F4: result bloat, forged runtime


def test_megabytes_of_exception_text_leave_a_small_result(grade: GradeWith) -> None:
    graded = grade("bloat_the_result.py")
    size = len(graded.json.encode())
    assert size <= CANDIDATE_TEXT_LIMIT + RESULT_OVERHEAD, f"the result is {size / 1e6:.1f} MB"
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    for test in graded.result.tests:
        assert "raised RuntimeError: bloat bloat" in test.output
        assert len(test.output) <= 8000


def test_the_runtime_is_reported_from_the_image_not_from_the_candidates_greeting(grade: GradeWith) -> None:
    graded = grade("forge_the_runtime.py")
    environment = graded.result.environment
    runtime = environment.get("runtime", environment.get("candidate_runtime", {}))
    assert runtime.get("torch", "").startswith("2.14.1"), runtime.get("torch")
    assert runtime.get("python", "").startswith("3."), runtime.get("python")
    assert "forged-package-1" not in json.dumps(runtime)
    assert "forged" not in json.dumps(environment.get("device", {}))
    # What the worker said about itself is kept, capped, and labelled as its claim.
    claims = environment["candidate_claims"]
    assert claims["versions"]["torch"] == "9.9.9"
    assert len(claims["versions"]) <= 16
    assert "9.9.9" not in json.dumps({k: v for k, v in environment.items() if k != "candidate_claims"})
    assert_verdict(graded, Verdict(100, ALL, passed=True))


# ----------------------------------------------------------------------------- F5: the reviewer's terminal

RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_markup_and_escape_sequences_reach_the_terminal_as_visible_text(backend: str, tmp_path: Path) -> None:
    # One batch, as a hiring team grades: the escapes, the notebook, and the reference last.
    batch = [SUBMISSIONS / "terminal_escapes.py", SUBMISSIONS / "markup_in_a_notebook.ipynb",
             IOU_DIR / "reference" / "solution.py"]
    run = subprocess.run([CVGRADE, "grade", *map(str, batch), "-c", "iou", "--backend", backend,
                          "--html", str(tmp_path / "reports")],
                         capture_output=True, text=True, timeout=1800, check=False)
    printed = run.stdout + run.stderr
    assert "MarkupError" not in printed and "Traceback" not in printed, printed[-3000:]
    assert run.returncode == 1, printed[-3000:]  # the worst of the batch: graded, not passed
    found = sorted({f"{ord(char):#x}" for char in RAW_CONTROL.findall(printed)})
    assert found == [], f"raw control characters reached the terminal: {found}"
    # Every report and the summary are there, the candidate's markup printed literally and its
    # escapes made visible.
    assert printed.count(f"- challenge iou v{load_challenge('iou').version}") == 3
    assert "Summary" in printed and "solution.py" in printed.split("Summary", 1)[1]
    assert "[/] closes a style that is not open" in printed
    assert "[bold green]all checks passed[/bold green]" in printed
    assert "\\x1b[2J" in printed and "\\x1b]52;c;" in printed and "\\u202e" in printed
    assert "skipped shell command `!echo [/]`" in printed
    for name in ("terminal_escapes.html", "markup_in_a_notebook.html", "solution.html"):
        assert (tmp_path / "reports" / name).is_file()


def test_cvgrade_submit_prints_the_candidates_feedback_as_visible_text(grade: GradeWith) -> None:
    graded = grade("terminal_escapes.py")
    assert_verdict(graded, Verdict(40, NMS, failing_as=("raised",)))
    view = {"id": 7, "filename": "[/]\x1b[2Jsolution.py", "state": "done", "charged": True,
            "attempts_left": 2, "feedback": candidate_feedback(graded.result, deadline_passed=True,
                                                               show_scores=True)}
    screen = io.StringIO()
    print_feedback(Console(file=screen, force_terminal=True, color_system="truecolor", width=160), view)
    printed = screen.getvalue()
    for raw in ("\x1b[2J", "\x1b]52;", "\x1b]8;;https://evil", "\x1b]0;", "\x07", "\u202e"):
        assert raw not in printed, f"{raw!r} reached the terminal raw"
    assert "[/]" in printed and "[bold green]all checks passed" in printed
    assert "\\x1b[2J" in printed
