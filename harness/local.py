"""The local sandbox backend: a worker process on this machine, fenced in.

Isolation, best first:

- ``bwrap``: bubblewrap namespaces (pid, net, ipc, uts, cgroup), a file system
  view that holds only the runtime (Python and its packages, read-only), the
  worker's own control folder and the workspace (read-only) and a size-capped
  ``/tmp``; an unprivileged user with no capabilities and ``no_new_privs``.
  Killing the sandbox's first process tears the pid namespace down, so nothing
  the candidate started survives.
- ``process``: a plain subprocess in its own session, for machines without
  bubblewrap (a candidate's laptop). The submission can see this machine's
  files: fine for practice, not for hiring decisions, and the result says so.
  The starting process becomes a child subreaper, so daemons that escape by
  double-forking are adopted by it and killed with the worker.

Limits: memory and process count through a cgroup where one can be created,
else through rlimits set by the worker before it imports the submission; open
files, file size and core dumps always through rlimits; wall-clock limits are
kept by the session, from outside; output through a capped pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.metadata
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from harness import cgroups, seccomp
from harness.cores import CoreClaim, CorePlan, TimedCores, claim_cores, cpu_list, plan_cores, usable_cores
from harness.gpus import GpuLease, host_gpu_count, lease_gpu
from harness.leftovers import owned_folder
from harness.output import CappedOutput
from harness.sandbox import (
    ASSETS_MOUNT,
    SANDBOX_HOSTNAME,
    ExitInfo,
    FreezeUnavailable,
    GpuPolicy,
    IsolationName,
    SandboxDescription,
    SandboxUnavailable,
    WorkerSpec,
)

_HARNESS_DIR = Path(__file__).resolve().parent
RUNTIME_FILES = (_HARNESS_DIR / "wire.py", _HARNESS_DIR / "worker" / "candidate_worker.py")
SANDBOX_UID = 65534  # nobody
_LIVE_WORKER_PIDS: set[int] = set()
CONTROL_MOUNT = "/cvgrade"
WORKSPACE_MOUNT = "/workspace"
NVIDIA_CONTROL = "/dev/nvidiactl"
_F_SETPIPE_SZ = 1031
_PR_SET_CHILD_SUBREAPER = 36


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def become_subreaper() -> bool:
    """Adopt orphaned descendants (double-forked daemons) so they can be killed. Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


