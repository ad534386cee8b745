"""Memory and process-count limits through Linux control groups (v2, else v1).

A ``Cgroup`` holds one worker and everything it starts. Its limits are enforced
by the kernel, so a fork storm or a memory bomb stays inside; killing the group
kills every process in it, including daemons that left the process group.
Where the kernel offers the freezer (v2's ``cgroup.freeze``, v1's ``freezer``
controller), ``freeze`` stops every process of the group at once, children and
threads included, until ``thaw``: the judge freezes a candidate while it times
the reference, so nothing the candidate left running competes with that timing.
Where the cpuset controller is available, it also pins the group to a set of
cores (``set_cpus``, see ``harness/cores.py``), which no process inside can widen.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

V2_ROOT = Path("/sys/fs/cgroup")
V1_MEMORY = Path("/sys/fs/cgroup/memory")
V1_PIDS = Path("/sys/fs/cgroup/pids")
V1_CPU = Path("/sys/fs/cgroup/cpu")
V1_FREEZER = Path("/sys/fs/cgroup/freezer")
FREEZE_TIMEOUT_S = 5.0
V1_CPUSET = Path("/sys/fs/cgroup/cpuset")
CPU_PERIOD_US = 100_000
PARENT_NAME = "cvgrade"


class CgroupUnavailable(Exception):
    """No writable cgroup hierarchy with memory and pids controllers here."""


class FreezerUnavailable(Exception):
    """This group cannot be frozen: no freezer here, or the processes would not stop in time."""


def _v2_usable() -> bool:
    controllers = V2_ROOT / "cgroup.controllers"
    if not controllers.exists():
        return False
    available = controllers.read_text().split()
    return "memory" in available and "pids" in available and os.access(V2_ROOT, os.W_OK)


def _v1_usable() -> bool:
    return all(
        (root / "cgroup.procs").exists() and os.access(root, os.W_OK) for root in (V1_MEMORY, V1_PIDS)
    )


def cpuset_available(version: str) -> bool:
    """Whether groups of this hierarchy can be pinned to cores (the cpuset controller is there and ours)."""
    if version == "v2":
        return "cpuset" in (V2_ROOT / "cgroup.controllers").read_text().split()
    return (V1_CPUSET / "cpuset.cpus").exists() and os.access(V1_CPUSET, os.W_OK)


def detect() -> str | None:
    """'v2', 'v1', or None when this process cannot create limited cgroups."""
    if _v2_usable():
        return "v2"
    if _v1_usable():
        return "v1"
    return None


class Cgroup:
    """A fresh control group with a memory cap (swap included), a pids cap and, where the
    cpu controller is available, a CPU quota of ``cpu_threads`` CPUs' worth of time."""

    def __init__(
        self, memory_mb: int, max_processes: int, version: str | None = None, cpu_threads: int | None = None,
        *, prefix: str = "run",
        cpus: Sequence[int] | None = None,
    ) -> None:
        """``prefix`` names the group (``run-`` for a worker, ``judge-`` for a judge)."""
        self.version = version or detect()
        if self.version is None:
            raise CgroupUnavailable("no writable cgroup hierarchy with memory and pids controllers")
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.cpu_limited = False
        self.freezer: Path | None = None  # the folder whose freezer file stops the group
        self.frozen = False
        self._cpuset_dir: Path | None = None
        memory_bytes = str(memory_mb * 1024 * 1024)
        if self.version == "v2":
            parent = V2_ROOT / PARENT_NAME
            parent.mkdir(exist_ok=True)
            with suppress(OSError):
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            self.dirs = [parent / name]
            self.dirs[0].mkdir()
            self._write(self.dirs[0] / "memory.max", memory_bytes)
            self._write(self.dirs[0] / "memory.swap.max", "0", optional=True)
            self._write(self.dirs[0] / "pids.max", str(max_processes))
            if cpu_threads is not None:
                with suppress(OSError):
                    (parent / "cgroup.subtree_control").write_text("+cpu")
                self.cpu_limited = self._write(
                    self.dirs[0] / "cpu.max", f"{cpu_threads * CPU_PERIOD_US} {CPU_PERIOD_US}", optional=True
                )
            if (self.dirs[0] / "cgroup.freeze").exists():
                self.freezer = self.dirs[0]
            if cpus is not None:
                for control in (V2_ROOT / "cgroup.subtree_control", parent / "cgroup.subtree_control"):
                    with suppress(OSError):
                        control.write_text("+cpuset")
                if self._write(self.dirs[0] / "cpuset.cpus", _cpu_list(cpus), optional=True):
                    self._cpuset_dir = self.dirs[0]
        else:
            memory_dir = V1_MEMORY / PARENT_NAME / name
            pids_dir = V1_PIDS / PARENT_NAME / name
            memory_dir.mkdir(parents=True)
            pids_dir.mkdir(parents=True)
            self.dirs = [memory_dir, pids_dir]
            self._write(memory_dir / "memory.limit_in_bytes", memory_bytes)
            self._write(memory_dir / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
            self._write(pids_dir / "pids.max", str(max_processes))
            if cpu_threads is not None and os.access(V1_CPU, os.W_OK):
                cpu_dir = V1_CPU / PARENT_NAME / name
                with suppress(OSError):
                    cpu_dir.mkdir(parents=True)
                    self.dirs.append(cpu_dir)
                    self._write(cpu_dir / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                    self.cpu_limited = self._write(
                        cpu_dir / "cpu.cfs_quota_us", str(cpu_threads * CPU_PERIOD_US), optional=True
                    )
            if (V1_FREEZER / "cgroup.procs").exists() and os.access(V1_FREEZER, os.W_OK):
                freezer_dir = V1_FREEZER / PARENT_NAME / name
                with suppress(OSError):
                    freezer_dir.mkdir(parents=True)
                    self.dirs.append(freezer_dir)
                    self.freezer = freezer_dir
            if cpus is not None and os.access(V1_CPUSET, os.W_OK):
                self._cpuset_dir = self._v1_cpuset(name, cpus)

    def _v1_cpuset(self, name: str, cpus: Sequence[int]) -> Path | None:
        """A v1 cpuset group pinned to ``cpus``; None where it cannot be made. v1 cpusets start empty:
        the parent takes the root's cores and memory nodes, the group its own cores and the nodes."""
        parent = V1_CPUSET / PARENT_NAME
        try:
            parent.mkdir(exist_ok=True)
            for setting in ("cpuset.cpus", "cpuset.mems"):
                if not (parent / setting).read_text().strip():
                    (parent / setting).write_text((V1_CPUSET / setting).read_text().strip())
            directory = parent / name
            directory.mkdir()
        except OSError:
            return None
        self.dirs.append(directory)
        try:
            (directory / "cpuset.mems").write_text((parent / "cpuset.mems").read_text().strip())
            (directory / "cpuset.cpus").write_text(_cpu_list(cpus))
        except OSError:
            self.dirs.remove(directory)
            with suppress(OSError):
                directory.rmdir()
            return None
        return directory

    @property
    def cpuset_limited(self) -> bool:
        """Whether this group pins its processes to cores (``set_cpus`` works)."""
        return self._cpuset_dir is not None

    def set_cpus(self, cpus: Sequence[int]) -> None:
        """Move every process of the group, and all it starts later, onto ``cpus``."""
        if self._cpuset_dir is None:
            raise CgroupUnavailable("this group has no cpuset")
        (self._cpuset_dir / "cpuset.cpus").write_text(_cpu_list(cpus))

    @staticmethod
    def _write(path: Path, value: str, *, optional: bool = False) -> bool:
        try:
            path.write_text(value)
        except OSError:
            if not optional:
                raise
            return False
        return True

    @property
    def procs_files(self) -> list[Path]:
        """The files a process writes its pid to, to join this group."""
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with suppress(OSError):
                found.update(int(line) for line in procs.read_text().split())
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process here for exceeding the memory cap."""
        events = self.dirs[0] / ("memory.events" if self.version == "v2" else "memory.oom_control")
        with suppress(OSError):
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def freeze(self, timeout_s: float = FREEZE_TIMEOUT_S) -> None:
        """Stop every process of the group (they get no CPU at all) until ``thaw``.

        Returns once the kernel reports the whole group frozen; raises
        ``FreezerUnavailable`` when there is no freezer or it did not settle in
        ``timeout_s`` (the group is thawed again then).
        """
        if self.freezer is None:
            raise FreezerUnavailable("this machine gives cvgrade no cgroup freezer")
        try:
            if self.version == "v2":
                (self.freezer / "cgroup.freeze").write_text("1")
            else:
                (self.freezer / "freezer.state").write_text("FROZEN")
        except OSError as err:
            raise FreezerUnavailable(f"the cgroup freezer refused: {err.strerror}") from err
        self.frozen = True
        deadline = time.monotonic() + timeout_s
        while not self._reports_frozen():
            if time.monotonic() > deadline:
                self.thaw()
                raise FreezerUnavailable(f"the worker's processes did not freeze within {timeout_s:g} s")
            time.sleep(0.001)

    def thaw(self) -> None:
        """Let the group's processes run again; a no-op when it is not frozen."""
        if self.freezer is None or not self.frozen:
            return
        with suppress(OSError):
            if self.version == "v2":
                (self.freezer / "cgroup.freeze").write_text("0")
            else:
                (self.freezer / "freezer.state").write_text("THAWED")
        self.frozen = False

    def _reports_frozen(self) -> bool:
        assert self.freezer is not None
        try:
            if self.version == "v2":
                return "frozen 1" in (self.freezer / "cgroup.events").read_text()
            return (self.freezer / "freezer.state").read_text().strip() == "FROZEN"
        except OSError:
            return False

    def peak_memory_bytes(self) -> int | None:
        """The most memory the group has held (page cache included), where the kernel keeps that figure."""
        peak = self.dirs[0] / ("memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes")
        try:
            return int(peak.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_all(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every process in the group until it is empty (a frozen group is thawed to let them die)."""
        if self.version == "v2":
            with suppress(OSError):
                (self.dirs[0] / "cgroup.kill").write_text("1")
        if self.frozen:  # v1 delivers a signal to a frozen task only once it is thawed
            for pid in self.pids():
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            self.thaw()
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        _remove_folders(self.dirs)


def _cpu_list(cpus: Sequence[int]) -> str:
    return ",".join(str(core) for core in sorted(cpus))


def worker_group_prefix(judge_pid: int) -> str:
    """The name prefix of the worker groups a judge makes: ``run-<its pid>``, so its grader can find them."""
    return f"run-{judge_pid}"


def remove_worker_groups_of(judge_pid: int, timeout_s: float = 5.0) -> int:
    """Kill what is left in the worker groups of a judge that has ended, thawing frozen ones; remove them.

    A judge removes its workers' groups itself. One that was killed (its memory limit, SIGKILL) while it
    had a worker frozen (a timed check) cannot, and a frozen process never acts on the signal its
    sandbox sends when its parent dies: it would stay, frozen, for good. Returns how many groups.
    """
    found: dict[str, list[Path]] = {}
    for root in (V2_ROOT, V1_MEMORY, V1_PIDS, V1_CPU, V1_FREEZER, V1_CPUSET):
        with suppress(OSError):
            for directory in (root / PARENT_NAME).glob(f"{worker_group_prefix(judge_pid)}-*"):
                if directory.is_dir():
                    found.setdefault(directory.name, []).append(directory)
    for directories in found.values():
        deadline = time.monotonic() + timeout_s
        while True:
            pids = _pids_in(directories)
            for pid in pids:  # v1 delivers these once the group is thawed, below
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            for directory in directories:
                with suppress(OSError):
                    (directory / "cgroup.kill").write_text("1")
                with suppress(OSError):
                    (directory / "cgroup.freeze").write_text("0")
                with suppress(OSError):
                    (directory / "freezer.state").write_text("THAWED")
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        _remove_folders(directories)
    return len(found)


def _remove_folders(directories: Sequence[Path], tries: int = 50) -> None:
    """Remove emptied group folders; the kernel refuses (EBUSY) until the last killed process is gone."""
    for directory in directories:
        for _ in range(tries):
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def _pids_in(directories: Sequence[Path]) -> set[int]:
    pids: set[int] = set()
    for directory in directories:
        with suppress(OSError, ValueError):
            pids.update(int(line) for line in (directory / "cgroup.procs").read_text().split())
    return pids
