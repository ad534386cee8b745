"""The judge's pytest plugin: fixtures, per-check deadlines and the judge's own record.

The verdict comes only from what this plugin writes to the records file, which
lives where the candidate cannot reach. A check counts as passed only when its
setup and call both passed here; skipped, xfailed, crashed and missing checks
are failures. Messages for hidden checks carry the check's own assertion
message, never pytest's introspection of hidden expressions and values.

Every text a record holds is cut to a fixed length here, whatever the worker
or the check produced. A record says whether the candidate's worker had been
handed held-back data by then (``saw_held_back_data``: a check marked
``held_back_data`` ran, this one or an earlier one), so that the candidate's
feedback can withhold text the solution could have filled with that data. A
``started`` record precedes each check's own: if the judge is killed in the
middle (its memory limit), the grader knows which check was running.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.calibration import Calibration, CalibrationCache, machine_description
from grader.judge.proxy import CheckClock, Recorder, RemoteSolution
from grader.judge.timing import exclusive_timing, other_judges_running
from harness.sandbox import SandboxUnavailable
from harness.session import CallFailure, WorkerSession

MAX_MESSAGE_CHARS = 2000
MAX_DETAIL_CHARS = 4000  # the end of the traceback and of the output
MAX_METRICS = 64
MAX_METRIC_CHARS = 200


@dataclass(frozen=True)
class CalibrationSettings:
    """Where calibrated figures live and whether this run may store them (only when grading the reference)."""

    root: Path
    challenge_id: str
    version: str
    cpu_threads: int
    backend: str
    writable: bool


class JudgePlugin:
    """Registered by ``grader.judge.runner``; one instance per judge run."""

    def __init__(
        self,
        *,
        records_path: Path,
        timeouts_s: dict[str, float],
        default_timeout_s: float,
        run_deadline: float,
        hidden: bool,
        candidate: WorkerSession,
        reference: WorkerSession | None,
        timed_tests: frozenset[str] = frozenset(),
        calibration: CalibrationSettings | None = None,
        timing_resource: str = "cpu",
        max_reply_bytes: dict[str, int] | None = None,
        default_max_reply_bytes: int | None = None,
        held_back_tests: frozenset[str] = frozenset(),
        timed_cores: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self._records = records_path.open("a", encoding="utf-8")
        self._timeouts_s = timeouts_s
        self._default_timeout_s = default_timeout_s
        self._run_deadline = run_deadline
        self._hidden = hidden
        self._candidate = candidate
        self._reference = reference
        self._clock = CheckClock()
        self._recorder = Recorder()
        self._phases: dict[str, dict[str, Any]] = {}
        self._timed_tests = timed_tests
        self._calibration_settings = calibration
        self._timing_resource = timing_resource  # "cpu", or "gpu<N>" when this grading leased GPU N
        self._timed_cores = timed_cores  # moves this grading's workers onto the timed cores (harness.cores)
        self._calibration: Calibration | None = None
        self._max_reply_bytes = max_reply_bytes or {}
        self._default_max_reply_bytes = default_max_reply_bytes
        self._held_back_tests = held_back_tests
        self._saw_held_back_data = False

    # Workers are started by the runner before pytest is even imported, from the
    # main thread: bubblewrap's --die-with-parent is tied to the thread that
    # started it, so a worker must never be started from a short-lived thread.

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        hello = self._candidate.hello
        self._write({
            "kind": "session",
            # What the candidate's worker says about itself: its claim, never a fact of the result.
            "candidate_claims": {"versions": hello.versions, "device": hello.device} if hello else {},
            "worker_starts": self._candidate.stats.starts,
            "failures": dict(self._candidate.stats.failures),
            "device": self._device(),
            "calibration": {"machine": self._calibration.machine, "values": self._calibration.used}
            if self._calibration is not None and self._calibration.used else None,
        })
        self._candidate.close()
        if self._reference is not None:
            self._reference.close()
        self._records.close()

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def candidate(self) -> RemoteSolution:
        return RemoteSolution(self._candidate, self._clock, "candidate")

    @pytest.fixture
    def reference(self) -> RemoteSolution:
        if self._reference is None:
            raise RuntimeError("the reference solution is not available to public tests")
        return RemoteSolution(self._reference, self._clock, "reference")

    @pytest.fixture
    def record(self) -> Recorder:
        return self._recorder

    @pytest.fixture
    def calibration(self) -> Calibration:
        """Figures measured on the reference on this machine (see ``grader.calibration``)."""
        if self._calibration is None:
            settings = self._calibration_settings
            if settings is None:
                raise RuntimeError("calibration is only available to hidden checks")
            # The reference's sandbox says what the machine offers: the candidate's could lie.
            trusted = self._reference if self._reference is not None else self._candidate
            device = dict(trusted.start().device)
            machine = machine_description(device, settings.cpu_threads, settings.backend)
            cache = CalibrationCache(settings.root, settings.challenge_id, settings.version, machine)
            self._calibration = Calibration(cache, writable=settings.writable)
        return self._calibration

    def _device(self) -> dict[str, str | int]:
        """The device as the reference's worker (ours) saw it; nothing when only the candidate's ran."""
        if self._reference is not None and self._reference.hello is not None:
            return dict(self._reference.hello.device)
        return {}

    # ------------------------------------------------------------------ running checks

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if time.monotonic() > self._run_deadline:
            self._write({
                "kind": "check", "nodeid": _short_id(item), "passed": False,
                "outcome": "timed_out", "duration_s": 0.0, "metrics": {},
                "message": "not run: the whole run's time limit was reached", "detail": "",
                "infrastructure": False, "saw_held_back_data": self._saw_held_back_data,
            })
            return True
        self._clock.deadline = None  # set when the check's body starts; see pytest_runtest_call
        self._recorder.metrics = {}
        self._recorder.charts = []
        self._phases[item.nodeid] = {"started": time.monotonic()}
        limit = self._max_reply_bytes.get(_short_id(item), self._default_max_reply_bytes)
        if limit is not None:
            for session in (self._candidate, self._reference):
                if session is not None:
                    session.set_reply_limit(limit)
        if _short_id(item) in self._held_back_tests:
            self._saw_held_back_data = True  # for the rest of the grading: the worker may keep what it saw
        self._write({"kind": "started", "nodeid": _short_id(item)})
        return None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, None]:
        """Start the check's clock; a timed check first takes the machine-wide timing lock, then moves
        this grading's workers onto the cores kept for timed work.

        The clock starts after the fixtures are ready, so that importing the
        submission (limited by its own setup time limit) and waiting for the lock
        are not charged to the check.
        """
        timed = _short_id(item) in self._timed_tests
        on_timed_cores = self._timed_cores if timed and self._timed_cores is not None else contextlib.nullcontext
        with exclusive_timing(self._timing_resource) if timed else contextlib.nullcontext(), on_timed_cores():
            if timed:
                self._recorder.metrics["timed_alongside_other_gradings"] = other_judges_running()
                self._recorder.metrics["timed_on"] = self._timing_resource
            timeout = self._timeouts_s.get(_short_id(item), self._default_timeout_s)
            self._clock.timeout_s = timeout
            self._clock.deadline = time.monotonic() + timeout
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        state = self._phases.setdefault(item.nodeid, {"started": time.monotonic()})
        if report.when == "call" or (report.when == "setup" and not report.passed):
            state["passed"] = report.passed and not hasattr(report, "wasxfail")
            state.update(self._explain(report, call))
        if report.when == "teardown":
            self._finish(item, state)

    def _explain(self, report: pytest.TestReport, call: pytest.CallInfo[None]) -> dict[str, Any]:
        if report.passed and not hasattr(report, "wasxfail"):
            return {"message": "", "detail": "", "outcome": "ok", "infrastructure": False}
        if report.skipped or hasattr(report, "wasxfail"):
            return {"message": "the check was skipped; skipped checks count as failed",
                    "detail": "", "outcome": "skipped", "infrastructure": False}
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, CallFailure):
            detail = "\n".join(part for part in (error.detail, _output_block(error.output)) if part)
            return {"message": error.message, "detail": detail,
                    "outcome": str(error.outcome), "infrastructure": False}
        if isinstance(error, MemoryError):  # the judge's own limit (rlimits), reached handling the solution's values
            return {"message": "the judge ran out of memory handling what the solution returned: return less data",
                    "detail": "", "outcome": "out_of_memory", "infrastructure": False}
        if isinstance(error, SandboxUnavailable):
            return {"message": f"the sandbox failed: {error}", "detail": "",
                    "outcome": "error", "infrastructure": True}
        if not self._hidden:
            return {"message": _first_line(str(error)) if error else "check failed",
                    "detail": report.longreprtext, "outcome": "failed", "infrastructure": False}
        if isinstance(error, AssertionError):
            message = str(error).strip() or "the check's condition did not hold"
            return {"message": message, "detail": "", "outcome": "failed", "infrastructure": False}
        # Any other exception in a hidden check: name it, but do not print hidden values.
        name = type(error).__name__ if error is not None else "an error"
        return {"message": f"the check could not use the solution's result ({name})",
                "detail": "", "outcome": "failed", "infrastructure": False}

    def _finish(self, item: pytest.Item, state: dict[str, Any]) -> None:
        self._clock.deadline = None
        self._write({
            "kind": "check",
            "nodeid": _short_id(item),
            "passed": bool(state.get("passed", False)),
            "outcome": state.get("outcome", "failed"),
            "message": _cut(str(state.get("message", "the check did not report")), MAX_MESSAGE_CHARS),
            "detail": _cut(str(state.get("detail", "")), MAX_DETAIL_CHARS, keep_end=True),
            "infrastructure": bool(state.get("infrastructure", False)),
            "duration_s": round(time.monotonic() - state["started"], 4),
            "metrics": _capped_metrics(self._recorder.metrics),
            "charts": list(self._recorder.charts),
            "saw_held_back_data": self._saw_held_back_data,
        })

    def _write(self, record: dict[str, Any]) -> None:
        self._records.write(json.dumps(record) + "\n")
        self._records.flush()


def _short_id(item: pytest.Item) -> str:
    """``test_file.py::test_name`` relative to the checks folder."""
    path = Path(str(item.path)).name
    return f"{path}::{item.name}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "check failed"


def _cut(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3):] if keep_end else text[:limit - 3] + "..."


def _capped_metrics(metrics: dict[str, float | str]) -> dict[str, float | str]:
    """At most MAX_METRICS metrics; a text value (a check may record what the solution said) cut short."""
    return {_cut(str(name), MAX_METRIC_CHARS): _cut(value, MAX_METRIC_CHARS) if isinstance(value, str) else value
            for name, value in list(metrics.items())[:MAX_METRICS]}


def _output_block(output: str) -> str:
    return f"--- output of the solution (last lines) ---\n{output}" if output.strip() else ""