class LocalWorker:
    """One running worker under the local backend."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        request_fd: int,
        reply_fd: int,
        output: CappedOutput,
        control_dir: Path,
        cgroup: cgroups.Cgroup | None,
        isolation: str,
        claim: CoreClaim | None = None,
    ) -> None:
        self._popen = popen
        self._claim = claim
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self._output = output
        self._control_dir = control_dir
        self._cgroup = cgroup
        self._isolation = isolation
        self._exit: ExitInfo | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def output(self) -> str:
        return self._output.text()

    def output_exceeded(self) -> bool:
        return self._output.exceeded

    def freeze(self) -> str:
        if self._cgroup is None:
            raise FreezeUnavailable("the worker has no cgroup here (cvgrade needs a writable cgroup hierarchy)")
        try:
            self._cgroup.freeze()
        except cgroups.FreezerUnavailable as err:
            raise FreezeUnavailable(str(err)) from None
        return f"cgroup {self._cgroup.version} freezer"

    def thaw(self) -> None:
        if self._cgroup is not None:
            self._cgroup.thaw()

    @property
    def shared_cores(self) -> tuple[int, ...]:
        return self._claim.cores if self._claim is not None else ()

    def pin(self, cores: tuple[int, ...]) -> None:
        """Move the worker and everything it started onto ``cores`` (its cpuset, else each thread's affinity)."""
        if self._exit is not None or not cores:
            return
        if self._cgroup is not None and self._cgroup.cpuset_limited:
            with contextlib.suppress(OSError):
                self._cgroup.set_cpus(cores)
            return
        pids = self._cgroup.pids() if self._cgroup is not None else {self._popen.pid, *_descendants(self._popen.pid)}
        for pid in pids:
            for task in _tasks(pid):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(task, cores)

    def _signal_all(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()
        if self._cgroup is not None:
            self._cgroup.kill_all()

    def kill(self, grace_s: float = 0.0) -> ExitInfo:
        """Kill the worker and everything it started; idempotent.

        ``grace_s``: how long to wait for a worker that is on its way out to
        exit by itself, so that its exit status can be reported.
        """
        with self._lock:
            if self._exit is not None:
                return self._exit
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=grace_s)
            already_exited = self._popen.poll() is not None
            self._signal_all()
            self._popen.wait()
            _LIVE_WORKER_PIDS.discard(self._popen.pid)
            if self._isolation == "process":
                _kill_adopted_orphans()
            returncode = self._popen.returncode
            # A worker that died on its own tells us how; one we killed just now does not.
            died_by = -returncode if returncode is not None and returncode < 0 else None
            if returncode is not None and returncode > 128 and self._isolation == "bwrap":
                died_by = returncode - 128  # bwrap reports the child's signal as 128 + n
            self._exit = ExitInfo(
                returncode=returncode if already_exited else None,
                signal=died_by if already_exited else None,
                out_of_memory=self._cgroup.oom_killed() if self._cgroup is not None else False,
                output_limit=self._output.exceeded,
            )
            for fd in (self.request_fd, self.reply_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._output.join(2.0)
            if self._cgroup is not None:
                self._cgroup.remove()
            if self._claim is not None:
                self._claim.release()
            shutil.rmtree(self._control_dir, ignore_errors=True)
            return self._exit


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        children = _children_of(frontier.pop())
        frontier += [child for child in children if child not in found]
        found.update(children)
    return found


def _tasks(pid: int) -> list[int]:
    """The thread ids of ``pid``."""
    try:
        return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []


def _kill_adopted_orphans() -> None:
    """Kill processes that were re-parented to us after their parent died (we are a subreaper)."""
    for pid in _children_of(os.getpid()):
        if pid in _LIVE_WORKER_PIDS:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


class LocalSandbox(TimedCores):
    """Starts candidate workers on this machine under the best isolation it has.

    Call ``start`` from a thread that outlives the worker (the main thread):
    bubblewrap's ``--die-with-parent`` is tied to the thread that started it.
    """

    name = "local"

    def __init__(
        self, isolation: IsolationName = "auto", use_cgroups: bool = True, gpu: GpuPolicy = "off",
        hidden_distributions: Sequence[str] = (), cpu_threads: int = 1,
    ) -> None:
        bwrap = bwrap_path()
        if isolation == "bwrap" and bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed: install it (Debian: apt-get install bubblewrap) "
                "or choose --isolation process for practice runs"
            )
        self.isolation: str = "bwrap" if isolation in ("auto", "bwrap") and bwrap else "process"
        self._bwrap = bwrap
        self._cgroup_version = cgroups.detect() if use_cgroups else None
        self._use_gpu = gpu != "off" and Path(NVIDIA_CONTROL).exists()
        self._gpu_lease: GpuLease | None = None
        # Packages the judge uses (an oracle) that no submission may import or read: covered in the view.
        self._hidden = hidden_paths(hidden_distributions)
        self._cpu_threads = cpu_threads
        self._workers: list[LocalWorker] = []
        self._taskset = shutil.which("taskset")

    @property
    def gpu_index(self) -> int | None:
        """The host GPU this sandbox's workers use (leased at the first start), None on the CPU."""
        return self._gpu_lease.index if self._gpu_lease is not None else None

    def _gpu_environment(self) -> dict[str, str]:
        """Lease a GPU for this grading (once); without bubblewrap only CUDA_VISIBLE_DEVICES narrows it."""
        if not self._use_gpu:
            return {"CUDA_VISIBLE_DEVICES": ""}
        if self._gpu_lease is None:
            self._gpu_lease = lease_gpu(max(host_gpu_count(), 1))
        # Inside bubblewrap only the leased GPU's device node exists, so it is device 0 there.
        return {"CUDA_VISIBLE_DEVICES": "0" if self.isolation == "bwrap" else str(self._gpu_lease.index)}

    def _gpu_binds(self) -> list[str]:
        """The driver's control nodes and the leased GPU's node, as the NVIDIA container runtime does."""
        if self._gpu_lease is None:
            return []
        nodes = [node for node in sorted(str(path) for path in Path("/dev").glob("nvidia*"))
                 if not re.fullmatch(r"/dev/nvidia\d+", node) or node == f"/dev/nvidia{self._gpu_lease.index}"]
        binds: list[str] = []
        for node in nodes:
            binds += ["--dev-bind", node, node]
        return [*binds, "--ro-bind", "/sys", "/sys"]

    def core_plan(self) -> CorePlan:
        """This grading's timed and shared cores (see ``harness.cores``); the GPU it leased picks its timed block."""
        gpus = host_gpu_count() if self._use_gpu else 0
        slot = 0 if self._gpu_lease is None else 1 + self._gpu_lease.index
        return plan_cores(self._cpu_threads, usable_cores(), resource_slot=slot, resources=1 + gpus)

    def _pinned_by(self) -> str:
        if self._cgroup_version is not None and cgroups.cpuset_available(self._cgroup_version):
            return "cpuset cgroup"
        if self._taskset is None:
            return "none (no cpuset cgroup, no taskset)"
        return "CPU affinity (seccomp keeps the sandbox from changing it)" if self.isolation == "bwrap" else \
            "CPU affinity (the worker can change it: no sandbox)"

    def _live_workers(self) -> list[LocalWorker]:
        self._workers = [worker for worker in self._workers if worker.alive()]
        return list(self._workers)

    def describe(self) -> SandboxDescription:
        isolated = self.isolation == "bwrap"
        return {
            "backend": "local",
            "isolation": "bubblewrap namespaces" if isolated else "plain subprocess (no isolation)",
            "seccomp": "cvgrade filter" if isolated and seccomp.supported() else "none",
            "limits_enforced_by": (
                f"cgroup {self._cgroup_version}" if self._cgroup_version else "rlimits"
            ),
            "suitable_for_hiring": isolated,
            "device": "gpu" if self._use_gpu else "cpu",
            "gpu_index": self.gpu_index,
            "hidden_packages": sorted({hidden.distribution for hidden in self._hidden}) if isolated else [],
            "cores": {**self.core_plan().describe(), "pinned_by": self._pinned_by()},
            "note": "" if isolated else (
                "bubblewrap is not available: the submission could read this machine's files. "
                "Use this for practice only."
            ),
        }

    def start(self, spec: WorkerSpec) -> LocalWorker:
        if self.isolation == "process":
            become_subreaper()  # idempotent; lets kill() find double-forked daemons
        control_dir = owned_folder("worker", mode=0o755)  # read by the sandbox's user, inside our private root
        for source in RUNTIME_FILES:
            target = control_dir / source.name
            shutil.copyfile(source, target)
            target.chmod(0o644)
        env = {**self._environment(spec), **self._gpu_environment()}  # leases the GPU first: it picks the plan
        plan = self.core_plan()
        claim = claim_cores(plan.shared, min(spec.limits.cpu_threads, len(plan.shared)))
        cores = self._timing_cores or claim.cores
        cgroup = self._make_cgroup(spec, cores)
        in_sandbox = self.isolation == "bwrap"
        workspace_seen = WORKSPACE_MOUNT if in_sandbox else str(spec.workspace)
        control_seen = CONTROL_MOUNT if in_sandbox else str(control_dir)
        assets_seen = None
        if spec.assets is not None:
            assets_seen = ASSETS_MOUNT if in_sandbox else str(spec.assets)
        worker_spec = {
            "workspace": workspace_seen,
            "entry": spec.entry,
            "cells": spec.cells,
            "awaits_submission": spec.awaits_submission,
            "functions": spec.functions,
            "assets": assets_seen,
            "adapter": spec.adapter,
            "threads": spec.limits.cpu_threads,
            "rlimits": self._rlimits(spec, cgroup is not None),
            "seccomp": seccomp.build_worker_filter().hex() if seccomp.supported() else None,
        }
        spec_path = control_dir / "spec.json"
        spec_path.write_text(json.dumps(worker_spec))
        spec_path.chmod(0o644)

        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        output_read, output_write = os.pipe()
        for fd in (request_write, reply_write):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
        worker_cmd = [
            sys.executable, "-I", "-X", "frozen_modules=on",
            f"{control_seen}/candidate_worker.py", f"{control_seen}/spec.json",
            str(request_read), str(reply_write),
        ]
        passed_fds = [request_read, reply_write]
        if in_sandbox:
            seccomp_fd = self._seccomp_fd()
            if seccomp_fd is not None:
                passed_fds.append(seccomp_fd)
            cmd = self._bwrap_command(spec, control_dir, env, seccomp_fd) + worker_cmd
            popen_env: dict[str, str] = {}
        else:
            cmd = worker_cmd
            popen_env = env
        if (cgroup is None or not cgroup.cpuset_limited) and self._taskset is not None:
            cmd = [self._taskset, "--cpu-list", cpu_list(cores), *cmd]  # pinned before the worker starts
        if cgroup is not None:
            joins = " && ".join(f"echo $$ > {shlex.quote(str(p))}" for p in cgroup.procs_files)
            cmd = ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *cmd]
        try:
            popen = subprocess.Popen(  # noqa: S603 - argv built from our own paths
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=output_write,
                stderr=output_write,
                pass_fds=passed_fds,
                env=popen_env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as err:
            for fd in (request_write, reply_read, output_read, output_write, *passed_fds):
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
            claim.release()
            shutil.rmtree(control_dir, ignore_errors=True)
            raise SandboxUnavailable(f"could not start the worker: {err}") from err
        for fd in (output_write, *passed_fds):
            os.close(fd)
        _LIVE_WORKER_PIDS.add(popen.pid)
        worker: LocalWorker | None = None

        def on_output_exceeded() -> None:
            if worker is not None:
                worker._signal_all()

        output = CappedOutput.from_fd(output_read, spec.limits.max_output_bytes, on_output_exceeded)
        worker = LocalWorker(
            popen, request_write, reply_read, output, control_dir, cgroup, self.isolation, claim
        )
        self._workers.append(worker)
        return worker

    def _make_cgroup(self, spec: WorkerSpec, cores: tuple[int, ...]) -> cgroups.Cgroup | None:
        if self._cgroup_version is None:
            return None
        try:
            return cgroups.Cgroup(spec.limits.memory_mb, spec.limits.max_processes, self._cgroup_version,
                                  cpu_threads=spec.limits.cpu_threads, cpus=cores,
                                  prefix=cgroups.worker_group_prefix(os.getpid()))  # this judge's
        except OSError:
            return None

    @staticmethod
    def _rlimits(spec: WorkerSpec, has_cgroup: bool) -> dict[str, int]:
        limits = spec.limits
        rlimits = {
            "RLIMIT_NOFILE": limits.max_open_files,
            "RLIMIT_FSIZE": limits.max_file_mb * 1024 * 1024,
            "RLIMIT_CORE": 0,
        }
        if not has_cgroup:
            rlimits["RLIMIT_DATA"] = limits.memory_mb * 1024 * 1024
            if os.geteuid() != 0:
                rlimits["RLIMIT_NPROC"] = limits.max_processes
        else:  # the cgroup limits memory; drop a data limit inherited from a judge under rlimits of its own
            rlimits["RLIMIT_DATA"] = resource.RLIM_INFINITY
        return rlimits

    @staticmethod
    def _environment(spec: WorkerSpec) -> dict[str, str]:
        threads = str(spec.limits.cpu_threads)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
        }
        env.update(spec.env)
        return env

    @staticmethod
    def _seccomp_fd() -> int | None:
        """A pipe holding the seccomp filter, for bwrap to read; None where none can be built."""
        if not seccomp.supported():
            return None
        program = seccomp.build_filter()
        read_fd, write_fd = os.pipe()
        os.write(write_fd, program)  # a few hundred bytes: fits in the pipe's buffer
        os.close(write_fd)
        return read_fd

    def _bwrap_command(
        self, spec: WorkerSpec, control_dir: Path, env: dict[str, str], seccomp_fd: int | None
    ) -> list[str]:
        assert self._bwrap is not None
        cmd = [
            self._bwrap,
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname", SANDBOX_HOSTNAME,
            "--unshare-cgroup-try",
            "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            # The dynamic linker's cache of /usr's libraries (no secret: a list of what /usr shows).
            # Without it ctypes.util.find_library, which torch's CUDA path finder calls at import,
            # falls back to running gcc and ld in every worker.
            "--perms", "0755", "--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(spec.limits.scratch_mb * 1024 * 1024), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(16 * 1024 * 1024), "--tmpfs", "/dev/shm",
        ]
        made: set[str] = {"/", "/usr", "/etc", "/tmp", "/proc", "/dev"}
        for root in _python_roots():
            cmd += _parent_dirs(root, made)
            cmd += ["--ro-bind", root, root]
        cmd += self._hiding_binds(control_dir)
        cmd += ["--ro-bind", str(control_dir), CONTROL_MOUNT]
        cmd += ["--ro-bind", str(spec.workspace), WORKSPACE_MOUNT]
        if spec.assets is not None:
            cmd += ["--ro-bind", str(spec.assets), ASSETS_MOUNT]
        cmd += self._gpu_binds()
        cmd += ["--clearenv"]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        cmd += ["--chdir", WORKSPACE_MOUNT]
        if seccomp_fd is not None:
            cmd += ["--seccomp", str(seccomp_fd)]
        if os.geteuid() == 0:
            cmd += [
                "/usr/bin/setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
            ]
        return cmd


    def _hiding_binds(self, control_dir: Path) -> list[str]:
        """Cover each hidden package's folders with an empty read-only tmpfs and its files with /dev/null.

        A package keeps one file, an ``__init__.py`` that raises ModuleNotFoundError, so that
        ``import pycocotools`` fails as it does in the Docker image (where it is not installed)
        instead of finding an empty namespace package.
        """
        args: list[str] = []
        for index, hidden in enumerate(self._hidden):
            if hidden.kind == "file":
                args += ["--ro-bind", "/dev/null", hidden.path]
                continue
            args += ["--perms", "0755", "--size", str(64 * 1024), "--tmpfs", hidden.path]
            if hidden.kind == "package":
                blocker = control_dir / f"hidden-{index}.py"
                blocker.write_text(
                    f"raise ModuleNotFoundError({hidden.message!r}, name={hidden.module!r})\n", encoding="utf-8")
                blocker.chmod(0o644)
                args += ["--ro-bind", str(blocker), f"{hidden.path}/__init__.py"]
            args += ["--remount-ro", hidden.path]
        return args


