"""The Docker backend: each candidate worker in its own locked-down container.

Every container runs the runtime image (``harness/images.py``) with: no network,
a read-only root file system, a size-capped tmpfs on ``/tmp``, all capabilities
dropped, ``no-new-privileges``, the engine's default seccomp profile, user
65534, a memory limit with swap equal to it, a CPU quota, a pids limit, capped
ulimits and a capped log driver. ``init`` reaps what the candidate forks.

Nothing is mounted but one per-worker folder of ours, read-only, holding the
worker's spec, the Unix socket of the channel and the worker's own copy of the
challenge's assets (mounted again at ``/assets``), and the workspace (the
submission's files and nothing else), read-only. No inode is in view of two
containers, so none can carry a lock or a watch from one candidate to another;
each container's host name is ``sandbox``. The per-worker folders live
in one short, private folder per user (``control_root``), whatever TMPDIR says:
a socket's path must fit in 107 bytes. The judge listens on the
socket; the worker connects to it first thing. The Docker socket is never in
view. Wall-clock limits are kept by the session, from outside: on expiry the
container is killed, not asked to stop.

Every container carries labels naming its owner process, so ``janitor``
removes what a crashed grader left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from harness import seccomp
from harness.cores import CoreClaim, CorePlan, TimedCores, claim_cores, cpu_list, plan_cores, usable_cores
from harness.gpus import GpuLease, host_gpu_count, lease_gpu
from harness.images import image_exists, runtime_tag, stale_worker
from harness.leftovers import owned_folder, private_folder, process_running
from harness.output import CappedOutput
from harness.sandbox import (
    ASSETS_MOUNT,
    SANDBOX_HOSTNAME,
    ExitInfo,
    FreezeUnavailable,
    GpuPolicy,
    SandboxDescription,
    SandboxUnavailable,
    WorkerSpec,
)

LABEL = "org.cvgrade.sandbox"
OWNER_LABEL = "org.cvgrade.owner"
WORKER_LABEL = "org.cvgrade.worker"
CONTROL_MOUNT = "/cvgrade"
WORKSPACE_MOUNT = "/workspace"
PYTHON = "/opt/cvgrade/venv/bin/python"
WORKER = "/opt/cvgrade/worker/candidate_worker.py"
SANDBOX_USER = "65534:65534"
PAUSE_ATTEMPTS = 3


def owner_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def docker_client() -> Any:
    """A client for the engine named by the environment (DOCKER_HOST), or SandboxUnavailable."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as err:  # the SDK raises several unrelated types when no engine answers
        raise SandboxUnavailable(
            f"no Docker engine is reachable ({type(err).__name__}: {err}); start dockerd or set DOCKER_HOST"
        ) from err
    return client


def engine_gpus(client: Any) -> bool:
    """Whether the engine can hand out NVIDIA GPUs (an nvidia runtime is registered)."""
    runtimes = client.info().get("Runtimes", {}) or {}
    return "nvidia" in runtimes


