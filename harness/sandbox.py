"""What every sandbox backend offers: start a worker, hand back its channel, clean up.

The harness runs things somewhere and reports what happened. It knows nothing
of challenges, scores or HTTP. A backend turns a ``WorkerSpec`` into a running
``WorkerProcess``: a candidate worker inside the sandbox, with two pipes to
talk to it and a captured, capped output stream. ``harness.session`` speaks
the protocol over those pipes; backends only start, watch and kill.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, Protocol, TypedDict


class Outcome(enum.StrEnum):
    """How a call into the candidate ended. Candidate failures are data, not exceptions."""

    OK = "ok"
    RAISED = "raised"  # the candidate's code raised an exception
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_LIMIT = "output_limit"
    CRASHED = "crashed"  # the worker died: a signal, an exit, a broken channel
    IMPORT_FAILED = "import_failed"
    BAD_VALUE = "bad_value"  # the reply was not plain data of a supported type


OUTCOME_SENTENCES: dict[Outcome, str] = {
    Outcome.TIMED_OUT: "time limit exceeded",
    Outcome.OUT_OF_MEMORY: "memory limit exceeded",
    Outcome.OUTPUT_LIMIT: "output limit exceeded",
    Outcome.CRASHED: "the solution's process crashed",
    Outcome.IMPORT_FAILED: "the solution could not be imported",
    Outcome.BAD_VALUE: "the solution returned a value the judge cannot accept",
    Outcome.RAISED: "the solution raised an exception",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits for one worker. Units are in the names."""

    memory_mb: int = 2048
    max_processes: int = 64
    max_output_bytes: int = 1_000_000
    max_open_files: int = 256
    max_file_mb: int = 256
    scratch_mb: int = 256
    cpu_threads: int = 1
    setup_timeout_s: float = 60.0
    max_message_bytes: int = 1 << 30


BackendName = Literal["auto", "docker", "local"]
IsolationName = Literal["auto", "bwrap", "process"]
GpuPolicy = Literal["off", "optional", "required"]


@dataclass(frozen=True)
class SandboxConfig:
    """Which backend to build and how (``harness.backends.make_sandbox``); it travels in the judge's spec.

    ``backend``: ``auto`` is Docker where an engine and the runtime image are ready, else local.
    ``isolation``: the local backend's (``auto``: bubblewrap where installed). ``image``: Docker's
    runtime image (None: this install's tag). ``gpu``: the challenge's wish; a required GPU the
    backend cannot give is an error. ``judge_only``: distributions the local sandbox hides from
    workers. ``cpu_threads``: how many cores each worker is pinned to (``harness.cores``).
    """

    backend: BackendName = "auto"
    isolation: IsolationName = "auto"
    image: str | None = None
    gpu: GpuPolicy = "off"
    judge_only: Sequence[str] = ()
    cpu_threads: int = 1


class WorkerFunction(TypedDict):
    """A function the worker must find in the submission (it says which are missing or misdeclared)."""

    name: str
    parameters: list[str]


class WorkerCell(TypedDict):
    """A notebook's code cell, numbered as in the notebook, run in order in the worker."""

    number: int
    source: str


@dataclass(frozen=True)
class WorkerSpec:
    """What to run: a workspace with the submission, what to import, under which limits."""

    workspace: Path
    entry: str | None  # a .py file inside the workspace, or None for notebook cells
    cells: list[WorkerCell] | None
    functions: list[WorkerFunction]
    limits: Limits
    label: str = "candidate"
    env: dict[str, str] = field(default_factory=dict)
    assets: Path | None = None  # a folder of non-secret files, mounted read-only at ASSETS_MOUNT
    adapter: str | None = None  # a .py file in ``assets`` the worker loads after the submission
    # Started before its submission is known (a standby, ``grader.standby``): the worker loads its
    # runtime, then waits for ``{"op": "submission", "entry", "cells"}`` (``WorkerSession.adopt``) before
    # it imports anything from ``workspace``, which is empty until then.
    awaits_submission: bool = False


ASSETS_MOUNT = "/assets"
# What a worker without a GPU says it computes on (``_device`` in harness/worker/candidate_worker.py,
# which imports nothing of ours): a sandbox that leased no GPU knows it without asking a worker.
CPU_DEVICE: dict[str, str | int] = {"type": "cpu", "name": "cpu", "memory_mb": 0, "count": 0}
SANDBOX_HOSTNAME = "sandbox"  # every sandbox's host name: the host's is not shown, and no two workers differ


@dataclass
class ExitInfo:
    """How a worker process ended, as seen from outside it."""

    returncode: int | None
    signal: int | None
    out_of_memory: bool
    output_limit: bool


class WorkerProcess(Protocol):
    """A started worker. The session owns it and must call ``kill`` when done."""

    request_fd: int
    reply_fd: int

    def alive(self) -> bool: ...

    def kill(self, grace_s: float = 0.0) -> ExitInfo: ...

    def output(self) -> str:
        """The worker's captured stdout and stderr so far, capped."""
        ...

    def output_exceeded(self) -> bool: ...

    def freeze(self) -> str:
        """Stop every process of the worker until ``thaw``; return how (``cgroup v1 freezer``, ``docker pause``).

        Raises ``FreezeUnavailable`` (saying why) where this backend cannot freeze.
        A frozen worker gets no CPU at all: it cannot answer calls until thawed.
        """
        ...

    def thaw(self) -> None:
        """Let a frozen worker run again; a no-op when it is not frozen."""
        ...


class SandboxDescription(TypedDict):
    """What a sandbox says of itself, in the result's ``environment.sandbox``."""

    backend: Literal["docker", "local"]
    isolation: str
    limits_enforced_by: str
    suitable_for_hiring: bool
    device: str  # "gpu" or "cpu"
    gpu_index: int | None
    cores: dict[str, object]  # harness.cores' plan, and how the workers are pinned to it
    note: str  # a sentence for the candidate's feedback, or ""
    seccomp: NotRequired[str]  # local
    hidden_packages: NotRequired[list[str]]  # local
    engine: NotRequired[str]  # docker
    image: NotRequired[str]  # docker
    image_id: NotRequired[str]  # docker


class Sandbox(Protocol):
    """A backend: starts workers under a spec and describes its isolation."""

    name: str

    @property
    def gpu_index(self) -> int | None:
        """The host GPU this sandbox's workers use (leased at the first start), None on the CPU."""
        ...

    def start(self, spec: WorkerSpec) -> WorkerProcess: ...

    def timed_cores(self) -> AbstractContextManager[None]:
        """Move this sandbox's workers onto the cores kept for timed work while the context lasts."""
        ...

    def describe(self) -> SandboxDescription:
        """Backend, isolation and limits enforcement, for the result's environment."""
        ...


class SandboxUnavailable(Exception):
    """The backend cannot run here (missing tool, no permission). Infrastructure, not the candidate."""


class FreezeUnavailable(Exception):
    """A worker cannot be frozen here (no cgroup freezer, the engine refused); the message says why."""