@dataclass(frozen=True)
class HiddenPath:
    """One top-level entry of a hidden distribution's files, as the sandbox must cover it."""

    distribution: str
    path: str
    kind: Literal["package", "dir", "file"]
    module: str

    @property
    def message(self) -> str:
        return (f"No module named {self.module!r}: {self.distribution} is the judge's, "
                "and submissions cannot import it")


def hidden_paths(distributions: Sequence[str]) -> list[HiddenPath]:
    """The installed files of ``distributions`` (packages, modules, metadata), by top-level entry.

    A distribution that is not installed has nothing to hide.
    """
    found: list[HiddenPath] = []
    for name in distributions:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        tops = sorted({PurePath(str(file)).parts[0] for file in dist.files or []} - {".."})
        for top in tops:
            path = Path(str(dist.locate_file(top))).resolve()
            module = top.split(".", 1)[0]
            if path.is_dir():
                kind: Literal["package", "dir", "file"] = "package" if (path / "__init__.py").exists() else "dir"
            elif path.exists():
                kind = "file"
            else:
                continue
            found.append(HiddenPath(name, str(path), kind, module))
    return found


def _python_roots() -> list[str]:
    """The folders the worker's Python needs: the environment and its base installation."""
    roots: list[str] = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        resolved = str(Path(prefix).resolve())
        if resolved == "/usr" or resolved.startswith("/usr/"):
            continue  # already in the view
        if resolved not in roots:
            roots.append(resolved)
    return roots


def _parent_dirs(path: str, made: set[str]) -> list[str]:
    """bwrap arguments that create each missing parent of ``path`` world-traversable."""
    args: list[str] = []
    parts = Path(path).parts
    for depth in range(2, len(parts)):
        parent = str(Path(*parts[:depth]))
        if parent in made or parent.startswith("/usr/"):
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", parent]
    return args