class ContainerWorker:
    """One running worker container and its channel."""

    def __init__(
        self, container: Any, channel: socket.socket, control_dir: Path, output: CappedOutput,
        claim: CoreClaim | None = None,
    ) -> None:
        self._container = container
        self._channel = channel
        self._control_dir = control_dir
        self._output = output
        self._claim = claim
        self._exit: ExitInfo | None = None
        self._lock = threading.Lock()
        self._paused = False
        self.request_fd = channel.fileno()
        self.reply_fd = self.request_fd

    def alive(self) -> bool:
        # No engine round trip here: a dead container shows up as a closed channel.
        return self._exit is None

    def output(self) -> str:
        return self._output.text()

    def output_exceeded(self) -> bool:
        return self._output.exceeded

    def freeze(self) -> str:
        """``docker pause``: the engine freezes the container's cgroup (every process in it).

        runc gives up ("unable to freeze") when a busy group does not settle at once, as
        seen under cgroup v1 with a process forking and writing files: asked again, it
        freezes. So it is asked up to ``PAUSE_ATTEMPTS`` times. An error does not prove the
        pause failed (the engine can time out after pausing, and is then answered "already
        paused"), so after each one the container's own state decides. Where it cannot be
        paused, it is left running, never paused with nobody to thaw it.
        """
        for attempt in range(1, PAUSE_ATTEMPTS + 1):
            try:
                self._container.pause()
            except Exception as err:  # the SDK raises APIError and connection errors alike
                if self._state().get("Paused") is True:
                    break  # paused despite the error: thaw() must undo it
                if attempt == PAUSE_ATTEMPTS:
                    self._unpause()  # a pause that takes hold late is undone, not left behind
                    raise FreezeUnavailable(f"the Docker engine did not pause the container: {err}") from None
                time.sleep(0.05 * attempt)
            else:
                break
        self._paused = True
        return "docker pause"

    def thaw(self) -> None:
        if not self._paused:
            return
        self._unpause()
        self._paused = False

    def _unpause(self) -> None:
        """Unpause, asking again while the engine still reports the container paused."""
        for attempt in range(1, PAUSE_ATTEMPTS + 1):
            try:
                self._container.unpause()
                return
            except Exception:  # not paused, killed meanwhile, or the engine's error
                if self._state().get("Paused") is not True:
                    return
                time.sleep(0.05 * attempt)

    @property
    def shared_cores(self) -> tuple[int, ...]:
        return self._claim.cores if self._claim is not None else ()

    def pin(self, cores: tuple[int, ...]) -> None:
        """Move the container onto ``cores`` (its cpuset, which nothing inside can widen)."""
        if self._exit is None and cores:
            with contextlib.suppress(Exception):  # a container that just died: its session will see
                self._container.update(cpuset_cpus=cpu_list(cores))

    def kill(self, grace_s: float = 0.0) -> ExitInfo:
        """Kill and remove the container (paused or not); idempotent."""
        with self._lock:
            if self._exit is not None:
                return self._exit
            if grace_s > 0:
                with contextlib.suppress(Exception):
                    self._container.wait(timeout=grace_s)
            state = self._state()
            already_exited = state.get("Status") in ("exited", "dead")
            if not already_exited:
                _kill(self._container)
                with contextlib.suppress(Exception):
                    self._container.wait(timeout=10)
                state = self._state()
            code = state.get("ExitCode")
            self._exit = ExitInfo(
                returncode=code if already_exited and isinstance(code, int) and code <= 128 else None,
                signal=code - 128 if already_exited and isinstance(code, int) and code > 128 else None,
                out_of_memory=bool(state.get("OOMKilled")),
                output_limit=self._output.exceeded,
            )
            with contextlib.suppress(Exception):
                self._container.remove(force=True)
            self._channel.close()
            self._output.join(2.0)
            if self._claim is not None:
                self._claim.release()
            shutil.rmtree(self._control_dir, ignore_errors=True)
            return self._exit

    def _state(self) -> dict[str, Any]:
        try:
            self._container.reload()
            state = self._container.attrs.get("State", {})
            return state if isinstance(state, dict) else {}
        except Exception:
            return {}


