"""Which CPU cores a worker runs on: pinned to ``cpu_threads`` of them, and timed work kept apart.

A CPU quota is not a pin: short bursts on every core of a big host stay under a quota of one
CPU's time. So every worker is pinned, for its whole life, to exactly ``cpu_threads`` cores (a
cpuset: Docker's ``cpuset_cpus``, locally a cpuset cgroup or, without one, the affinity it
starts with, which the sandbox's seccomp filter keeps it from widening).

The host's cores are split in two (``plan_cores``):

- **timed cores**: one block of ``cpu_threads`` cores per timing resource (the CPU lock, then
  one per GPU; see ``grader/judge/timing.py``), taken from the end of the list. Timed checks
  on one resource never overlap, so while one runs its grading's workers are moved onto that
  resource's block and share those cores with no other worker of cvgrade.
- **shared cores**: the rest, where every worker runs while no timed check of its grading
  does. Each worker takes the ``cpu_threads`` shared cores that the fewest live workers of
  this user hold (``CoreClaim``: an ``flock`` per worker and core in the lock folder, dropped
  by the kernel when the judge exits, however it exits).

Timed cores are kept apart only where at least ``SHARED_BLOCKS_AT_LEAST`` blocks of cores remain
shared: on a smaller host (2 cores with ``cpu_threads = 1``, like this project's development
machines) reserving a core for timed work would halve the CPU every untimed check gets, so
there is no timed block (``CorePlan.apart`` is False, and the result says so): every worker
is still pinned, to the least-used cores of all, and a timed check runs where its workers are,
beside other gradings' untimed work. Judges and graders are not pinned: they mostly wait, and
the judge that times a call must wake the moment the reply is there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from harness.gpus import lock_dir

SHARED_BLOCKS_AT_LEAST = 2


@dataclass(frozen=True)
class CorePlan:
    """The timed cores of one timing resource (none: timed work is not kept apart), and the shared cores."""

    timed: tuple[int, ...]
    shared: tuple[int, ...]

    @property
    def apart(self) -> bool:
        """Whether timed work has cores no other worker of cvgrade uses."""
        return bool(self.timed) and not set(self.timed) & set(self.shared)

    def describe(self) -> dict[str, object]:
        return {"timed": list(self.timed), "shared": list(self.shared), "apart": self.apart}


def usable_cores() -> tuple[int, ...]:
    """The cores this process may run on (a CI runner or a container may be given fewer than the host's)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def plan_cores(cpu_threads: int, cores: Sequence[int], *, resource_slot: int = 0, resources: int = 1) -> CorePlan:
    """Split ``cores``: ``resources`` blocks of ``cpu_threads`` timed cores from the end, the rest shared.

    ``resource_slot`` picks the block (0: the CPU timing lock, 1 + N: GPU N's). Blocks are kept
    apart only while ``SHARED_BLOCKS_AT_LEAST`` blocks remain shared: with fewer cores, fewer
    blocks (slots beyond them share the last kept block), and with too few for even one, no
    timed cores at all (everything shared).
    """
    cores = tuple(sorted(cores))
    threads = max(1, min(cpu_threads, len(cores)))
    blocks = min(resources, len(cores) // threads - SHARED_BLOCKS_AT_LEAST)
    if blocks < 1:
        return CorePlan(timed=(), shared=cores)
    slot = min(resource_slot, blocks - 1)
    end = len(cores) - slot * threads
    return CorePlan(timed=cores[end - threads:end], shared=cores[:len(cores) - blocks * threads])


def cpu_list(cores: Sequence[int]) -> str:
    """The kernel's and Docker's notation: ``0,2,3``."""
    return ",".join(str(core) for core in sorted(cores))


class CoreClaim:
    """A worker's hold on its shared cores, counted by other gradings until ``release``."""

    def __init__(self, cores: tuple[int, ...], handles: list[IO[str]], paths: list[Path]) -> None:
        self.cores = cores
        self._handles = handles
        self._paths = paths

    def release(self) -> None:
        for handle, path in zip(self._handles, self._paths, strict=True):
            with contextlib.suppress(OSError):
                path.unlink()
            handle.close()  # drops the lock
        self._handles, self._paths = [], []


def claim_cores(pool: Sequence[int], count: int, *, folder: Path | None = None) -> CoreClaim:
    """Claim the ``count`` cores of ``pool`` that the fewest live workers hold (ties: the lowest numbers)."""
    folder = folder or _claims_dir()
    with (folder / "choose.lock").open("w") as chooser:
        fcntl.flock(chooser, fcntl.LOCK_EX)  # one choice at a time, so two workers see each other's claims
        holders = _holders(folder)
        chosen = tuple(sorted(sorted(pool, key=lambda core: (holders.get(core, 0), core))[:count]))
        handles: list[IO[str]] = []
        paths: list[Path] = []
        token = uuid.uuid4().hex[:12]
        for core in chosen:
            path = folder / f"core-{core}.{token}"
            handle = path.open("w")
            fcntl.flock(handle, fcntl.LOCK_EX)
            handles.append(handle)
            paths.append(path)
    return CoreClaim(chosen, handles, paths)


def _claims_dir() -> Path:
    folder = lock_dir() / "cores"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _holders(folder: Path) -> dict[int, int]:
    """How many live claims each core has; claims of processes that died are removed."""
    counts: dict[int, int] = {}
    for path in folder.glob("core-*.*"):
        try:
            core = int(path.name.split(".", 1)[0].removeprefix("core-"))
            with path.open("r") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            counts[core] = counts.get(core, 0) + 1  # held: a live worker's
        except (OSError, ValueError):
            continue
        else:
            with contextlib.suppress(OSError):
                path.unlink()  # nobody holds it: its worker's judge is gone
    return counts



class PinnableWorker(Protocol):
    @property
    def shared_cores(self) -> tuple[int, ...]: ...

    def pin(self, cores: tuple[int, ...]) -> None: ...


class TimedCores:
    """What both sandboxes do for a timed check: move the grading's workers, and any started
    meanwhile (``_timing_cores``), onto the cores timed work runs on, and back after."""

    _timing_cores: tuple[int, ...] = ()  # where this grading's workers run during a timed check

    def core_plan(self) -> CorePlan:
        raise NotImplementedError

    def _live_workers(self) -> Sequence[PinnableWorker]:
        raise NotImplementedError

    @contextlib.contextmanager
    def timed_cores(self) -> Iterator[None]:
        """While a timed check runs: this grading's workers, and any started meanwhile, on the timed cores.

        Where the host is too small to keep timed cores apart, the grading's workers share one
        worker's cores for the check: the candidate and the reference are timed in alternation,
        so whatever else runs on the machine meets both alike (on cores of their own, a busy
        neighbour on one of them would slow only that side).
        """
        workers = self._live_workers()
        timed = self.core_plan().timed or (workers[0].shared_cores if workers else ())
        if not timed:
            yield
            return
        self._timing_cores = tuple(timed)
        for worker in workers:
            worker.pin(self._timing_cores)
        try:
            yield
        finally:
            self._timing_cores = ()
            for worker in self._live_workers():
                worker.pin(worker.shared_cores)
