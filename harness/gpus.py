"""Which GPU a grading gets: one lease per GPU on the host, held by one judge at a time.

The engine's ``DeviceRequest(count=1)`` hands every container the same first
GPU, so two gradings at once would time their work on one device. Instead each
judge that needs a GPU takes a lease, an ``flock`` on ``gpu-<index>.lease`` in
the machine-wide lock folder, and asks the engine for that GPU by index. The
kernel drops the lock when the judge exits, however it exits, so a crashed
grader never keeps a GPU.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

QUERY = ("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")


def lock_dir() -> Path:
    """One folder per user for the whole machine: not under TMPDIR, which may differ per process."""
    default = Path("/tmp") / f"cvgrade-locks-{os.getuid()}"  # noqa: S108 - fixed on purpose, see above
    folder = Path(os.environ.get("CVGRADE_LOCK_DIR", default)).resolve()  # the same for every judge's cwd
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


@dataclass(frozen=True)
class NvidiaGpu:
    """One GPU as ``nvidia-smi`` names it: ``NVIDIA H200``, ``143771 MiB``, driver ``570.124.06``."""

    name: str
    memory: str
    driver: str

    def describe(self) -> str:
        """``name, memory, driver``: how ``cvgrade doctor`` and ``cvgrade fleet`` show it."""
        return f"{self.name}, {self.memory}, {self.driver}"


def nvidia_gpus() -> list[NvidiaGpu]:
    """The host's NVIDIA GPUs, from ``nvidia-smi`` (none without the driver): cvgrade's one reader of it."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(  # noqa: S603 - fixed arguments
            [smi, *QUERY], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpu_query(out)


def parse_gpu_query(out: str) -> list[NvidiaGpu]:
    """The GPUs in ``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader``'s output."""
    gpus = []
    for line in out.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) >= 3 and fields[0]:
            # A name with a comma in it keeps it: the last two fields are the memory and the driver.
            gpus.append(NvidiaGpu(name=", ".join(fields[:-2]), memory=fields[-2], driver=fields[-1]))
    return gpus


def host_gpu_count() -> int:
    """NVIDIA GPUs on this host (0 without the driver)."""
    return len(nvidia_gpus())


class GpuLease:
    """Exclusive use of one GPU until ``release`` (or until this process ends)."""

    def __init__(self, index: int, handle: IO[str]) -> None:
        self.index = index
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def lease_gpu(count: int, *, poll_s: float = 0.2, folder: Path | None = None) -> GpuLease:
    """Wait for a free GPU among ``count`` and lease it. ``count`` must be at least 1."""
    if count < 1:
        raise ValueError("no GPU to lease")
    folder = folder or lock_dir()
    while True:
        for index in range(count):
            handle = (folder / f"gpu-{index}.lease").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return GpuLease(index, handle)
        time.sleep(poll_s)
