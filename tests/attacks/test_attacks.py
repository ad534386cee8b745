"""Hostile submissions, graded by the real grader, get the verdict a fair grader gives.

Each file or folder in ``submissions/`` cheats in one of the ways listed in ATTACKS.md (its
docstring says which, and what a fair grader must do). Every grading here is a real one:
``grade_submission`` with the shipped ``iou`` challenge, its hidden checks and reference,
under bubblewrap. A submission is graded once per run and several tests may read the result.

After each grading the suite looks for anything the run left behind: a process whose command
line carries a submission's marker (``sleep 987.6543``), a process whose command line or
mount table names the private temporary folder the gradings of this module run in (every
sandboxed process, whatever its user, has the workspace of its run in its mount table), or
a child of this test process. (A plain scan for uid 65534 is not used: other gradings on the
same machine legitimately run as that user.) Every grading also runs with a secret in the
grader's environment, and every result is searched for it and for the hidden checks' text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.challenge import Challenge, load_challenge
from grader.errors import BadSubmission
from grader.grading import GradeOptions, grade_submission, run_public_checks
from grader.results import GradeResult
from grader.results import TestResult as CheckResult  # not Test*: pytest would try to collect it

pytestmark = pytest.mark.usefixtures("bwrap")

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

    @property
    def json(self) -> str:
        return self.result.model_dump_json()

    def check(self, name: str) -> CheckResult:
        return next(test for test in self.result.tests if test.name == name)

    @property
    def passing(self) -> frozenset[str]:
        return frozenset(test.name for test in self.result.tests if test.status == "passed")


def processes_of_the_run(private_tmp: Path) -> list[str]:
    """Live processes that belong to this module's gradings (see the module docstring)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
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
        if MARKER in cmdline or ours or (parent and int(parent.group(1)) == os.getpid()):
            found.append(f"pid {entry.name} uid {user.group(1) if user else '?'}: {cmdline[:160]}")
    return found


class Grader:
    """Grades each submission once, then waits up to 3 s for the run's processes to be gone."""

    def __init__(self, private_tmp: Path) -> None:
        self.private_tmp = private_tmp
        self._done: dict[tuple[str, str, bool], Graded] = {}

    def __call__(self, submission: str | Path, *, challenge: Challenge = IOU, practice: bool = False) -> Graded:
        path = submission if isinstance(submission, Path) else SUBMISSIONS / submission
        key = (str(path), str(challenge.root), practice)
        if key not in self._done:
            run = run_public_checks if practice else grade_submission
            result = run(path, challenge, GradeOptions(backend="local", isolation="bwrap"))
            deadline = time.monotonic() + 3.0
            while (leftovers := processes_of_the_run(self.private_tmp)) and time.monotonic() < deadline:
                time.sleep(0.1)
            self._done[key] = Graded(result, leftovers)
        return self._done[key]


