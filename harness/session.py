"""A conversation with one candidate worker: start it, call it, time it, restart it.

Everything the worker says is untrusted: replies are decoded as plain data, and
every way a call can end badly becomes a ``CallFailure`` with an ``Outcome``.
Timings are taken here, on the judge's clock, around the whole round trip: the
candidate's code cannot reach this clock.

The worker's own caps run in the candidate's process, where one assignment
undoes them, so every bound that protects the judge is applied here, to what
arrives: the reply's size (``set_reply_limit``: each check says how much it
expects), the header's size and its number of values before decoding (see
``harness.wire.Reader``), and the length of every text field of an error, of
the output tail and of the greeting. What the greeting says about the worker
itself (versions, device) is the candidate's claim, kept short.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness import wire
from harness.sandbox import (
    ExitInfo,
    FreezeUnavailable,
    Outcome,
    Sandbox,
    SandboxUnavailable,
    WorkerProcess,
    WorkerSpec,
)

GREETING_GRACE_S = 0.5
# Loading Python, numpy and torch in a fresh worker, before any of the candidate's code runs:
# about 2 s; far longer only on a machine that is overloaded. Not the candidate's time.
RUNTIME_START_S = 180.0

# Bounds on what the judge decodes from a worker, whatever its limits say.
MAX_HEADER_BYTES = 4 << 20  # the JSON part of a reply: values of note travel as tensor bytes
MAX_VALUES = 250_000  # JSON values in a reply, counted before decoding (a few tens of MB decoded)
MAX_GREETING_BYTES = 1 << 20
# Lengths of the text fields of a reply, cut by the judge.
MAX_TYPE_CHARS = 120
MAX_MESSAGE_CHARS = 2000
MAX_LOCATION_CHARS = 300
MAX_TRACEBACK_CHARS = 4000  # the end of it: where the exception was raised
MAX_OUTPUT_CHARS = 4000  # the end of what the worker printed
MAX_PROBLEM_CHARS = 300
MAX_CLAIMS = 16  # entries kept of what the worker says about itself (versions, device)
MAX_CLAIM_CHARS = 64


class CallFailure(Exception):
    """A call into the candidate did not return a usable value."""

    def __init__(self, outcome: Outcome, message: str, *, detail: str = "", output: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.detail = detail  # the candidate's own traceback, safe to show the candidate
        self.output = output  # the tail of what the worker printed


@dataclass
class Hello:
    """What the worker reported after importing the submission, capped by the judge.

    ``versions`` and ``device`` are the worker's claims about itself: a candidate's
    worker can say anything there, so only a trusted worker's (the reference's) are
    facts.
    """

    problems: dict[str, str]  # function name -> "" when usable, else what is wrong
    warnings: list[str]
    versions: dict[str, str]
    device: dict[str, str | int] = field(default_factory=dict)  # what the worker can compute on


@dataclass
class CallReply:
    value: Any
    seconds: float
    args_after: list[Any] | None = None


@dataclass
class SessionStats:
    starts: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class WorkerSession:
    """Owns at most one live worker for ``spec``; restarts it after a failure."""

    def __init__(self, sandbox: Sandbox, spec: WorkerSpec, *, cuda_device: str | None = None) -> None:
        """``cuda_device``: where replies' CUDA tensors go in this process (its own GPU); None: the CPU."""
        self._sandbox = sandbox
        self._spec = spec
        self._cuda_device = cuda_device
        self._reply_limit = spec.limits.max_message_bytes
        self._worker: WorkerProcess | None = None
        self._reader: wire.Reader | None = None
        self._import_failure: CallFailure | None = None
        self.hello: Hello | None = None
        self.stats = SessionStats()
        self._setup_deadline = 0.0
        self._runtime_deadline = 0.0
        self._runtime_ready = False
        self._frozen = False
        self._shut = False  # shut down for good: no worker starts again
        self._lost = False  # the last worker was lost to a failure (not closed on purpose) and not replaced yet
        # Held while a worker is started or killed: shut_down waits for either, in another thread.
        self._lifecycle = threading.RLock()

    # ------------------------------------------------------------------ lifecycle

    def adopt(self, worker: WorkerProcess, *, hand_submission: bool = False) -> None:
        """Take over a worker that was started already (to overlap its start-up with ours).

        ``hand_submission``: the worker was started before its submission was known
        (``WorkerSpec.awaits_submission``, from a spec like this session's but without its
        entry and cells), so send them now. Its runtime and setup limits count from here, as
        for a worker started now. A worker that cannot take them (it died waiting) is
        discarded, and the first call starts a fresh one, as for any other.
        """
        self._discard()
        self._attach(worker)
        if not hand_submission:
            return
        handed = {"op": "submission", "entry": self._spec.entry, "cells": self._spec.cells}
        try:
            wire.write_message(worker.request_fd, handed, self._runtime_deadline)
        except (wire.ChannelTimeout, wire.ChannelClosed, OSError):
            self._discard()
            self.stats.starts -= 1  # it never ran the submission: not a start of this grading's

    def _attach(self, worker: WorkerProcess) -> None:
        self._worker = worker
        self._lost = False
        self.hello = None
        self.stats.starts += 1
        self._runtime_deadline = time.monotonic() + RUNTIME_START_S
        self._runtime_ready = False
        self._setup_deadline = self._runtime_deadline + self._spec.limits.setup_timeout_s
        flags = fcntl.fcntl(worker.request_fd, fcntl.F_GETFL)
        fcntl.fcntl(worker.request_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._reader = wire.Reader(
            worker.reply_fd, max_message_bytes=MAX_GREETING_BYTES, max_header_bytes=MAX_HEADER_BYTES,
            max_values=MAX_VALUES, cuda_device=self._cuda_device,
        )

    def set_reply_limit(self, max_bytes: int) -> None:
        """The most bytes a reply may have from now on (a check sets what it expects); the greeting keeps its own."""
        self._reply_limit = min(max_bytes, self._spec.limits.max_message_bytes)

    def start(self) -> Hello:
        """Start a worker if none is running and wait for its greeting.

        Raises the import failure (remembered: the submission is not imported
        again) if the submission cannot be loaded within its setup time limit.
        """
        if self._import_failure is not None:
            raise self._import_failure
        if self._frozen:
            raise RuntimeError("a call into a frozen worker: thaw it first")
        if self._worker is not None and self.hello is not None and self._worker.alive():
            return self.hello
        # A worker that greeted and died since is replaced. One that has not greeted yet is read
        # first, even if it has exited: its greeting (an import failure, say) may be waiting.
        if self._worker is None or (self.hello is not None and not self._worker.alive()):
            self._discard()
            with self._lifecycle:
                if self._shut:
                    raise SandboxUnavailable("the judge is stopping: no worker starts now")
                self._attach(self._sandbox.start(self._spec))
        limit_s = self._spec.limits.setup_timeout_s
        try:
            reply = self._runtime_greeting()
            if reply.get("phase") == "runtime":
                # The worker had its setup time from its start; a greeting that came in time may have
                # waited in the channel since (the first call came late: an earlier check used only the
                # other solution, or a timed check waited for the machine's timing lock), so it is
                # read even when the deadline has passed.
                deadline = max(self._setup_deadline, time.monotonic() + GREETING_GRACE_S)
                reply = self._receive(deadline, "importing your solution", limit_s,
                                      max_bytes=MAX_GREETING_BYTES)
        except CallFailure as failure:
            if failure.outcome is not Outcome.IMPORT_FAILED:
                # Limit breaches keep their names; a crash or garbage while importing is an import failure.
                kept = (Outcome.TIMED_OUT, Outcome.OUT_OF_MEMORY, Outcome.OUTPUT_LIMIT)
                failure = CallFailure(
                    failure.outcome if failure.outcome in kept else Outcome.IMPORT_FAILED,
                    f"your solution could not be imported: {failure.message}",
                    detail=failure.detail, output=failure.output,
                )
            self._import_failure = failure
            raise failure from None
        problems = reply.get("functions")
        warnings = reply.get("warnings")
        versions = reply.get("versions")
        if not isinstance(problems, dict) or not isinstance(warnings, list):
            raise self._fail(Outcome.BAD_VALUE, "the worker sent a malformed greeting")
        wanted = [function["name"] for function in self._spec.functions]
        self.hello = Hello(
            # Only the functions asked for, each in a sentence of bounded length.
            problems={name: _cut(problems.get(name, ""), MAX_PROBLEM_CHARS) for name in wanted if name in problems},
            warnings=[_cut(warning, MAX_PROBLEM_CHARS) for warning in warnings[:20]],
            versions=_claims(versions),
            device=_plain_device(reply.get("device")),
        )
        return self.hello

    def replace_lost_worker(self) -> bool:
        """Start the replacement of a worker this session lost to a failure (a time-out, a crash, a breach) now,
        not at the next call.

        Its start-up (the sandbox, Python, torch, the submission's import) then overlaps with
        the judge's own work until that call; its greeting waits in the channel and is read
        there, as for a worker started early. It is the same start as any other: the same
        spec, sandbox, limits and mounts, for the same submission, and never another's. Only
        a loss counts: a worker closed on purpose (a check that stopped it so that nothing of
        it runs while something else is measured, a calibration that could not freeze it)
        stays stopped until a call needs it, and a session that is frozen, shut, or whose
        submission failed to import starts nothing. Returns whether it started one; ``close``
        kills it, used or not.
        """
        with self._lifecycle:
            if not self._lost or self._shut or self._frozen or self._import_failure is not None:
                return False
            self._attach(self._sandbox.start(self._spec))
            return True

    def restart(self) -> None:
        """Kill the worker and start a new one now (a check that asks for a fresh worker)."""
        with self._lifecycle:
            self._discard()
            if self._shut or self._import_failure is not None:
                return
            self._attach(self._sandbox.start(self._spec))

    @property
    def starting(self) -> bool:
        """Whether a worker was started and has not greeted yet (its start-up may still be running)."""
        return self._worker is not None and self.hello is None and self._import_failure is None

    def settle(self) -> None:
        """Wait for a starting worker's greeting, so that nothing of its start-up runs beside a timed call.

        An import failure is remembered for the next call, as ``start`` does; nothing
        happens when no worker is starting, or while it is frozen (it runs nothing then).
        """
        if self.starting and not self._frozen:
            with contextlib.suppress(CallFailure):
                self.start()

    def _runtime_greeting(self) -> dict[str, Any]:
        """The worker's first word: its runtime is loaded (``phase: runtime``), and the solution's import starts.

        The solution's setup limit counts from the moment that word is read (at the
        latest): a machine too busy to load Python and torch within ``RUNTIME_START_S``
        is our failure (``SandboxUnavailable``), never a slow import of the candidate's.
        """
        if self._runtime_ready:
            return {"ok": True, "phase": "runtime"}
        deadline = max(self._runtime_deadline, time.monotonic() + GREETING_GRACE_S)
        try:
            reply = self._receive(deadline, "loading Python and torch in the worker", RUNTIME_START_S,
                                  max_bytes=MAX_GREETING_BYTES)
        except CallFailure as failure:
            if failure.outcome is Outcome.TIMED_OUT:
                raise SandboxUnavailable(
                    f"the worker did not finish loading Python and torch within {RUNTIME_START_S:g} s, before any "
                    "of the solution's code ran: this machine is overloaded (or its disk is very slow)"
                ) from None
            raise
        if reply.get("phase") == "runtime":
            self._runtime_ready = True
            self._setup_deadline = min(self._setup_deadline, time.monotonic() + self._spec.limits.setup_timeout_s)
        return reply

    def close(self) -> None:
        """Kill the worker and everything it started; on purpose, so nothing replaces it before a call needs one."""
        self._discard()
        self._lost = False

    def shut_down(self, wait_s: float = 30.0) -> None:
        """Kill the worker for good, from any thread: no worker starts after this.

        A start or a kill under way in another thread (a container being created or removed)
        is waited for, up to ``wait_s``, and a started worker killed too: nothing this session
        started outlives it.
        """
        self._shut = True
        acquired = self._lifecycle.acquire(timeout=wait_s)
        try:
            self._discard()
        finally:
            if acquired:
                self._lifecycle.release()

    @property
    def running(self) -> bool:
        """Whether a worker is alive right now (a later call would otherwise start one)."""
        return self._worker is not None and self._worker.alive()

    @contextlib.contextmanager
    def frozen(self, *, stop_if_unfreezable: bool = False) -> Iterator[str]:
        """Freeze this session's worker for the block; yield what was done, in words, for the result.

        ``frozen (cgroup v1 freezer)``, ``frozen (docker pause)``; ``not running`` when no
        worker is alive. Where the backend cannot freeze: with ``stop_if_unfreezable`` the
        worker is stopped (the next call starts a fresh one) and the words say so; else
        ``not frozen: <why>``. Calls into a frozen session are a judge bug (RuntimeError).
        Nested blocks leave the worker frozen until the outermost ends.
        """
        if self._frozen:  # nested (a timed reference call inside a frozen phase): frozen already
            yield "frozen"
            return
        worker = self._worker
        if worker is None or not worker.alive():
            yield "not running"
            return
        try:
            how = worker.freeze()
        except FreezeUnavailable as err:
            if stop_if_unfreezable:
                self._discard()
                self._lost = False  # stopped on purpose: nothing of it may run while the other side is measured
                yield f"stopped (it could not be frozen: {err})"
            else:
                yield f"not frozen: {err}"
            return
        self._frozen = True
        try:
            yield f"frozen ({how})"
        finally:
            self._frozen = False
            worker.thaw()

    def _discard(self, grace_s: float = 0.0) -> ExitInfo | None:
        with self._lifecycle:  # a kill under way in another thread ends before shut_down returns
            worker, self._worker, self._reader = self._worker, None, None
            return worker.kill(grace_s) if worker is not None else None

    # ------------------------------------------------------------------ calls

    def call(
        self,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any],
        timeout_s: float,
        *,
        echo_args: bool = False,
    ) -> CallReply:
        """Call ``function`` in the worker; raise ``CallFailure`` unless it returned a usable value.

        ``echo_args``: also bring back the positional arguments as the worker
        holds them after the call (to check the candidate left them alone).
        The reply's ``seconds`` is the round trip, measured on this process's clock.
        """
        self.start()
        request = {"op": "call", "function": function, "args": args, "kwargs": kwargs,
                   "echo_args": echo_args}
        reply, elapsed = self._round_trip(request, f"{function}()", timeout_s)
        args_after = reply.get("args_after") if echo_args else None
        if echo_args and not isinstance(args_after, list):
            raise self._fail(Outcome.BAD_VALUE, f"{function}() sent a malformed reply")
        return CallReply(value=reply.get("value"), seconds=elapsed, args_after=args_after)

    def ping(self, timeout_s: float = 10.0) -> float:
        """An empty round trip; returns its duration in seconds."""
        self.start()
        _, elapsed = self._round_trip({"op": "ping"}, "an empty call", timeout_s)
        return elapsed

    def _round_trip(
        self, request: dict[str, Any], what: str, timeout_s: float
    ) -> tuple[dict[str, Any], float]:
        assert self._worker is not None
        deadline = time.monotonic() + timeout_s
        started = time.perf_counter()
        try:
            wire.write_message(self._worker.request_fd, request, deadline)
        except wire.ChannelTimeout:
            raise self._fail(Outcome.TIMED_OUT, f"{what} did not accept its input within {timeout_s:.3g} s") from None
        except wire.ChannelClosed:
            raise self._died(what) from None
        reply = self._receive(deadline, what, timeout_s)
        elapsed = time.perf_counter() - started
        if reply.get("ok") is True:
            return reply, elapsed
        error = reply.get("error")
        if not isinstance(error, dict):
            raise self._fail(Outcome.BAD_VALUE, "the worker sent a malformed reply")
        kind, message, detail, location = _error_fields(error)
        if kind == "UnsupportedValue":
            raise CallFailure(Outcome.BAD_VALUE, f"{what} returned {message}", output=self._output())
        if kind == "MemoryError":
            raise CallFailure(Outcome.OUT_OF_MEMORY, f"{what} ran out of memory (MemoryError)",
                              detail=detail, output=self._output())
        where = f" ({location})" if location else ""
        said = f": {message}" if message else ""
        raise CallFailure(Outcome.RAISED, f"{what} raised {kind}{said}{where}",
                          detail=detail, output=self._output())

    def _receive(self, deadline: float, what: str, timeout_s: float, *, max_bytes: int | None = None) -> dict[str, Any]:
        assert self._reader is not None
        self._reader.max_message_bytes = self._reply_limit if max_bytes is None else max_bytes
        try:
            reply = self._reader.read(deadline)
        except wire.ChannelTimeout:
            raise self._fail(Outcome.TIMED_OUT, f"{what} did not finish within {timeout_s:.3g} s") from None
        except wire.ChannelClosed:
            raise self._died(what) from None
        except wire.ProtocolError as err:
            raise self._fail(Outcome.BAD_VALUE, f"{what} sent a reply the judge cannot accept: {err}") from None
        except MemoryError:
            # The judge's own memory limit (rlimits): the reply is the candidate's, and so is the breach.
            raise self._fail(Outcome.OUT_OF_MEMORY, f"{what} sent a reply too large for the judge's memory "
                                                    "limit: return less data") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise self._fail(Outcome.BAD_VALUE, f"{what} sent a malformed reply")
        if reply.get("phase") == "import" and reply["ok"] is False:
            error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
            assert isinstance(error, dict)
            kind, message, detail, location = _error_fields(error)
            where = f" ({location})" if location else ""
            failure = CallFailure(
                Outcome.IMPORT_FAILED,
                f"your solution could not be imported: {kind}: {message}{where}",
                detail=detail, output=self._output(),
            )
            self._import_failure = failure
            self._discard()
            raise failure
        return reply

    # ------------------------------------------------------------------ failures

    def _output(self) -> str:
        return _cut(self._worker.output(), MAX_OUTPUT_CHARS, keep_end=True) if self._worker is not None else ""

    def _fail(self, outcome: Outcome, message: str) -> CallFailure:
        output = self._output()
        exit_info = self._discard()
        self._lost = exit_info is not None
        if outcome is Outcome.TIMED_OUT and exit_info is not None and exit_info.out_of_memory:
            # A process of the worker hit the memory cap and was killed by the kernel while the call
            # waited (a child, say, or on a loaded machine before the worker itself went): that, not
            # the time, is what went wrong.
            outcome = Outcome.OUT_OF_MEMORY
            message = (f"{message}; meanwhile its processes used more than {self._spec.limits.memory_mb} MB "
                       "of memory and the kernel stopped one of them")
        self.stats.failures[outcome] = self.stats.failures.get(outcome, 0) + 1
        return CallFailure(outcome, message, output=output)

    def _died(self, what: str) -> CallFailure:
        """The worker went away during ``what``: find out why, from outside."""
        output = self._output()
        exit_info = self._discard(grace_s=1.0)
        self._lost = exit_info is not None
        if exit_info is None:
            return CallFailure(Outcome.CRASHED, f"the worker was gone during {what}")
        if exit_info.output_limit:
            outcome, message = Outcome.OUTPUT_LIMIT, (
                f"{what} printed more than {self._spec.limits.max_output_bytes} bytes"
            )
        elif exit_info.out_of_memory:
            outcome, message = Outcome.OUT_OF_MEMORY, (
                f"{what} used more than {self._spec.limits.memory_mb} MB of memory"
            )
        elif exit_info.signal:
            outcome, message = Outcome.CRASHED, (
                f"the solution's process was killed by {_signal_name(exit_info.signal)} during {what}"
            )
        elif exit_info.returncode is not None:
            outcome, message = Outcome.CRASHED, (
                f"the solution's process exited with code {exit_info.returncode} during {what}"
            )
        else:
            outcome, message = Outcome.CRASHED, f"the solution's process stopped during {what}"
        self.stats.failures[outcome] = self.stats.failures.get(outcome, 0) + 1
        return CallFailure(outcome, message, output=output)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _cut(value: Any, limit: int, *, keep_end: bool = False) -> str:
    """A text field of a reply as a string of at most ``limit`` characters ("" when it is not a string)."""
    if not isinstance(value, str) or len(value) <= limit:
        return value if isinstance(value, str) else ""
    return "..." + value[-(limit - 3):] if keep_end else value[:limit - 3] + "..."