class DockerSandbox(TimedCores):
    """Starts candidate workers in containers of the runtime image."""

    name = "docker"

    def __init__(
        self, image: str | None = None, gpu: GpuPolicy = "off", client: Any | None = None, cpu_threads: int = 1
    ) -> None:
        self._client = client or docker_client()
        self._cpu_threads = cpu_threads
        self._cores = tuple(range(int(self._client.info().get("NCPU") or 0))) or usable_cores()
        self._workers: list[ContainerWorker] = []
        image = image or runtime_tag()
        if not image_exists(self._client, image):
            raise SandboxUnavailable(f"the runtime image {image} is missing: run `cvgrade image build --bootstrap`")
        if stale_worker(self._client, image):
            raise SandboxUnavailable(
                f"the runtime image {image} holds another version of the candidate worker than this grader: "
                "run `cvgrade image build` to bring it up to date"
            )
        self.image = image
        self._image_id = str(self._client.images.get(image).id)
        self._has_gpu = engine_gpus(self._client)
        if gpu == "required" and not self._has_gpu:
            raise SandboxUnavailable(
                "this challenge requires a GPU, but the Docker engine has no NVIDIA runtime "
                "(install the NVIDIA Container Toolkit on a host with a GPU)"
            )
        self._use_gpu = gpu != "off" and self._has_gpu
        self._gpu_lease: GpuLease | None = None

    @property
    def gpu_index(self) -> int | None:
        """The host GPU this sandbox's workers use (leased at the first start), None on the CPU."""
        return self._gpu_lease.index if self._gpu_lease is not None else None

    def _gpu_request(self) -> Any:
        """One whole GPU for every worker of this grading: leased, so no other grading times work on it."""
        import docker

        if self._gpu_lease is None:
            count = host_gpu_count()
            if count == 0:  # the engine has GPUs but this host cannot list them: let the engine pick
                return docker.types.DeviceRequest(count=1, capabilities=[["gpu"]])
            self._gpu_lease = lease_gpu(count)
        return docker.types.DeviceRequest(device_ids=[str(self._gpu_lease.index)], capabilities=[["gpu"]])

    def core_plan(self) -> CorePlan:
        """This grading's timed and shared cores of the engine's host (see ``harness.cores``)."""
        gpus = host_gpu_count() if self._use_gpu else 0
        slot = 0 if self._gpu_lease is None else 1 + self._gpu_lease.index
        return plan_cores(self._cpu_threads, self._cores, resource_slot=slot, resources=1 + gpus)

    def _live_workers(self) -> list[ContainerWorker]:
        self._workers = [worker for worker in self._workers if worker.alive()]
        return list(self._workers)

    def describe(self) -> SandboxDescription:
        version = self._client.version()
        return {
            "backend": "docker",
            "isolation": "container (no network, read-only root, no capabilities, default seccomp)",
            "limits_enforced_by": "container cgroup",
            "suitable_for_hiring": True,
            "engine": version.get("Version", "?"),
            "image": self.image,
            "image_id": self._image_id,
            "device": "gpu" if self._use_gpu else "cpu",
            "gpu_index": self.gpu_index,
            "cores": {**self.core_plan().describe(), "pinned_by": "container cpuset"},
            "note": "",
        }

    def start(self, spec: WorkerSpec) -> ContainerWorker:
        control_dir = owned_folder("container", control_root(), mode=0o755)  # read by the worker's user
        (control_dir / "spec.json").write_text(json.dumps({
            "workspace": WORKSPACE_MOUNT, "entry": spec.entry, "cells": spec.cells,
            "awaits_submission": spec.awaits_submission,
            "functions": spec.functions, "threads": spec.limits.cpu_threads, "rlimits": {},
            "seccomp": seccomp.build_worker_filter().hex() if seccomp.supported() else None,
            "assets": ASSETS_MOUNT if spec.assets is not None else None, "adapter": spec.adapter,
        }))
        (control_dir / "spec.json").chmod(0o644)
        if spec.assets is not None:
            # The worker's own copy: a bind of the challenge's folder would give every container of every
            # grading the same inodes, and a lock or a watch on one is a signal between two candidates.
            try:
                shutil.copytree(spec.assets, control_dir / "assets")
            except OSError as err:
                shutil.rmtree(control_dir, ignore_errors=True)
                raise SandboxUnavailable(f"could not copy the challenge's assets for the worker: {err}") from err
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        socket_path = control_dir / "channel.sock"
        listener.bind(str(socket_path))
        socket_path.chmod(0o777)  # the worker runs as nobody
        listener.listen(1)
        container = None
        channel: socket.socket | None = None

        def on_output_exceeded() -> None:
            # Cut the channel first (no engine round trip): no reply sent after the cap is read.
            if channel is not None:
                with contextlib.suppress(OSError):
                    channel.shutdown(socket.SHUT_RDWR)
            _kill(container)

        claim: CoreClaim | None = None
        try:
            options = self._container_options(spec, control_dir)  # leases the GPU first: it picks the plan
            plan = self.core_plan()
            claim = claim_cores(plan.shared, min(spec.limits.cpu_threads, len(plan.shared)))
            options["cpuset_cpus"] = cpu_list(self._timing_cores or claim.cores)
            container = self._client.containers.create(**options)
            output = CappedOutput(
                container.attach(stdout=True, stderr=True, stream=True, logs=True),
                spec.limits.max_output_bytes,
                on_output_exceeded,
            )
            container.start()
            listener.settimeout(spec.limits.setup_timeout_s)
            channel, _ = listener.accept()
        except Exception as err:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            if claim is not None:
                claim.release()
            shutil.rmtree(control_dir, ignore_errors=True)
            raise SandboxUnavailable(f"could not start the worker container: {err}") from err
        finally:
            listener.close()
        channel.setblocking(True)
        worker = ContainerWorker(container, channel, control_dir, output, claim)
        self._workers.append(worker)
        return worker

    def _container_options(self, spec: WorkerSpec, control_dir: Path) -> dict[str, Any]:
        import docker

        limits = spec.limits
        threads = str(limits.cpu_threads)
        options: dict[str, Any] = {
            "image": self.image,
            "command": [PYTHON, "-I", WORKER, f"{CONTROL_MOUNT}/spec.json", "--socket",
                        f"{CONTROL_MOUNT}/channel.sock"],
            "user": SANDBOX_USER,
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,size={limits.scratch_mb}m,mode=1777", "/dev/shm": "rw,size=16m,mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": f"{limits.memory_mb}m",
            "memswap_limit": f"{limits.memory_mb}m",
            "nano_cpus": limits.cpu_threads * 1_000_000_000,
            "pids_limit": limits.max_processes,
            "ulimits": [
                docker.types.Ulimit(name="nofile", soft=limits.max_open_files, hard=limits.max_open_files),
                docker.types.Ulimit(name="fsize", soft=limits.max_file_mb << 20, hard=limits.max_file_mb << 20),
                docker.types.Ulimit(name="core", soft=0, hard=0),
            ],
            "log_config": docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            "init": True,
            "volumes": {
                str(control_dir): {"bind": CONTROL_MOUNT, "mode": "ro"},
                str(spec.workspace): {"bind": WORKSPACE_MOUNT, "mode": "ro"},
                **({str(control_dir / "assets"): {"bind": ASSETS_MOUNT, "mode": "ro"}}
                   if spec.assets is not None else {}),
            },
            "working_dir": WORKSPACE_MOUNT,
            "hostname": SANDBOX_HOSTNAME,
            "environment": {
                "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "OPENBLAS_NUM_THREADS": threads, **spec.env,
            },
            "labels": {LABEL: "1", OWNER_LABEL: owner_id(), WORKER_LABEL: spec.label},
            "stdin_open": False,
            "detach": True,
        }
        if self._use_gpu:
            options["device_requests"] = [self._gpu_request()]
        return options


