"""GPU leases: a grading that needs a GPU gets one to itself, and a crashed grader never keeps it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from harness.gpus import NvidiaGpu, lease_gpu, parse_gpu_query

HOLD_A_LEASE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from harness.gpus import lease_gpu
    lease = lease_gpu(int(sys.argv[1]), folder=Path(sys.argv[2]))
    print(lease.index, flush=True)
    time.sleep(600)
    """
)


def hold_in_another_process(count: int, folder: Path) -> tuple[subprocess.Popen[str], int]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_LEASE, str(count), str(folder)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert holder.stdout is not None
    return holder, int(holder.stdout.readline())


def test_two_gradings_on_a_two_gpu_host_get_different_gpus(tmp_path: Path) -> None:
    holder, held = hold_in_another_process(2, tmp_path)
    try:
        mine = lease_gpu(2, folder=tmp_path)
        assert {held, mine.index} == {0, 1}
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_grading_waits_for_the_only_gpu_until_its_holder_dies(tmp_path: Path) -> None:
    holder, held = hold_in_another_process(1, tmp_path)
    assert held == 0
    leased = threading.Event()
    got: list[int] = []

    def wait_for_lease() -> None:
        got.append(lease_gpu(1, folder=tmp_path, poll_s=0.05).index)
        leased.set()

    waiter = threading.Thread(target=wait_for_lease, daemon=True)
    waiter.start()
    assert not leased.wait(1.0), "a second grading got the GPU while another held it"
    os.kill(holder.pid, signal.SIGKILL)  # a crashed grader: the kernel drops its lock
    holder.wait()
    assert leased.wait(60), "the GPU of a killed grader was never freed"
    assert got == [0]


def test_a_released_lease_is_taken_again(tmp_path: Path) -> None:
    first = lease_gpu(1, folder=tmp_path)
    first.release()
    second = lease_gpu(1, folder=tmp_path)
    assert second.index == 0
    second.release()


def test_nvidia_smi_is_read_into_one_gpu_per_line() -> None:
    # What `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader` prints.
    out = "NVIDIA H200, 143771 MiB, 570.124.06\nNVIDIA GeForce RTX 4090, 24564 MiB, 570.124.06\n\n"
    gpus = parse_gpu_query(out)
    assert gpus == [NvidiaGpu("NVIDIA H200", "143771 MiB", "570.124.06"),
                    NvidiaGpu("NVIDIA GeForce RTX 4090", "24564 MiB", "570.124.06")]
    assert gpus[0].describe() == "NVIDIA H200, 143771 MiB, 570.124.06"  # as `cvgrade doctor` shows it


def test_a_line_nvidia_smi_did_not_finish_is_no_gpu() -> None:
    assert parse_gpu_query("No devices were found\nNVIDIA H200, 143771 MiB\n") == []