def _error_fields(error: dict[str, Any]) -> tuple[str, str, str, str]:
    """Type, message, traceback (its end) and location of a worker's error, each cut to its length."""
    kind = _cut(error.get("type"), MAX_TYPE_CHARS) or "Exception"
    return (kind, _cut(error.get("message"), MAX_MESSAGE_CHARS),
            _cut(error.get("traceback"), MAX_TRACEBACK_CHARS, keep_end=True),
            _cut(error.get("location"), MAX_LOCATION_CHARS))


def _claims(versions: Any) -> dict[str, str]:
    """What the worker says it runs: at most MAX_CLAIMS short strings (a claim, not a fact)."""
    if not isinstance(versions, dict):
        return {}
    return {_cut(key, MAX_CLAIM_CHARS): _cut(value, MAX_CLAIM_CHARS)
            for key, value in list(versions.items())[:MAX_CLAIMS] if isinstance(value, str)}


def _plain_device(device: Any) -> dict[str, str | int]:
    """The worker's device description, kept only as short strings and integers (it is untrusted)."""
    if not isinstance(device, dict):
        return {}
    plain: dict[str, str | int] = {}
    for key, value in list(device.items())[:8]:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        plain[str(key)[:40]] = value[:200] if isinstance(value, str) else value
    return plain