@pytest.fixture(scope="module")
def private_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The grader's temporary folder (workspaces, judge, workers) and a secret in its environment."""
    folder = tmp_path_factory.mktemp("grading-tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        patch.setenv(SECRET_NAME, SECRET_VALUE)
        yield folder


@pytest.fixture(scope="module")
def grade(private_tmp: Path) -> Grader:
    return Grader(private_tmp)


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


def test_the_reference_gets_full_marks(grade: Grader) -> None:
    graded = grade(IOU_DIR / "reference" / "solution.py")
    assert_verdict(graded, Verdict(100, ALL, passed=True))
    assert graded.result.exit_code == 0


def test_the_starter_scores_nothing(grade: Grader) -> None:
    graded = grade(IOU_DIR / "starter" / "solution.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    assert graded.result.exit_code == 1 and set(graded.result.failed_gates) == GATES


# ----------------------------------------------------------------------------- integrity


@pytest.mark.parametrize(("submission", "expected"), [
    pytest.param("exit_at_import.py", Verdict(0, failing_as=("import_failed",)), id="os._exit(0) at import"),
    pytest.param("exit_in_call.py", Verdict(40, NMS, failing_as=("crashed",)), id="os._exit(0) in box_iou"),
])
def test_exiting_early_with_a_success_message_scores_nothing(grade: Grader, submission: str, expected: Verdict) -> None:
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
    grade: Grader, submission: str, outcome: str, names: tuple[str, ...]
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
    grade: Grader, planted_zip: Path, private_tmp: Path, submission: str
) -> None:
    graded = grade(planted_zip if submission.endswith(".zip") else submission)
    # IoU 0.5 everywhere and no box kept: wrong wherever it is compared; it does leave its inputs alone
    assert_verdict(graded, Verdict(7, INPUTS))
    ran = [path.name for folder in (private_tmp, Path("/tmp")) for path in folder.glob("cvgrade-plant-ran-*")]
    assert ran == [], f"planted files ran outside the sandbox: {ran}"


def test_values_that_fake_equality_are_refused(grade: Grader) -> None:
    graded = grade("always_equal_objects.py")
    assert_verdict(graded, Verdict(0, failing_as=("bad_value",)))
    assert "subclass of torch.Tensor (AlwaysEqualTensor)" in graded.check("box_iou_random").output
    for kind in ("AlwaysEqualInt", "AlwaysEqualList", "AlwaysEqualArray"):
        assert kind in outputs(graded, NMS)


@pytest.mark.parametrize(("submission", "expected", "said"), [
    pytest.param("nan_and_inf.py", Verdict(47, NMS | INPUTS), ("NaN", "infinite"), id="NaN and Inf"),
    pytest.param("shapes_and_dtypes.py", Verdict(42, NMS - {"nms_empty_and_dtype"} | INPUTS),
                 ("expected shape (14, 14), got (1,)", "expected shape (300, 200), got (60000,)",
                  "expected dtype torch.int64, got torch.int32"),
                 id="one-element broadcast, flattened, int32 indices"),
])
def test_nan_inf_broadcasting_and_wrong_dtypes_fail_the_checks_they_target(
    grade: Grader, submission: str, expected: Verdict, said: tuple[str, ...]
) -> None:
    graded = grade(submission)
    assert_verdict(graded, expected)
    for words in said:
        assert words in outputs(graded)


def test_mutating_the_inputs_so_a_later_reference_agrees_gains_nothing(grade: Grader) -> None:
    graded = grade("mutate_inputs.py")
    assert_verdict(graded, Verdict(0))
    assert "box_iou changed its input boxes1" in graded.check("inputs_unchanged").output


def test_the_judges_expected_values_are_not_in_the_workers_frames_or_memory(grade: Grader) -> None:
    graded = grade("peek_at_the_judge.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    report = graded.check("nms_empty_and_dtype").output  # the last check: after every scan
    assert "judge_tensors_found=0" in report
    assert "caller_files=candidate_worker.py,solution.py " in report


def test_the_worker_looks_the_same_when_graded_and_when_practising(grade: Grader) -> None:
    graded = grade("detect_the_grader.py")
    practice = grade("detect_the_grader.py", practice=True)
    # its first call reports what it sees; every later call is honest unless it detected grading
    assert_verdict(graded, Verdict(88, ALL - {"box_iou_edge_cases"}, failing_as=("raised",)))
    report = r"suspicious=(\S+) fingerprint=(\w+)"
    seen_graded = re.search(report, graded.check("box_iou_edge_cases").output)
    seen_practice = re.search(report, "\n".join(test.output for test in practice.result.tests))
    assert seen_graded and seen_practice
    assert seen_graded.group(1) == seen_practice.group(1) == "none"
    assert seen_graded.group(2) == seen_practice.group(2), "graded and practice workers can be told apart"
    assert practice.result.status == "graded" and practice.leftovers == []


# ----------------------------------------------------------------------------- confidentiality


def test_hidden_checks_the_reference_and_secrets_stay_out_of_the_sandbox(grade: Grader) -> None:
    graded = grade("hunt_for_secrets.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised", "failed")))  # nms returns what it read
    report = graded.check("box_iou_edge_cases").output
    assert "grading_material=none" in report
    pids = re.search(r"visible_pids=(\d+) ", report)
    assert pids is not None and int(pids.group(1)) <= 3  # the sandbox's init, the worker, its child
    assert "pytest" not in report and "grader.judge" not in report  # no judge among them
    assert "mem={1: 'denied" in report
    env_keys = re.search(r"env_keys=(\[[^\]]*\])", report)
    assert env_keys is not None
    assert set(json.loads(env_keys.group(1).replace("'", '"'))) <= {
        "PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PWD", "LC_CTYPE",
    }


