"""Entry point of the judge process: ``python -m grader.judge.runner SPEC.json``.

The grader starts this process with a spec it wrote to a private folder. The
judge starts the candidate's worker (and the reference's, when checks ask for
it) through the harness, runs pytest over the checks with ``JudgePlugin``, and
writes its record of each check to ``records_path``. Its exit code only says
whether the judge itself worked; verdicts live in the records.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

# Only light modules here: the workers are launched before torch and pytest are
# imported, so that their start-up overlaps with ours.
from harness.backends import make_sandbox
from harness.sandbox import Limits, WorkerSpec

EXIT_OK = 0
EXIT_JUDGE_FAILED = 3


def worker_spec(data: dict[str, Any], label: str) -> WorkerSpec:
    return WorkerSpec(
        workspace=Path(data["workspace"]),
        entry=data.get("entry"),
        cells=data.get("cells"),
        functions=data["functions"],
        limits=Limits(**data["limits"]),
        label=label,
        assets=Path(data["assets"]) if data.get("assets") else None,
        adapter=data.get("adapter"),
    )


def run(spec: dict[str, Any]) -> int:
    started = time.monotonic()
    sandbox = make_sandbox(spec["sandbox"])
    candidate_spec = worker_spec(spec["candidate"], "candidate")
    reference_spec = worker_spec(spec["reference"], "reference") if spec.get("reference") else None
    launched = [sandbox.start(candidate_spec)]
    if reference_spec is not None:
        launched.append(sandbox.start(reference_spec))

    import pytest

    from grader.judge.plugin import JudgePlugin
    from grader.judge.timing import registered_judge
    from harness.session import WorkerSession

    candidate = WorkerSession(sandbox, candidate_spec)
    candidate.adopt(launched[0])
    reference = None
    if reference_spec is not None:
        reference = WorkerSession(sandbox, reference_spec)
        reference.adopt(launched[1])

    def stop(signum: int, frame: FrameType | None) -> None:
        candidate.close()
        if reference is not None:
            reference.close()
        raise SystemExit(EXIT_JUDGE_FAILED)

    signal.signal(signal.SIGTERM, stop)
    plugin = JudgePlugin(
        records_path=Path(spec["records_path"]),
        timeouts_s=spec["timeouts_s"],
        default_timeout_s=spec["default_timeout_s"],
        run_deadline=started + spec["run_timeout_s"],
        hidden=spec["hidden"],
        candidate=candidate,
        reference=reference,
        timed_tests=frozenset(spec.get("timed_tests", [])),
        calibration=_calibration_settings(spec, candidate_spec),
        timing_resource=_timing_resource(sandbox),
        check_names=spec.get("check_names", {}),
        call_timeout_s=spec.get("call_timeout_s"),
    )
    tests_dir = Path(spec["tests_dir"])
    ini = Path(spec["records_path"]).parent / "judge-pytest.ini"
    ini.write_text("[pytest]\n")
    args = [
        "-c", str(ini), "--rootdir", str(tests_dir), "-p", "no:cacheprovider",
        "--import-mode=importlib", "-q", "--no-header", "-rN",
        "--assert=plain" if spec["hidden"] else "--assert=rewrite",
    ]
    selection = spec.get("selection")
    args += [str(tests_dir / node) for node in selection] if selection else [str(tests_dir)]
    try:
        with registered_judge():
            code = pytest.main(args, plugins=[plugin])
    finally:
        candidate.close()
        if reference is not None:
            reference.close()
    # pytest's own codes: 0 all passed, 1 some failed, 5 none collected; others are our problem.
    return EXIT_OK if code in (0, 1) else EXIT_JUDGE_FAILED


def _timing_resource(sandbox: object) -> str:
    """Timed checks lock the GPU this grading leased, or the host's CPUs when it has none."""
    index = getattr(sandbox, "gpu_index", None)
    return f"gpu{index}" if isinstance(index, int) else "cpu"


def _calibration_settings(spec: dict[str, Any], candidate: WorkerSpec) -> Any:
    """Hidden runs get a calibration cache; only a run grading the reference itself may write it."""
    if not spec["hidden"] or not spec.get("challenge"):
        return None
    from grader.judge.plugin import CalibrationSettings

    return CalibrationSettings(
        root=Path(spec["calibration_dir"]),
        challenge_id=spec["challenge"]["id"],
        version=spec["challenge"]["version"],
        cpu_threads=candidate.limits.cpu_threads,
        backend=str(spec["sandbox"].get("backend", "")),
        writable=bool(spec.get("calibration_writable", False)),
    )


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    sys.exit(run(spec))


if __name__ == "__main__":
    main()
