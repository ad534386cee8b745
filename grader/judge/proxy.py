"""The ``candidate`` and ``reference`` fixtures: remote proxies for a submission.

``candidate.box_iou(a, b)`` sends the call to the sandboxed worker through a
``WorkerSession`` and returns plain data. Each call is limited by what is left
of the current check's time, so a check that times out fails alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.sandbox import Outcome
from harness.session import CallFailure, CallReply, WorkerSession


class CheckClock:
    """The deadline of the check that is running now, on the judge's monotonic clock."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.timeout_s: float = 0.0

    def remaining_s(self) -> float:
        if self.deadline is None:
            return 3600.0
        return self.deadline - time.monotonic()


class RemoteSolution:
    """Calls into one sandboxed solution. Attribute access returns a remote function."""

    def __init__(self, session: WorkerSession, clock: CheckClock, label: str) -> None:
        self._session = session
        self._clock = clock
        self._label = label

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
        hello = self._session.start()
        problem = hello.problems.get(function, "")
        if problem:
            raise CallFailure(Outcome.RAISED, problem)
        remaining = self._clock.remaining_s()
        check_limit = f"the check's time limit of {self._clock.timeout_s:.3g} s"
        if remaining <= 0:
            raise CallFailure(Outcome.TIMED_OUT, f"{check_limit} was used up before {function}() was called")
        limited_by_check = timeout_s is None or remaining < timeout_s
        effective = remaining if limited_by_check else float(timeout_s)  # type: ignore[arg-type]
        try:
            return self._session.call(function, list(args), kwargs, effective, echo_args=echo_args)
        except CallFailure as failure:
            if failure.outcome is Outcome.TIMED_OUT and limited_by_check:
                raise CallFailure(
                    Outcome.TIMED_OUT, f"{function}() did not finish within {check_limit}",
                    output=failure.output,
                ) from None
            raise

    def call(self, function: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """Call ``function`` remotely and return its value."""
        return self._request(function, args, kwargs, timeout_s).value

    def timed(
        self, function: str, *args: Any, timeout_s: float | None = None, **kwargs: Any
    ) -> tuple[Any, float]:
        """Call ``function`` remotely; return its value and the round trip in seconds (judge's clock)."""
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

    def __repr__(self) -> str:
        return f"<remote {self._label} solution>"


MAX_CHART_VALUES = 2000


class Recorder:
    """The ``record`` fixture: metrics and charts a check adds to the result."""

    def __init__(self) -> None:
        self.metrics: dict[str, float | str] = {}
        self.charts: list[dict[str, Any]] = []

    def metric(self, name: str, value: float | str) -> None:
        self.metrics[name] = value

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