def _kill(container: Any) -> None:
    """SIGKILL, never SIGTERM (a worker that ignores SIGTERM changes nothing); quiet once it is gone."""
    with contextlib.suppress(Exception):
        container.kill()


def control_root() -> Path:
    """The folder of this user's per-worker control folders: ``/tmp/cvgrade-ctl-<uid>``.

    Fixed and short on purpose, not under TMPDIR: the channel's socket lives in a
    control folder, and a Unix socket's path must fit in 107 bytes, which a TMPDIR
    deep in a CI workspace does not leave room for.
    """
    return private_folder(Path(f"/tmp/cvgrade-ctl-{os.getuid()}"))


def janitor(client: Any | None = None, *, owner: str | None = None, everything: bool = False) -> list[str]:
    """Remove worker containers left behind: of ``owner``, of owners no longer running, or all.

    Returns the short ids removed. Owners on other hosts are left alone unless ``everything``.
    """
    client = client or docker_client()
    removed = []
    host = socket.gethostname()
    # Sparse: the listing's own fields, no inspection per container. Another grading may remove its containers
    # between the listing and an inspection, which would raise NotFound and fail this grading (seen in CI).
    for container in client.containers.list(all=True, sparse=True, filters={"label": LABEL}):
        container_owner = str((container.attrs.get("Labels") or {}).get(OWNER_LABEL, ""))
        owner_host, _, owner_pid = container_owner.partition(":")
        if everything or container_owner == owner or (
            owner is None and owner_host == host and owner_pid.isdigit() and not process_running(int(owner_pid))
        ):
            with contextlib.suppress(Exception):
                container.remove(force=True)
                removed.append(str(container.short_id))
    return removed