# ----------------------------------------------------------------------------- availability


def iou_with_short_check_limits(root: Path, limit_s: float, names: frozenset[str]) -> Challenge:
    """The shipped iou challenge with a shorter time limit on some checks, so the suite stays quick."""
    target = root / "iou"
    shutil.copytree(IOU_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (target / "challenge.toml").read_text()
    for name in names:
        line = f'name = "{name}"\n'
        assert toml.count(line) == 1
        toml = toml.replace(line, f"{line}timeout_s = {limit_s}\n")
    (target / "challenge.toml").write_text(toml)
    return load_challenge(target)


def test_a_call_that_never_returns_times_out_and_the_other_checks_still_report(
    grade: Grader, tmp_path: Path
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
    grade: Grader, submission: str, expected: Verdict, said: str
) -> None:
    graded = grade(submission)
    assert_verdict(graded, expected)
    assert said in outputs(graded, ALL - expected.passing)
    assert len(graded.json) < 200_000, "the result carries too much of the candidate's output"


def test_a_fork_storm_is_capped_and_every_child_is_killed(grade: Grader) -> None:
    graded = grade("fork_storm.py")
    assert_verdict(graded, Verdict(88, ALL - {"box_iou_edge_cases"}, failing_as=("raised",)))
    storm = re.search(r"started (\d+) processes, then: Resource temporarily unavailable",
                      graded.check("box_iou_edge_cases").output)
    assert storm is not None and int(storm.group(1)) < IOU.spec.limits.max_processes


def test_a_thread_storm_and_512_torch_threads_are_capped_and_the_grader_stays_healthy(grade: Grader) -> None:
    graded = grade("oversubscribe_threads.py")
    assert_graded_fairly(graded)
    assert not graded.result.passed
    failing = [test for test in graded.result.tests if test.status == "failed"]
    assert failing and {test.outcome for test in failing} <= {"crashed", "import_failed"}
    started = re.search(r"threads_started=(\d+) stopped_by=can't start new thread", outputs(graded))
    assert started is not None and int(started.group(1)) < IOU.spec.limits.max_processes


def test_filling_scratch_space_and_descriptors_stays_inside_the_sandbox(grade: Grader) -> None:
    graded = grade("exhaust_files_and_scratch.py")
    assert_verdict(graded, Verdict(95, ALL - {"nms_empty_and_dtype"}, failing_as=("raised",), passed=True))
    report = graded.check("nms_empty_and_dtype").output
    assert f"tmp={IOU.spec.limits.scratch_mb}MiB then ENOSPC" in report
    assert re.search(r"shm=\d+MiB then ENOSPC", report)
    assert "workspace=0MiB then EROFS" in report
    assert re.search(r"fds=\d+ then EMFILE", report)


def test_fake_result_files_and_daemons_neither_count_nor_survive(grade: Grader, private_tmp: Path) -> None:
    graded = grade("fake_results_and_daemons.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    places = [private_tmp, Path("/tmp"), Path.cwd(), Path.home()]
    planted = [str(folder / name) for folder in places for name in ("results.json", "junit.xml", "report.xml")
               if (folder / name).is_file() and "check_0" in (folder / name).read_text(errors="replace")]
    assert planted == [], f"fake result files reached the grading machine: {planted}"


def test_killing_every_process_it_can_reaches_only_its_own(grade: Grader) -> None:
    graded = grade("kill_everything.py")
    assert_verdict(graded, Verdict(88, ALL - {"box_iou_edge_cases"}, failing_as=("crashed",)))
    assert "killed by SIGKILL" in graded.check("box_iou_edge_cases").output
    assert graded.result.metrics["worker_starts"] == 2


def test_closing_the_judges_channel_is_an_import_failure_not_our_error(grade: Grader) -> None:
    graded = grade("close_the_channel.py")
    assert_verdict(graded, Verdict(0, failing_as=("import_failed",)))
    assert graded.result.exit_code == 1


# ----------------------------------------------------------------------------- isolation


@pytest.fixture(scope="module")
def privilege_report(grade: Grader) -> dict[str, str]:
    graded = grade("probe_privileges.py")
    assert_verdict(graded, Verdict(0, failing_as=("raised",)))
    text = graded.check("box_iou_edge_cases").output
    return dict(re.findall(r"^(?:fact )?(\w+)[:=] ?([^\n(]*\S)", text.split("(/workspace")[0], re.MULTILINE))


DENIED = ["setuid0", "setgid0", "seteuid0", "unshare_mount", "unshare_net", "ptrace_pid1", "mount_tmpfs",
          "chroot", "sethostname", "nice_minus", "kill_pid1", "raw_socket", "packet_socket", "connect_loopback_22",
          "write_usr", "write_workspace", "write_runtime", "read_shadow", "read_dev_mem", "read_kmsg",
          "docker_socket", "read_pid1_mem"]


@pytest.mark.parametrize("probe", [
    *DENIED,
    "unshare_user",
    "userns_then_mount",
    "keyctl",  # the user keyring of uid 65534 would be shared by every sandbox on the machine
])
def test_privileged_operations_are_denied_in_the_sandbox(privilege_report: dict[str, str], probe: str) -> None:
    assert privilege_report[probe].startswith("denied"), f"{probe}: {privilege_report[probe]}"


def test_the_sandbox_runs_without_capabilities_or_network(privilege_report: dict[str, str]) -> None:
    assert privilege_report["uid"] != "0" and privilege_report["euid"] != "0"
    assert privilege_report["CapEff"] == privilege_report["CapBnd"] == "0000000000000000"
    assert privilege_report["NoNewPrivs"] == "1"
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
    grade: Grader, private_tmp: Path
) -> None:
    graded = grade("shadow_packages")
    assert_verdict(graded, Verdict(100, ALL, passed=True))
    ran = [path.name for folder in (private_tmp, Path("/tmp")) for path in folder.glob("cvgrade-shadow-ran-*")]
    assert ran == [], f"shadow modules were imported: {ran}"


# ----------------------------------------------------------------------------- notebooks and archives


def test_notebook_shell_escapes_are_skipped_with_a_warning_and_the_code_still_graded(grade: Grader) -> None:
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


def test_a_malformed_notebook_is_refused_with_a_clear_message(nested_notebook: Path) -> None:
    assert "truncated_notebook.ipynb is not a valid Jupyter notebook" in refuse(
        SUBMISSIONS / "truncated_notebook.ipynb")
    assert "nested too deeply" in refuse(nested_notebook)
    cli = subprocess.run(
        [Path(sys.executable).parent / "cvgrade", "grade", SUBMISSIONS / "truncated_notebook.ipynb", "-c", "iou"],
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


def test_patched_clocks_do_not_hide_a_slow_solution(grade: Grader) -> None:
    graded = grade("patch_clocks.py")
    assert_verdict(graded, Verdict(90, ALL - {"box_iou_speed"}, failing_as=("timed_out", "failed")))
    assert graded.result.failed_gates == ["box_iou_speed"]


def test_a_slow_solution_that_caches_by_input_content_fails_the_speed_gate(grade: Grader) -> None:
    graded = grade("cache_by_content.py")
    assert_verdict(graded, Verdict(90, ALL - {"box_iou_speed"}, failing_as=("timed_out", "failed")))


def test_every_grading_of_this_module_cleaned_up_after_itself(grade: Grader, private_tmp: Path) -> None:
    # runs last in this module: nothing of any grading above is left, on disk or running
    assert processes_of_the_run(private_tmp) == []
    left = [path.name for path in private_tmp.iterdir() if path.name.startswith("cvgrade-")]
    assert left == [], f"temporary folders left behind: {left}"

