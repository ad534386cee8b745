"""The judge's pytest plugin: fixtures, per-check deadlines and the judge's own record.

The verdict comes only from what this plugin writes to the records file, which
lives where the candidate cannot reach. A check counts as passed only when its
setup and call both passed here; skipped, xfailed, crashed and missing checks
are failures. Messages for hidden checks carry the check's own assertion
message, never pytest's introspection of hidden expressions and values.

The records file also carries progress lines (``kind: progress``: a check
starting, a timed check's own progress) that the grader shows on a terminal
while the judge runs.

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
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.calibration import Calibration, CalibrationCache, machine_description
from grader.judge.contracts import (
    CalibrationRecord,
    CheckRecord,
    JudgeRecord,
    ProgressRecord,
    SessionRecord,
    StartedRecord,
    record_line,
)
from grader.judge.proxy import (
    CALL_KEY_PREFIX,
    CallPolicy,
    CheckClock,
    Recorder,
    ReferenceFailure,
    RemoteSolution,
)
from grader.judge.timing import (
    TIMING_TRIES,
    TimingInconclusive,
    backoff_s,
    exclusive_timing,
    load_average,
    other_judges_running,
    timing_lock_busy,
)
from harness.sandbox import CPU_DEVICE, SandboxUnavailable
from harness.session import CallFailure, WorkerSession

CHECK_KEY_PREFIX = "check_s."  # calibration keys of how long each check took on the reference
FRESH_WORKER_MARKER = "fresh_worker"

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
        check_names: dict[str, str] | None = None,
        call_timeout_s: float | None = None,
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
        self._check_names = check_names or {}
        self._candidate_calls = CallPolicy(self._reference_call_times, call_timeout_s)
        self._reference_calls = CallPolicy(self._reference_call_times, call_timeout_s)
        self._recorder.on_progress = self._progress
        self._durations_s: dict[str, float] = {}
        self._total = 0
        self._started_checks = 0
        self._timing_lock: contextlib.ExitStack | None = None
        self._max_reply_bytes = max_reply_bytes or {}
        self._default_max_reply_bytes = default_max_reply_bytes
        self._held_back_tests = held_back_tests
        self._saw_held_back_data = False
        self._next_item: pytest.Item | None = None
        self._fresh_worker_for: str | None = None  # the check whose fresh worker was started after the last one

    # Workers are started by the runner before pytest is even imported, from the
    # main thread: bubblewrap's --die-with-parent is tied to the thread that
    # started it, so a worker must never be started from a short-lived thread.

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line(
            "markers", f"{FRESH_WORKER_MARKER}: run this check in a newly started worker, in which "
            "functions that overran their limit in earlier checks are called again",
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._total = len(session.items)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        stored = self._store_reference_times()
        calibration = self._calibration
        hello = self._candidate.hello
        self._write(SessionRecord(
            # What the candidate's worker says about itself: its claim, never a fact of the result.
            candidate_claims=_plain_json({"versions": hello.versions, "device": hello.device} if hello else {}),
            worker_starts=self._candidate.stats.starts,
            reference_worker_starts=self._reference.stats.starts if self._reference is not None else 0,
            failures=dict(self._candidate.stats.failures),
            device=self._device(),
            calibration=CalibrationRecord.model_validate(
                _plain_json({"machine": calibration.machine, "values": calibration.used, "stored": stored}))
            if calibration is not None and (calibration.used or stored) else None,
        ))
        self._candidate.close()
        if self._reference is not None:
            self._reference.close()
        self._records.close()

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def candidate(self) -> RemoteSolution:
        return RemoteSolution(self._candidate, self._clock, "candidate", self._candidate_calls)

    @pytest.fixture
    def reference(self) -> RemoteSolution:
        if self._reference is None:
            raise RuntimeError("the reference solution is not available to public tests")
        return RemoteSolution(self._reference, self._clock, "reference", self._reference_calls,
                              freeze_while_timed=self._candidate.frozen)

    @pytest.fixture
    def record(self) -> Recorder:
        return self._recorder

    @pytest.fixture
    def calibration(self) -> Calibration:
        """Figures measured on the reference on this machine (see ``grader.calibration``)."""
        return self._machine_calibration()

    def _machine_calibration(self) -> Calibration:
        if self._calibration is None:
            settings = self._calibration_settings
            if settings is None:
                raise RuntimeError("calibration is only available to hidden checks")
            # Without a GPU the sandbox's own plan says what the workers compute on. With one, the
            # reference's worker says which GPU it is: the candidate's could lie.
            if self._timing_resource == "cpu":
                device = dict(CPU_DEVICE)
            else:
                trusted = self._reference if self._reference is not None else self._candidate
                device = dict(trusted.start().device)
            machine = machine_description(device, settings.cpu_threads, settings.backend)
            cache = CalibrationCache(settings.root, settings.challenge_id, settings.version, machine)
            self._calibration = Calibration(cache, writable=settings.writable, isolate=self._isolated_candidate)
        return self._calibration

    @contextlib.contextmanager
    def _isolated_candidate(self) -> Iterator[str]:
        """While the reference is calibrated, no process of the candidate's may run: frozen, else stopped."""
        with self._candidate.frozen(stop_if_unfreezable=True) as how:
            yield how

    def _cached_figures(self) -> dict[str, float]:
        """This machine's calibrated figures; empty for public runs or when nothing is cached."""
        if self._calibration_settings is None:
            return {}
        try:
            return self._machine_calibration().cached()
        except (CallFailure, SandboxUnavailable):
            return {}

    def _reference_call_times(self) -> dict[str, float]:
        """The reference's slowest call of each function on this machine, when calibrated."""
        return {key[len(CALL_KEY_PREFIX):]: value for key, value in self._cached_figures().items()
                if key.startswith(CALL_KEY_PREFIX)}

    def _store_reference_times(self) -> dict[str, float]:
        """A run grading the reference stores its slowest calls (per-call limits) and check durations (ETAs).

        Returns every figure of this machine stored by this run (the checks' own included).
        """
        settings = self._calibration_settings
        if settings is None or not settings.writable or not self._candidate_calls.slowest_s:
            return {}
        figures = {f"{CALL_KEY_PREFIX}{name}": round(seconds, 6)
                   for name, seconds in self._candidate_calls.slowest_s.items()}
        figures.update({f"{CHECK_KEY_PREFIX}{name}": round(seconds, 3) for name, seconds in self._durations_s.items()})
        try:
            calibration = self._machine_calibration()
            calibration.store(figures)
        except (CallFailure, SandboxUnavailable, OSError):
            return {}
        for key, used in calibration.used.items():
            if used.get("source") == "measured":
                figures[key] = used["value"]
        return figures

    def _progress(self, text: str) -> None:
        """A timed check's own progress line (``record.progress``), for the terminal."""
        self._write(ProgressRecord(check=self._clock.check, text=text[:200]))

    def _device(self) -> dict[str, str | int]:
        """The device as the reference's worker (ours) saw it, or the CPU where no GPU was leased; else nothing."""
        if self._reference is not None and self._reference.hello is not None:
            return dict(self._reference.hello.device)
        return dict(CPU_DEVICE) if self._timing_resource == "cpu" else {}

    # ------------------------------------------------------------------ running checks

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if time.monotonic() > self._run_deadline:
            self._write(CheckRecord(
                nodeid=_short_id(item), passed=False, outcome="timed_out",
                message="not run: the whole run's time limit was reached",
                saw_held_back_data=self._saw_held_back_data,
            ))
            return True
        self._clock.deadline = None  # set when the check's body starts; see pytest_runtest_call
        self._next_item = nextitem
        self._clock.check = self._check_names.get(_short_id(item), item.name)
        self._recorder.metrics = {}
        self._recorder.charts = []
        self._phases[item.nodeid] = {"started": time.monotonic()}
        if item.get_closest_marker(FRESH_WORKER_MARKER) is not None:
            self._candidate_calls.forget_hangs()
            if self._fresh_worker_for != item.nodeid:
                self._candidate.close()  # the next call starts a new worker
        self._fresh_worker_for = None
        self._started_checks += 1
        self._write(ProgressRecord(check=self._clock.check, index=self._started_checks, total=self._total,
                                   estimate_s=self._estimate_left_s(item)))
        limit = self._max_reply_bytes.get(_short_id(item), self._default_max_reply_bytes)
        if limit is not None:
            for session in (self._candidate, self._reference):
                if session is not None:
                    session.set_reply_limit(limit)
        if _short_id(item) in self._held_back_tests:
            self._saw_held_back_data = True  # for the rest of the grading: the worker may keep what it saw
        self._write(StartedRecord(nodeid=_short_id(item)))
        return None

    def _estimate_left_s(self, item: pytest.Item) -> float | None:
        """How long this check and the ones after it took on the reference on this machine, if known."""
        durations = {key[len(CHECK_KEY_PREFIX):]: value for key, value in self._cached_figures().items()
                     if key.startswith(CHECK_KEY_PREFIX)}
        items = list(item.session.items)
        remaining = [self._check_names.get(_short_id(other), other.name) for other in items[items.index(item):]]
        if not durations or any(name not in durations for name in remaining):
            return None
        return round(sum(durations[name] for name in remaining), 1)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, None]:
        """Start the check's clock; a timed check takes the machine-wide timing lock at its first timed call,
        and with it moves this grading's workers onto the cores kept for timed work.

        The clock starts after the fixtures are ready, so that importing the
        submission (limited by its own setup time limit) is not charged to the
        check; nor is waiting for the timing lock (the deadline moves by the wait).
        Untimed work of a timed check (preparing a model) runs before the lock.
        """
        timed = _short_id(item) in self._timed_tests
        timeout = self._timeouts_s.get(_short_id(item), self._default_timeout_s)
        self._clock.timeout_s = timeout
        self._clock.deadline = time.monotonic() + timeout
        if timed:
            self._clock.before_timing = self._take_timing_lock
        try:
            yield
        finally:
            self._clock.before_timing = lambda: None
            self._release_timing_lock()

    def _take_timing_lock(self) -> None:
        if self._timing_lock is not None:
            return
        # A worker started between checks may still be loading: that ends before anything is timed.
        for session in (self._candidate, self._reference):
            if session is not None:
                session.settle()
        waiting_since = time.monotonic()
        if timing_lock_busy(self._timing_resource):
            self._progress("waiting for another grading's timed check to end (timed checks never overlap)")
        lock = contextlib.ExitStack()
        lock.enter_context(exclusive_timing(self._timing_resource))
        if self._timed_cores is not None:
            lock.enter_context(self._timed_cores())
        self._timing_lock = lock
        waited_s = time.monotonic() - waiting_since
        if self._clock.deadline is not None:
            self._clock.deadline += waited_s
        self._recorder.metrics["timed_alongside_other_gradings"] = other_judges_running()
        self._recorder.metrics["timed_on"] = self._timing_resource
        self._recorder.metrics["waited_for_timing_lock_s"] = round(
            float(self._recorder.metrics.get("waited_for_timing_lock_s", 0.0)) + waited_s, 2)

    def _release_timing_lock(self) -> None:
        lock, self._timing_lock = self._timing_lock, None
        if lock is not None:
            lock.close()

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """Run a timed check's body, again while it says ``TimingInconclusive`` (see grader.judge.timing).

        Each try and the load seen before it go in the check's metrics; the last try's
        exception stands when no try decided.
        """
        if _short_id(pyfuncitem) not in self._timed_tests:
            return None
        arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        tries: list[str] = []
        while True:
            load = load_average()
            started = time.monotonic()
            try:
                pyfuncitem.obj(**arguments)
            except TimingInconclusive as inconclusive:
                took_s = time.monotonic() - started
                tries.append(f"inconclusive after {took_s:.0f} s at load {load}: {_first_line(str(inconclusive))}")
                self._note_tries(tries, decided=False)
                wait_s = backoff_s(len(tries))
                left_s = min(self._clock.remaining_s(), self._run_deadline - time.monotonic())
                if len(tries) >= TIMING_TRIES or left_s < wait_s + took_s:
                    raise TimingInconclusive(
                        f"{inconclusive} (tried {len(tries)} time(s); load average {load_average()})"
                    ) from None
                self._progress(f"try {len(tries)} was inconclusive (load {load}); trying again in {wait_s:.0f} s")
                self._release_timing_lock()  # other gradings may time meanwhile; the next try takes it again
                time.sleep(wait_s)
                self._forget_try()
                continue
            tries.append(f"decided after {time.monotonic() - started:.0f} s at load {load}")
            self._note_tries(tries, decided=True)
            return True

    def _forget_try(self) -> None:
        """What an inconclusive try recorded (figures, charts) gives way to the next try's; the tries stay."""
        kept = ("timing_", "timed_", "waited_for_timing_lock_s")
        self._recorder.metrics = {key: value for key, value in self._recorder.metrics.items() if key.startswith(kept)}
        self._recorder.charts = []

    def _note_tries(self, tries: list[str], *, decided: bool) -> None:
        self._recorder.metrics["timing_tries"] = len(tries)
        self._recorder.metrics["timing_decided"] = "yes" if decided else "no"
        for number, line in enumerate(tries, start=1):
            self._recorder.metrics[f"timing_try_{number}"] = line

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
        if isinstance(error, TimingInconclusive):
            return {"message": str(error), "detail": "", "outcome": "inconclusive", "infrastructure": True}
        if isinstance(error, ReferenceFailure):
            return {"message": str(error), "detail": "", "outcome": "error", "infrastructure": True}
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
        waited_s = float(self._recorder.metrics.get("waited_for_timing_lock_s", 0.0))
        self._durations_s[self._clock.check] = time.monotonic() - state["started"] - waited_s
        self._write(CheckRecord(
            nodeid=_short_id(item),
            passed=bool(state.get("passed", False)),
            outcome=str(state.get("outcome", "failed")),
            message=_cut(str(state.get("message", "the check did not report")), MAX_MESSAGE_CHARS),
            detail=_cut(str(state.get("detail", "")), MAX_DETAIL_CHARS, keep_end=True),
            infrastructure=bool(state.get("infrastructure", False)),
            duration_s=round(time.monotonic() - state["started"], 4),
            metrics=_plain_json(_capped_metrics(self._recorder.metrics)),
            charts=_plain_json(list(self._recorder.charts)),
            saw_held_back_data=self._saw_held_back_data,
        ))
        self._start_what_the_next_check_needs()

    def _start_what_the_next_check_needs(self) -> None:
        """Between two checks, start the next check's worker now if it will need a new one.

        A worker lost in this check (a time-out, a crash, a breach) is replaced, and a check
        that asks for a fresh worker gets it, here rather than at the next check's first
        call: the start-up (the sandbox, Python, torch, the submission's import) overlaps
        with the next check's own work. It is the same start, for the same submission; the
        last check starts nothing, and whatever was started and not used is killed when the
        grading ends. Timed checks wait for such a start to finish before timing anything
        (``_take_timing_lock``). A start that fails here is tried again at the next call,
        which reports it.
        """
        nextitem, self._next_item = self._next_item, None
        if nextitem is None or time.monotonic() > self._run_deadline:
            return
        with contextlib.suppress(SandboxUnavailable):
            if nextitem.get_closest_marker(FRESH_WORKER_MARKER) is not None:
                self._candidate.restart()
                self._fresh_worker_for = nextitem.nodeid
            else:
                self._candidate.replace_lost_worker()
            if self._reference is not None:
                self._reference.replace_lost_worker()

    def _write(self, record: JudgeRecord) -> None:
        self._records.write(record_line(record))
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


def _plain_json(value: object) -> Any:
    """``value`` as plain JSON types (a check may record a numpy float or a tuple), as the records file holds it."""
    return json.loads(json.dumps(value))


def _output_block(output: str) -> str:
    return f"--- output of the solution (last lines) ---\n{output}" if output.strip() else ""
