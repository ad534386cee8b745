"""The ``candidate`` and ``reference`` fixtures: remote proxies for a submission.

``candidate.box_iou(a, b)`` sends the call to the sandboxed worker through a
``WorkerSession`` and returns plain data. Each call is limited three ways: by
the limit the check passes (``timeout_s=``), else by the function's per-call
limit (``CallPolicy``: 20 times the reference's slowest call of it on this
machine, at least 5 s), and always by what is left of the check's time.

A function that overran its limit is not called again in later checks: they
fail at once with the same message, unless a check asks for a fresh worker
(``@pytest.mark.fresh_worker``). A hung ``box_iou`` then costs one limit, not
one check limit per check that uses it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from harness.sandbox import Outcome, SandboxUnavailable
from harness.session import CallFailure, CallReply, WorkerSession

CALL_LIMIT_RATIO = 20.0  # a call may take this many times the reference's slowest call of the function
MIN_CALL_LIMIT_S = 5.0  # ... and at least this long: start-up costs, a busy machine
CALL_KEY_PREFIX = "call_s."  # calibration keys of the reference's slowest call per function


class ReferenceFailure(SandboxUnavailable):
    """A call into the reference solution failed: our failure, never the candidate's (status ``error``)."""


class CheckClock:
    """The deadline and name of the check that is running now, on the judge's monotonic clock."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.timeout_s: float = 0.0
        self.check: str = ""
        # Set by the judge during a timed check: takes the machine-wide timing lock (once) before
        # the first timed call, and moves the deadline by the time spent waiting for it.
        self.before_timing: Callable[[], None] = lambda: None

    def remaining_s(self) -> float:
        if self.deadline is None:
            return 3600.0
        return self.deadline - time.monotonic()


@dataclass
class CallPolicy:
    """Per-call limits, and what overran them, for one solution over a whole judge run.

    ``reference_call_s`` gives the reference's slowest call of each function on this
    machine (calibrated), read once when first needed; functions without one get
    ``fallback_s`` (the challenge's ``call_timeout_s``), or only the check's own limit.
    ``slowest_s`` collects this run's slowest successful call per function, so a run
    grading the reference can store them.
    """

    reference_call_s: Callable[[], dict[str, float]] = dict
    fallback_s: float | None = None
    hung: dict[str, str] = field(default_factory=dict)  # function -> the message it failed with
    slowest_s: dict[str, float] = field(default_factory=dict)
    _limits: dict[str, float] | None = None

    def limit_s(self, function: str) -> float | None:
        if self._limits is None:
            self._limits = {
                name: max(MIN_CALL_LIMIT_S, CALL_LIMIT_RATIO * seconds)
                for name, seconds in self.reference_call_s().items()
            }
        return self._limits.get(function, self.fallback_s)

    def called(self, function: str, seconds: float) -> None:
        self.slowest_s[function] = max(seconds, self.slowest_s.get(function, 0.0))

    def forget_hangs(self) -> None:
        self.hung.clear()


class RemoteSolution:
    """Calls into one sandboxed solution. Attribute access returns a remote function."""

    def __init__(
        self, session: WorkerSession, clock: CheckClock, label: str, policy: CallPolicy | None = None,
        *, freeze_while_timed: Callable[[], AbstractContextManager[str]] | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self._label = label
        self._policy = policy or CallPolicy()
        # The reference's timed calls freeze the candidate's worker meanwhile, whatever the check does.
        self._freeze_while_timed = freeze_while_timed

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def remote(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, *args, **kwargs)

        remote.__name__ = name
        return remote

    def _request(
        self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        timeout_s: float | None, *, echo_args: bool = False,
    ) -> CallReply:
        if self._label != "reference":
            return self._limited_request(function, args, kwargs, timeout_s, echo_args=echo_args)
        try:
            return self._limited_request(function, args, kwargs, timeout_s, echo_args=echo_args)
        except CallFailure as failure:
            message = failure.message.replace("your solution", "the reference solution")
            raise ReferenceFailure(f"the reference solution failed, so this check cannot judge: {message}") from None

    def _limited_request(
        self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        timeout_s: float | None, *, echo_args: bool = False,
    ) -> CallReply:
        hung = self._policy.hung.get(function)
        if hung is not None:
            raise CallFailure(Outcome.TIMED_OUT, hung)
        hello = self._session.start()
        problem = hello.problems.get(function, "")
        if problem:
            raise CallFailure(Outcome.RAISED, problem)
        remaining = self._clock.remaining_s()
        check_limit = f"the check's time limit of {self._clock.timeout_s:.3g} s"
        if remaining <= 0:
            raise CallFailure(Outcome.TIMED_OUT, f"{check_limit} was used up before {function}() was called")
        limit = float(timeout_s) if timeout_s is not None else self._policy.limit_s(function)
        limited_by_check = limit is None or remaining < limit
        effective = remaining if limit is None or limited_by_check else limit
        try:
            reply = self._session.call(function, list(args), kwargs, effective, echo_args=echo_args)
        except CallFailure as failure:
            if failure.outcome is not Outcome.TIMED_OUT:
                raise
            within = check_limit if limited_by_check else f"{effective:.3g} s"
            message = f"{function}() did not return within {within}"
            if self._clock.check:
                message += f" in check {self._clock.check}"
            # A limit the check chose for this call (a speed check's) says "too slow here", not "hung".
            if timeout_s is None or limited_by_check:
                message += "; not called again"
                self._policy.hung[function] = message
            raise CallFailure(Outcome.TIMED_OUT, message, output=failure.output) from None
        self._policy.called(function, reply.seconds)
        return reply

    def call(self, function: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """Call ``function`` remotely and return its value."""
        return self._request(function, args, kwargs, timeout_s).value

    def timed(
        self, function: str, *args: Any, timeout_s: float | None = None, **kwargs: Any
    ) -> tuple[Any, float]:
        """Call ``function`` remotely; return its value and the round trip in seconds (judge's clock).

        In a check marked ``timed``, the first timed call takes the machine's timing lock
        (a function that hung fails before, without waiting for it). A timed call of the
        reference freezes the candidate's worker while it runs (see ``frozen``).
        """
        hung = self._policy.hung.get(function)
        if hung is not None and self._label != "reference":
            raise CallFailure(Outcome.TIMED_OUT, hung)
        self._clock.before_timing()
        if self._freeze_while_timed is None:
            reply = self._request(function, args, kwargs, timeout_s)
        else:
            with self._freeze_while_timed():
                reply = self._request(function, args, kwargs, timeout_s)
        return reply.value, reply.seconds

    def call_with_inputs(
        self, function: str, *args: Any, timeout_s: float | None = None, **kwargs: Any
    ) -> tuple[Any, list[Any]]:
        """Call ``function``; return its value and its positional arguments as left after the call."""
        reply = self._request(function, args, kwargs, timeout_s, echo_args=True)
        assert reply.args_after is not None
        return reply.value, reply.args_after

    def ping(self) -> float:
        """An empty round trip in seconds."""
        return self._session.ping(max(self._clock.remaining_s(), 0.001))

    def stop(self) -> None:
        """Kill this solution's worker and everything it started, now; a later call starts a fresh one.

        For checks that have what they need from the solution and measure something else
        (a model rebuilt from its output, say): none of its processes can then compete for
        the machine or change anything while they do.
        """
        self._session.close()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[str]:
        """Freeze this solution's worker (every process of it) for the block; yield what was done, in words.

        For timing the *other* side: while the reference or the original model is
        timed, the candidate is frozen, so nothing it left running competes. Where
        the backend cannot freeze, the block runs anyway and the words say why.
        """
        self._clock.before_timing()
        with self._session.frozen() as how:
            yield how

    def __repr__(self) -> str:
        return f"<remote {self._label} solution>"


MAX_CHART_VALUES = 2000


class Recorder:
    """The ``record`` fixture: metrics and charts a check adds to the result."""

    def __init__(self) -> None:
        self.metrics: dict[str, float | str] = {}
        self.charts: list[dict[str, Any]] = []
        self.on_progress: Callable[[str], None] = lambda text: None

    def metric(self, name: str, value: float | str) -> None:
        self.metrics[name] = value

    def progress(self, text: str) -> None:
        """Say how a long check is getting on ("round 12, about 20 s left"); shown on a terminal, never scored."""
        self.on_progress(text)

    def distribution(
        self, title: str, values: Sequence[float], *, unit: str, target: float | None = None,
        baseline: Sequence[float] | None = None, label: str = "submission", baseline_label: str = "baseline",
    ) -> None:
        """Samples to draw as a distribution (latencies), against a target line and a baseline's samples."""
        self.charts.append({
            "kind": "distribution", "title": title, "unit": unit, "label": label,
            "values": _finite(values), "target": target, "baseline": _finite(baseline or []),
            "baseline_label": baseline_label,
        })

    def gauge(
        self, title: str, value: float, *, threshold: float, unit: str = "",
        higher_is_better: bool = True, maximum: float | None = None,
    ) -> None:
        """One figure against its threshold (accuracy against the gate, time used against the budget)."""
        self.charts.append({
            "kind": "gauge", "title": title, "unit": unit, "value": float(value), "threshold": float(threshold),
            "higher_is_better": higher_is_better, "maximum": maximum,
        })


def _finite(values: Sequence[float]) -> list[float]:
    """At most MAX_CHART_VALUES finite floats, evenly thinned when there are more."""
    kept = [float(v) for v in values if math.isfinite(float(v))]
    if len(kept) > MAX_CHART_VALUES:
        step = len(kept) / MAX_CHART_VALUES
        kept = [kept[int(i * step)] for i in range(MAX_CHART_VALUES)]
    return kept
