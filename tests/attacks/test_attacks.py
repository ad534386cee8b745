"""Hostile submissions, graded by the real grader, get the verdict a fair grader gives.

Each file or folder in ``submissions/`` cheats in one of the ways listed in ATTACKS.md (its
docstring says which, and what a fair grader must do). Every grading here is a real one:
``grade_submission`` with the shipped ``iou`` challenge, its hidden checks and reference,
under each production backend where the attack means something for it: the local sandbox
(bubblewrap) and Docker (a locked-down container per worker). A submission is graded once
per backend and run, and several tests may read the result.

After each grading the suite looks for anything the run left behind: a process whose command
line carries a submission's marker (``sleep 987.6543``), a process whose command line or
mount table names the private temporary folder the gradings of this module run in (every
sandboxed process, whatever its user, has the workspace of its run in its mount table), a
child of this test process or of its warm judge server, and (Docker) a container labelled ``org.cvgrade.sandbox`` with a
folder of that private temporary folder mounted: the workspace of every worker container of
this module's gradings lives there, so other sessions' containers on the same machine are
never mistaken for ours. (A plain scan for uid 65534 is not used:
other gradings on the same machine legitimately run as that user.) During a Docker grading
the number of its containers is sampled, so a worker container that outlives its deadline
shows. Every grading also runs with a secret in the grader's environment (and ``DOCKER_HOST``
naming the engine), and every result is searched for the secret and for the hidden checks'
text.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.challenge import Challenge, load_challenge
from grader.errors import BadSubmission
from grader.grading import GradeOptions, grade_submission, run_public_checks
from grader.judge.forkserver import shared_fork_server
from grader.results import GradeResult
from grader.results import TestResult as CheckResult  # not Test*: pytest would try to collect it
from harness.containers import LABEL, OWNER_LABEL, control_root, docker_client
from harness.sandbox import SandboxUnavailable

HERE = Path(__file__).resolve().parent
SUBMISSIONS = HERE / "submissions"
REPO = HERE.parent.parent
IOU_DIR = REPO / "challenges" / "iou"
IOU = load_challenge(IOU_DIR)
POINTS = {check.name: check.points for check in IOU.spec.checks}
GATES = frozenset(check.name for check in IOU.spec.checks if check.gate)

MARKER = "987.6543"  # the argument of the /bin/sleep daemons some submissions leave
SECRET_NAME = "CVGRADE_TEST_SECRET"
SECRET_VALUE = f"attack-suite-secret-{uuid.uuid4().hex}"

BOX_IOU = frozenset({"box_iou_edge_cases", "box_iou_degenerate", "box_iou_random",
                     "box_iou_dtype_device", "box_iou_speed"})
INPUTS = frozenset({"inputs_unchanged"})  # calls box_iou first, then nms
NMS = frozenset({"nms_matches_torchvision", "nms_threshold_strict", "nms_score_order", "nms_empty_and_dtype"})
ALL = BOX_IOU | INPUTS | NMS

# Text that exists only in the hidden checks and the reference: no result may ever hold it.
HIDDEN_TEXT = {
    "hidden/test_box_iou.py": ("def iou_oracle", "SPEED_MAX_RATIO", "def random_pair", "DEGENERATE_CASES"),
    "hidden/test_nms.py": ("THRESHOLD_MARGIN", "def random_detections", "def expect_same_keep"),
    "hidden/test_inputs.py": ("def _unchanged",),
    "reference/solution.py": ("Divide by 1 where the union is zero", "Reference solution for the"),
}


# ----------------------------------------------------------------------------- grading


@dataclass(frozen=True)
class Graded:
    result: GradeResult
    leftovers: list[str]
    backend: str
    most_containers: int = 0  # Docker: the most worker containers of the run seen at once

    @property
    def json(self) -> str:
        return self.result.model_dump_json()

    def check(self, name: str) -> CheckResult:
        return next(test for test in self.result.tests if test.name == name)

    @property
    def passing(self) -> frozenset[str]:
        return frozenset(test.name for test in self.result.tests if test.status == "passed")


def processes_of_the_run(private_tmp: Path, earlier: frozenset[int] = frozenset()) -> list[str]:
    """Live processes that belong to this module's gradings (see the module docstring).

    ``earlier`` are processes that were already running before this module graded
    anything (a database server another test module started for the session, say). This
    process's warm judge server (``grader/judge/forkserver.py``) lives as long as this process
    by design; the judges it forked are its children, and count as this process's own.
    """
    server = shared_fork_server().pid
    ours_by_parent = {os.getpid()} | ({server} if server is not None else set())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), server) or int(entry.name) in earlier:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue  # gone meanwhile
        try:
            mounts = (entry / "mountinfo").read_text(errors="replace")
        except OSError:
            mounts = ""  # another user's process, unreadable when we are not root
        parent = re.search(r"^PPid:\s*(\d+)", status, re.MULTILINE)
        user = re.search(r"^Uid:\s*(\d+)", status, re.MULTILINE)
        ours = str(private_tmp) in cmdline or str(private_tmp) in mounts
        if MARKER in cmdline or ours or (parent and int(parent.group(1)) in ours_by_parent):
            found.append(f"pid {entry.name} uid {user.group(1) if user else '?'}: {cmdline[:160]}")
    return found


def containers_of_the_run(private_tmp: Path, client: object | None = None) -> list[str]:
    """Worker containers, running or not, with a folder of ``private_tmp`` mounted (see the docstring)."""
    client = client or docker_client()
    found = []
    for container in client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": LABEL}, ignore_removed=True
    ):
        sources = [str(mount.get("Source", "")) for mount in container.attrs.get("Mounts", [])]
        if any(source.startswith(f"{private_tmp}/") for source in sources):
            found.append(f"container {container.short_id} ({container.status}, "
                         f"owner {container.labels.get(OWNER_LABEL)}): {container.attrs.get('Path')}")
    return found


class ContainerWatch:
    """Samples the run's containers twice a second while a Docker grading runs; keeps the most seen."""

    def __init__(self, private_tmp: Path) -> None:
        self._private_tmp = private_tmp
        self._client = docker_client()
        self._stop = threading.Event()
        self.most = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.most = max(self.most, len(containers_of_the_run(self._private_tmp, self._client)))
            except Exception:  # a failed sample is only a missed sample
                continue

    def __enter__(self) -> ContainerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Grader:
    """Grades each submission once per backend, then waits up to 3 s for the run's processes to be gone."""

    def __init__(self, private_tmp: Path) -> None:
        self.private_tmp = private_tmp
        self._done: dict[tuple[str, str, str, bool], Graded] = {}
        self.earlier = frozenset(int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit())

    def __call__(self, submission: str | Path, *, backend: str, challenge: Challenge = IOU,
                 practice: bool = False) -> Graded:
        path = submission if isinstance(submission, Path) else SUBMISSIONS / submission
        key = (backend, str(path), str(challenge.root), practice)
        if key not in self._done:
            run = run_public_checks if practice else grade_submission
            options = GradeOptions(backend=backend, isolation="bwrap")  # type: ignore[arg-type]
            watch = ContainerWatch(self.private_tmp) if backend == "docker" else None
            with watch or contextlib.nullcontext():
                result = run(path, challenge, options)
            deadline = time.monotonic() + 3.0
            while (leftovers := self.leftovers(backend)) and time.monotonic() < deadline:
                time.sleep(0.1)
            self._done[key] = Graded(result, leftovers, backend, watch.most if watch else 0)
        return self._done[key]

    def leftovers(self, backend: str) -> list[str]:
        found = processes_of_the_run(self.private_tmp, self.earlier)
        if backend == "docker":
            found += containers_of_the_run(self.private_tmp)
        return found


@pytest.fixture(scope="module")
def private_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The grader's temporary folder (workspaces, judge, workers), a secret and DOCKER_HOST in its environment."""
    folder = tmp_path_factory.mktemp("grading-tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        patch.setenv(SECRET_NAME, SECRET_VALUE)
        if "DOCKER_HOST" not in os.environ:
            patch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")  # the engine's own default
        yield folder


@pytest.fixture(scope="module")
def grader(private_tmp: Path) -> Grader:
    return Grader(private_tmp)


class GradeWith:
    """``grade(submission)`` under the backend of the test (the ``backend`` fixture: local, docker)."""

    def __init__(self, grader: Grader, backend: str) -> None:
        self.grader = grader
        self.backend = backend

    def __call__(self, submission: str | Path, *, challenge: Challenge = IOU, practice: bool = False) -> Graded:
        return self.grader(submission, backend=self.backend, challenge=challenge, practice=practice)


@pytest.fixture
def grade(grader: Grader, backend: str) -> GradeWith:
    return GradeWith(grader, backend)


@pytest.fixture
def grade_in_docker(grader: Grader, docker: None) -> GradeWith:
    return GradeWith(grader, "docker")


def assert_graded_fairly(graded: Graded) -> None:
    """What holds for every submission, however hostile: a verdict, nothing leaked, nothing left."""
    result = graded.result
    assert (result.status, result.error) == ("graded", None), result.error
    missing = [test.name for test in result.tests if test.outcome in ("missing", "error", "skipped")]
    assert missing == [], f"checks without a verdict of their own: {missing}"
    assert {test.name for test in result.tests} == set(POINTS)
    for source, snippets in HIDDEN_TEXT.items():
        for snippet in snippets:
            assert snippet in (IOU_DIR / source).read_text(), f"{source} no longer holds {snippet!r}"
            assert snippet not in graded.json, f"the result holds text of {source}: {snippet!r}"
    assert SECRET_VALUE not in graded.json and SECRET_NAME not in graded.json
    assert graded.leftovers == [], f"left running after grading: {graded.leftovers}"
    # Docker: a candidate's worker and a reference's at most; a killed worker's container is gone
    # before its replacement starts (sampled twice a second while the grading ran).
    assert graded.most_containers <= 2, f"{graded.most_containers} worker containers of one grading at once"


@dataclass(frozen=True)
class Verdict:
    """The fair verdict: which checks pass, the score, and how each other check ends."""

    score: float
    passing: frozenset[str] = frozenset()
    failing_as: tuple[str, ...] = ("failed",)  # the outcomes allowed for the checks that fail
    passed: bool = False


def assert_verdict(graded: Graded, expected: Verdict) -> None:
    assert_graded_fairly(graded)
    result = graded.result
    assert graded.passing == expected.passing, result.output
    assert result.score == expected.score == sum(POINTS[name] for name in expected.passing)
    assert result.passed is expected.passed
    wrong = {test.name: test.outcome for test in result.tests
             if test.status == "failed" and test.outcome not in expected.failing_as}
    assert wrong == {}, f"expected the failing checks to end as {expected.failing_as}"


def outputs(graded: Graded, names: frozenset[str] = ALL) -> str:
    return "\n".join(graded.check(name).output for name in sorted(names))


# ----------------------------------------------------------------------------- controls


def test_the_reference_gets_full_marks(grade: GradeWith) -> None:
    graded = grade(IOU_DIR / "reference" / "solution.py")
    assert_verdict(graded, Verdict(100, ALL, passed=True))
    assert graded.result.exit_code == 0


def test_the_starter_scores_nothing(grade: GradeWith) -> None:
    graded = grade(IOU_DIR / "starter" / "solution.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    assert graded.result.exit_code == 1 and set(graded.result.failed_gates) == GATES


# ----------------------------------------------------------------------------- integrity


@pytest.mark.parametrize(("submission", "expected"), [
    pytest.param("exit_at_import.py", Verdict(0, failing_as=("import_failed",)), id="os._exit(0) at import"),
    pytest.param("exit_in_call.py", Verdict(40, NMS, failing_as=("crashed",)), id="os._exit(0) in box_iou"),
])
def test_exiting_early_with_a_success_message_scores_nothing(
    grade: GradeWith, submission: str, expected: Verdict
) -> None:
    graded = grade(submission)
    assert_verdict(graded, expected)
    assert "exited with code 0" in outputs(graded, ALL - expected.passing)
    assert graded.result.output.endswith("NOT PASSED")


@pytest.mark.parametrize(("submission", "outcome", "names"), [
    pytest.param("raise_base_exceptions.py", "raised", ("SystemExit", "KeyboardInterrupt", "GeneratorExit"),
                 id="SystemExit KeyboardInterrupt GeneratorExit from calls"),
    pytest.param("skip_at_import.py", "import_failed", ("Skipped",), id="pytest.skip at module level"),
    pytest.param("skip_in_call.py", "raised", ("SkipTest", "Skipped", "XFailed", "Exit"),
                 id="unittest.SkipTest pytest.skip pytest.xfail pytest.exit from calls"),
])
def test_raising_exit_or_skip_exceptions_fails_the_checks_instead_of_skipping_them(
    grade: GradeWith, submission: str, outcome: str, names: tuple[str, ...]
) -> None:
    graded = grade(submission)
    assert_verdict(graded, Verdict(0, failing_as=(outcome,)))
    for name in names:
        assert f"raised {name}" in outputs(graded) or f"imported: {name}" in outputs(graded)


@pytest.fixture(scope="module")
def planted_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted folder as a candidate zips it: one top-level folder."""
    folder = SUBMISSIONS / "planted_test_config"
    archive = tmp_path_factory.mktemp("zips") / "planted_test_config.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out.write(path, Path("planted_test_config") / path.relative_to(folder))
    return archive


@pytest.mark.parametrize("submission", [
    pytest.param("patch_test_framework.py", id="patched _pytest unittest torch numpy math at import"),
    pytest.param("planted_test_config", id="planted conftest pytest.ini pth dist-info sitecustomize (folder)"),
    pytest.param("planted_test_config.zip", id="planted conftest pytest.ini pth dist-info sitecustomize (zip)"),
])
def test_patching_the_test_framework_or_planting_test_configuration_changes_nothing(
    grade: GradeWith, planted_zip: Path, private_tmp: Path, submission: str
) -> None:
    graded = grade(planted_zip if submission.endswith(".zip") else submission)
    # IoU 0.5 everywhere and no box kept: wrong wherever it is compared; it does leave its inputs
    # alone, and its IoU has the inputs' dtype and device
    assert_verdict(graded, Verdict(15, INPUTS | {"box_iou_dtype_device"}))
    ran = [path.name for folder in (private_tmp, Path("/tmp")) for path in folder.glob("cvgrade-plant-ran-*")]
    assert ran == [], f"planted files ran outside the sandbox: {ran}"


def test_values_that_fake_equality_are_refused(grade: GradeWith) -> None:
    graded = grade("always_equal_objects.py")
    assert_verdict(graded, Verdict(0, failing_as=("bad_value",)))
    assert "subclass of torch.Tensor (AlwaysEqualTensor)" in graded.check("box_iou_random").output
    for kind in ("AlwaysEqualInt", "AlwaysEqualList", "AlwaysEqualArray"):
        assert kind in outputs(graded, NMS)


@pytest.mark.parametrize(("submission", "expected", "said"), [
    pytest.param("nan_and_inf.py", Verdict(55, NMS | INPUTS | {"box_iou_dtype_device"}), ("NaN", "infinite"),
                 id="NaN and Inf"),
    pytest.param("shapes_and_dtypes.py", Verdict(42, NMS - {"nms_empty_and_dtype"} | INPUTS),
                 ("expected shape (14, 14), got (1,)", "expected shape (300, 200), got (60000,)",
                  "expected dtype torch.int64, got torch.int32"),
                 id="one-element broadcast, flattened, int32 indices"),
])
def test_nan_inf_broadcasting_and_wrong_dtypes_fail_the_checks_they_target(
    grade: GradeWith, submission: str, expected: Verdict, said: tuple[str, ...]
) -> None:
    graded = grade(submission)
    assert_verdict(graded, expected)
    for words in said:
        assert words in outputs(graded)


def test_mutating_the_inputs_so_a_later_reference_agrees_gains_nothing(grade: GradeWith) -> None:
    graded = grade("mutate_inputs.py")
    assert_verdict(graded, Verdict(8, frozenset({"box_iou_dtype_device"})))  # its ones have the right dtype
    assert "box_iou changed its input boxes1" in graded.check("inputs_unchanged").output


def test_the_judges_expected_values_are_not_in_the_workers_frames_or_memory(grade: GradeWith) -> None:
    graded = grade("peek_at_the_judge.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    report = graded.check("nms_empty_and_dtype").output  # the last check: after every scan
    assert "judge_tensors_found=0" in report
    assert "caller_files=candidate_worker.py,solution.py " in report


def test_the_worker_looks_the_same_when_graded_and_when_practising(grade: GradeWith) -> None:
    graded = grade("detect_the_grader.py")
    practice = grade("detect_the_grader.py", practice=True)
    # its first call reports what it sees; every later call is honest unless it detected grading
    assert_verdict(graded, Verdict(88, ALL - {"box_iou_edge_cases"}, failing_as=("raised",)))
    report = r"suspicious=(\S+) fingerprint=(\w+) parts=(\S+) hostname=(\S+)"
    seen_graded = re.search(report, graded.check("box_iou_edge_cases").output)
    seen_practice = re.search(report, "\n".join(test.output for test in practice.result.tests))
    assert seen_graded and seen_practice
    assert seen_graded.group(1) == seen_practice.group(1) == "none"
    parts_graded = dict(part.split(":") for part in seen_graded.group(3).split(","))
    parts_practice = dict(part.split(":") for part in seen_practice.group(3).split(","))
    assert parts_graded.keys() == parts_practice.keys(), "graded and practice workers can be told apart"
    differ = {key for key in parts_graded if parts_graded[key] != parts_practice[key]}
    # Every sandbox is called "sandbox", under both backends: not the host, not a container's id.
    assert differ == set(), f"graded and practice workers can be told apart by {differ}"
    assert seen_graded.group(2) == seen_practice.group(2)
    assert seen_graded.group(4) == seen_practice.group(4) == "sandbox"
    assert practice.result.status == "graded" and practice.leftovers == []


# ----------------------------------------------------------------------------- confidentiality


SANDBOX_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PWD", "LC_CTYPE",
               "CUDA_VISIBLE_DEVICES"}  # set by the local backend: empty unless the challenge leased a GPU


def test_hidden_checks_the_reference_and_secrets_stay_out_of_the_sandbox(grade: GradeWith) -> None:
    graded = grade("hunt_for_secrets.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised", "failed")))  # nms returns what it read
    report = graded.check("box_iou_edge_cases").output
    assert "grading_material=none" in report
    pids = re.search(r"visible_pids=(\d+) ", report)
    assert pids is not None and int(pids.group(1)) <= 3  # the sandbox's init, the worker, its child
    assert "pytest" not in report and "grader.judge" not in report  # no judge among them
    env_keys = re.search(r"env_keys=(\[[^\]]*\])", report)
    assert env_keys is not None
    seen_env = set(json.loads(env_keys.group(1).replace("'", '"')))
    assert "DOCKER_HOST" in os.environ and not any("DOCKER" in key for key in seen_env)
    if grade.backend == "docker":
        # process 1 is the container's init, running as the candidate's own user: reading its
        # memory reads the candidate's own box; the engine names the container (HOSTNAME).
        assert re.search(r"^1: /sbin/docker-init -- /opt/cvgrade/venv/bin/python ", report, re.MULTILINE)
        assert seen_env <= SANDBOX_ENV | {"HOSTNAME"}
    else:
        assert "mem={1: 'denied" in report
        assert seen_env <= SANDBOX_ENV


# ----------------------------------------------------------------------------- availability


def iou_with_edited_toml(root: Path, edit: Callable[[str], str]) -> Challenge:
    """A copy of the shipped iou challenge in ``root`` whose challenge.toml is ``edit(the shipped one)``."""
    target = root / "iou"
    shutil.copytree(IOU_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = target / "challenge.toml"
    toml.write_text(edit(toml.read_text()))
    return load_challenge(target)


def iou_with_short_check_limits(root: Path, limit_s: float, names: frozenset[str]) -> Challenge:
    """The shipped iou challenge with a shorter time limit on some checks, so the suite stays quick."""
    def shorten(toml: str) -> str:
        for name in names:
            line = f'name = "{name}"\n'
            assert toml.count(line) == 1
            toml = toml.replace(line, f"{line}timeout_s = {limit_s}\n")
        return toml

    return iou_with_edited_toml(root, shorten)


def iou_with_patient_calls(root: Path, monkeypatch: pytest.MonkeyPatch, call_timeout_s: float) -> Challenge:
    """The shipped iou challenge whose every call may take ``call_timeout_s``.

    No calibrated per-call limits apply: the judge reads this machine's figures from an
    empty cache, so every function gets the challenge's own ``call_timeout_s``.
    """
    def lengthen(toml: str) -> str:
        assert toml.count("\ncall_timeout_s = ") == 1
        return re.sub(r"\ncall_timeout_s = \d+", f"\ncall_timeout_s = {call_timeout_s}", toml)

    monkeypatch.setenv("CVGRADE_CACHE", str(root / "empty-cache"))
    return iou_with_edited_toml(root, lengthen)


def test_a_call_that_never_returns_times_out_and_the_other_checks_still_report(
    grade: GradeWith, tmp_path: Path
) -> None:
    never_return = BOX_IOU | INPUTS | {"nms_empty_and_dtype"}
    challenge = iou_with_short_check_limits(tmp_path, 3, never_return)
    graded = grade("endless_calls.py", challenge=challenge)
    assert_verdict(graded, Verdict(35, NMS - {"nms_empty_and_dtype"}, failing_as=("timed_out",)))
    for name in never_return:
        assert graded.check(name).duration_s < 3 + 5, "the per-check limit was not enforced"


@pytest.mark.parametrize(("submission", "expected", "said"), [
    pytest.param("memory_hog.py", Verdict(53, BOX_IOU, failing_as=("out_of_memory",)),
                 "used more than 2048 MB of memory", id="memory bomb in nms"),
    pytest.param("output_flood.py", Verdict(40, NMS, failing_as=("output_limit",)),
                 "printed more than 1000000 bytes", id="1 GiB of output from box_iou"),
])
def test_limit_breaches_end_with_a_named_outcome_and_the_rest_still_report(
    grade: GradeWith, submission: str, expected: Verdict, said: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each breach ends as its own outcome: only a worker stopped at the breach gives it; one left
    # to print its gigabyte would pass its check or time out. That the capture reads on while the
    # kill is under way (which Docker needs) is shown without a clock in tests/harness/test_output.py.
    # The memory limit is under test, not the time limit: with the calls' limits calibrated on this
    # machine (5 s for nms), filling 2 GB on a busy machine raced them and sometimes lost (timed_out).
    graded = grade(submission, challenge=iou_with_patient_calls(tmp_path, monkeypatch, 60))
    assert_verdict(graded, expected)
    assert said in outputs(graded, ALL - expected.passing)
    assert len(graded.json) < 200_000, "the result carries too much of the candidate's output"


def test_a_fork_storm_is_capped_and_every_child_is_killed(grade: GradeWith) -> None:
    graded = grade("fork_storm.py")
    assert_verdict(graded, Verdict(88, ALL - {"box_iou_edge_cases"}, failing_as=("raised",)))
    storm = re.search(r"started (\d+) processes, then: Resource temporarily unavailable",
                      graded.check("box_iou_edge_cases").output)
    assert storm is not None and int(storm.group(1)) < IOU.spec.limits.max_processes


def test_a_thread_storm_and_512_torch_threads_are_capped_and_the_grader_stays_healthy(grade: GradeWith) -> None:
    graded = grade("oversubscribe_threads.py")
    assert_graded_fairly(graded)
    assert not graded.result.passed
    failing = [test for test in graded.result.tests if test.status == "failed"]
    assert failing and {test.outcome for test in failing} <= {"crashed", "import_failed"}
    started = re.search(r"threads_started=(\d+) stopped_by=can't start new thread", outputs(graded))
    assert started is not None and int(started.group(1)) < IOU.spec.limits.max_processes


def test_filling_scratch_space_and_descriptors_stays_inside_the_sandbox(grade: GradeWith) -> None:
    graded = grade("exhaust_files_and_scratch.py")
    assert_verdict(graded, Verdict(95, ALL - {"nms_empty_and_dtype"}, failing_as=("raised",), passed=True))
    report = graded.check("nms_empty_and_dtype").output
    assert f"tmp={IOU.spec.limits.scratch_mb}MiB then ENOSPC" in report
    assert re.search(r"shm=\d+MiB then ENOSPC", report)
    assert "workspace=0MiB then EROFS" in report
    assert re.search(r"fds=\d+ then EMFILE", report)


def test_fake_result_files_and_daemons_neither_count_nor_survive(grade: GradeWith, private_tmp: Path) -> None:
    graded = grade("fake_results_and_daemons.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    places = [private_tmp, Path("/tmp"), Path.cwd(), Path.home()]
    planted = [str(folder / name) for folder in places for name in ("results.json", "junit.xml", "report.xml")
               if (folder / name).is_file() and "check_0" in (folder / name).read_text(errors="replace")]
    assert planted == [], f"fake result files reached the grading machine: {planted}"


def test_killing_every_process_it_can_reaches_only_its_own(grade: GradeWith) -> None:
    graded = grade("kill_everything.py")
    assert_verdict(graded, Verdict(88, ALL - {"box_iou_edge_cases"}, failing_as=("crashed",)))
    assert "killed by SIGKILL" in graded.check("box_iou_edge_cases").output
    assert graded.result.metrics["worker_starts"] == 2


def test_closing_the_judges_channel_is_an_import_failure_not_our_error(grade: GradeWith) -> None:
    graded = grade("close_the_channel.py")
    assert_verdict(graded, Verdict(0, failing_as=("import_failed",)))
    assert graded.result.exit_code == 1


# ----------------------------------------------------------------------------- isolation


@pytest.fixture
def privilege_report(grade: GradeWith) -> dict[str, str]:
    graded = grade("probe_privileges.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))  # its SIGKILL to process 1 crashed nothing
    text = graded.check("box_iou_edge_cases").output
    return dict(re.findall(r"^(?:fact )?(\w+)[:=] ?([^\n(]*\S)", text.split("(/workspace")[0], re.MULTILINE))


DENIED = ["setuid0", "setgid0", "seteuid0", "unshare_mount", "unshare_net", "mount_tmpfs",
          "chroot", "sethostname", "nice_minus", "raw_socket", "packet_socket", "connect_loopback_22",
          "write_usr", "write_workspace", "write_runtime", "read_shadow", "read_dev_mem", "read_kmsg",
          "docker_socket"]
PROCESS_1 = ["ptrace_pid1", "kill_pid1", "read_pid1_mem"]


@pytest.mark.parametrize("probe", [
    *DENIED,
    "unshare_user",  # local: harness/seccomp.py; Docker: the engine's default seccomp profile
    "userns_then_mount",
    "keyctl",  # the user keyring of uid 65534 would be shared by every sandbox on the machine
])
def test_privileged_operations_are_denied_in_the_sandbox(privilege_report: dict[str, str], probe: str) -> None:
    assert privilege_report[probe].startswith("denied"), f"{probe}: {privilege_report[probe]}"


def test_process_1_is_out_of_reach_or_the_candidates_own(privilege_report: dict[str, str], backend: str) -> None:
    if backend == "docker":
        # docker-init, started with the worker as the same unprivileged user in the container's
        # own pid namespace: tracing or signalling it reaches nothing of ours (the kernel drops
        # SIGKILL sent to a namespace's init from inside, and every check still ended "raised").
        assert (privilege_report["pid1_program"], privilege_report["pid1_uid"]) == ("docker-init", "65534")
        assert privilege_report["kill_pid1"] == "ok"
    else:
        # bwrap, root's: out of the candidate's reach
        assert (privilege_report["pid1_program"], privilege_report["pid1_uid"]) == ("bwrap", "0")
        for probe in PROCESS_1:
            assert privilege_report[probe].startswith("denied"), f"{probe}: {privilege_report[probe]}"


def test_the_sandbox_runs_without_capabilities_or_network(privilege_report: dict[str, str]) -> None:
    assert privilege_report["uid"] == privilege_report["euid"] == "65534"
    assert privilege_report["CapEff"] == privilege_report["CapBnd"] == "0000000000000000"
    assert privilege_report["NoNewPrivs"] == "1"
    assert privilege_report["Seccomp"] == "2"  # a filter: ours (local) or the engine's default (Docker)
    assert privilege_report["interfaces"] == "lo"


def test_the_candidate_gets_no_more_cpu_time_than_the_limit_grants(privilege_report: dict[str, str]) -> None:
    # The worker may see every CPU, but a CPU quota (cgroup) caps the CPU time it gets:
    # a matrix product on 8 threads gets about cpu_threads CPU seconds per wall second.
    if (os.cpu_count() or 1) <= IOU.spec.limits.cpu_threads:
        pytest.skip("this machine has no more CPUs than the limit: nothing to show")
    assert float(privilege_report["cpu_per_wall"]) <= IOU.spec.limits.cpu_threads * 1.25, (
        f"a parallel matrix product got {privilege_report['cpu_per_wall']} CPU seconds per second "
        f"(allowed on {privilege_report['cpus_allowed']} CPUs)"
    )


def test_shadow_packages_beside_the_solution_change_nothing_that_is_imported(
    grade: GradeWith, private_tmp: Path
) -> None:
    graded = grade("shadow_packages")
    assert_verdict(graded, Verdict(100, ALL, passed=True))
    ran = [path.name for folder in (private_tmp, Path("/tmp")) for path in folder.glob("cvgrade-shadow-ran-*")]
    assert ran == [], f"shadow modules were imported: {ran}"


# ----------------------------------------------------------------------------- notebooks and archives


def test_notebook_shell_escapes_are_skipped_with_a_warning_and_the_code_still_graded(grade: GradeWith) -> None:
    graded = grade("shell_escapes.ipynb")
    assert_verdict(graded, Verdict(100, ALL, passed=True))
    feedback = "\n".join(graded.result.feedback)
    assert "cell 2: skipped shell command `!rm -rf / --no-preserve-root`" in feedback
    assert "cell 3: skipped cell magic `%%bash` (the whole cell)" in feedback
    assert "cell 4: skipped shell command `files = !ls /`" in feedback


def refuse(submission: Path) -> str:
    with pytest.raises(BadSubmission) as refused:
        grade_submission(submission, IOU, GradeOptions(backend="local", isolation="bwrap"))
    return str(refused.value)


@pytest.fixture
def nested_notebook(tmp_path: Path) -> Path:
    path = tmp_path / "nested.ipynb"
    path.write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return path


@pytest.mark.usefixtures("bwrap")
def test_a_malformed_notebook_is_refused_with_a_clear_message(nested_notebook: Path) -> None:
    assert "truncated_notebook.ipynb is not a valid Jupyter notebook" in refuse(
        SUBMISSIONS / "truncated_notebook.ipynb")
    assert "nested too deeply" in refuse(nested_notebook)
    cli = subprocess.run(
        [Path(sys.executable).parent / "cvgrade", "grade", SUBMISSIONS / "truncated_notebook.ipynb", "-c", "iou",
         "--backend", "local"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert cli.returncode == 2
    assert "not a valid Jupyter notebook" in cli.stdout + cli.stderr


@pytest.fixture
def archive_site(tmp_path: Path) -> Iterator[Path]:
    """A folder to build zips in, whose parent is watched for anything extracted outside."""
    site = tmp_path / "site" / "uploads"
    site.mkdir(parents=True)
    yield site
    assert sorted(path.name for path in (tmp_path / "site").iterdir()) == ["uploads"]
    assert sorted(path.name for path in site.iterdir()) == sorted(path.name for path in site.glob("*.zip"))


def make_zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0x10  # a symbolic link, as zip -y stores it
            info.create_system = 3
            archive.writestr(info, target)
    return path


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize(("entries", "links", "said"), [
    pytest.param({"solution.py": b"print('hi')\n", "../evil.py": b"import os\n"}, {},
                 "entry '../evil.py' points outside the archive", id="an entry climbing out with .."),
    pytest.param({"solution.py": b"print('hi')\n"}, {"passwd": "/etc/passwd"},
                 "entry 'passwd' is a symbolic link", id="a symbolic link to /etc/passwd"),
])
def test_a_hostile_zip_is_refused_and_nothing_is_extracted(
    archive_site: Path, private_tmp: Path, entries: dict[str, bytes], links: dict[str, str], said: str
) -> None:
    before = sorted(private_tmp.iterdir())
    message = refuse(make_zip(archive_site / "hostile.zip", entries, links))
    assert said in message and "hostile.zip" in message
    assert sorted(private_tmp.iterdir()) == before, "a refused zip left a workspace behind"


# ----------------------------------------------------------------------------- fairness: timing


def test_patched_clocks_do_not_hide_a_slow_solution(grade: GradeWith) -> None:
    graded = grade("patch_clocks.py")
    assert_verdict(graded, Verdict(90, ALL - {"box_iou_speed"}, failing_as=("timed_out", "failed")))
    assert graded.result.failed_gates == ["box_iou_speed"]


def test_a_slow_solution_that_caches_by_input_content_fails_the_speed_gate(grade: GradeWith) -> None:
    graded = grade("cache_by_content.py")
    assert_verdict(graded, Verdict(90, ALL - {"box_iou_speed"}, failing_as=("timed_out", "failed")))


def test_every_grading_of_this_module_cleaned_up_after_itself(private_tmp: Path, grader: Grader) -> None:
    # runs last in this module: nothing of any grading above is left, on disk, running, or in Docker
    assert processes_of_the_run(private_tmp, grader.earlier) == []
    # Gradings keep their folders in one private folder per user (cvgrade-UID, 0700), left in place
    # empty: whatever is in it, or beside it, was left behind.
    own = private_tmp / f"cvgrade-{os.getuid()}"
    left = [path.name for path in private_tmp.iterdir() if path.name.startswith("cvgrade-") and path != own]
    left += [f"{own.name}/{path.name}" for path in own.iterdir()] if own.is_dir() else []
    assert left == [], f"temporary folders left behind: {left}"
    with contextlib.suppress(SandboxUnavailable):
        assert containers_of_the_run(private_tmp) == []


# ----------------------------------------------------------------------------- Docker only


@pytest.fixture
def container_report(grade_in_docker: GradeWith) -> dict[str, str]:
    graded = grade_in_docker("probe_the_container.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    text = graded.check("box_iou_edge_cases").output
    body = text.split("container report\n", 1)[1].split("\nend of report", 1)[0]
    return dict(line.split(": ", 1) for line in body.splitlines())


def test_docker_the_root_file_system_and_every_mount_but_scratch_are_read_only(
    container_report: dict[str, str],
) -> None:
    for probe in ("write_etc", "write_usr", "write_opt", "write_var_tmp", "write_root", "write_etc_hosts",
                  "write_workspace", "write_control"):
        assert container_report[probe] == "denied (EROFS)", f"{probe}: {container_report[probe]}"
    for probe in ("write_dev", "write_cgroup_memory_max", "write_cgroup_procs", "mkdir_cgroup"):
        assert container_report[probe].startswith("denied"), f"{probe}: {container_report[probe]}"
    assert container_report["write_scratch"] == "ok"
    writable = set(container_report["writable_mounts"].split(","))
    # Scratch, and pseudo file systems whose every file is root's (or a masked /dev/null).
    assert {"/tmp", "/dev/shm"} <= writable <= {
        "/tmp", "/dev/shm", "/dev", "/dev/pts", "/dev/mqueue", "/proc", "/proc/keys", "/proc/timer_list",
        "/sys/fs/cgroup",
    }


def test_docker_only_the_containers_own_processes_are_in_view(container_report: dict[str, str]) -> None:
    names = [entry.split("=", 1)[1] for entry in container_report["processes"].split(",")]
    assert names == ["docker-init", "python"], container_report["processes"]
    assert container_report["processes"].startswith("1=docker-init,")
    assert container_report["pid1_cmdline"].startswith(
        "/sbin/docker-init -- /opt/cvgrade/venv/bin/python -I /opt/cvgrade/worker/candidate_worker.py ")
    assert container_report["pid1_uid"] == container_report["my_uid"] == "65534"


def test_docker_no_network_but_loopback(container_report: dict[str, str]) -> None:
    assert container_report["interfaces"] == "lo"
    assert container_report["routes"] == "none"


def test_docker_the_engine_is_out_of_sight_and_the_channel_takes_no_second_caller(
    container_report: dict[str, str], private_tmp: Path
) -> None:
    assert os.environ.get("DOCKER_HOST"), "the grader itself should know where the engine is"
    assert container_report["docker_env"] == "none"
    assert [key for key in container_report if key.startswith("exists ")]
    assert all(value == "False" for key, value in container_report.items() if key.startswith("exists "))
    # The only socket on disk is the judge's channel, and it refuses a second connection.
    assert container_report["socket_files"] == "/cvgrade/channel.sock"
    assert container_report["connect /cvgrade/channel.sock"] == "denied (ECONNREFUSED)"
    # The only socket in the container's network namespace is the judge's end of that channel,
    # named by the path the judge bound it to: in this user's short control folder, not in TMPDIR.
    assert re.fullmatch(rf"{re.escape(str(control_root()))}/(cvgrade-)?container-[\w.-]+/channel\.sock",
                        container_report["namespace_unix_sockets"])


@pytest.mark.usefixtures("docker")
def test_docker_grades_under_a_long_temporary_folder_path(
    private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The channel's socket would not fit the 107 bytes of a Unix socket address under this
    # TMPDIR: the control folders live in a short fixed folder instead (control_root()).
    long_tmp = private_tmp / ("long-" + "x" * 70)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    result = grade_submission(IOU_DIR / "reference" / "solution.py", IOU, GradeOptions(backend="docker"))
    assert (result.status, result.error) == ("graded", None), result.error
    assert result.score == 100
