"""scripts/gpu-check: the CUDA path's check, whose dry part runs wherever there is no GPU (CI).

On a GPU host the script itself is the test (docs/gpu.md). Here it must say "no GPU" and exit 0,
and its rehearsal on the CPU must run the same steps (the sandboxed worker's probe, the report)
that a GPU host will run, so that the one short run on a borrowed GPU is not the first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-check"

pytestmark = pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None, reason="a GPU host: run scripts/gpu-check itself (docs/gpu.md)"
)


def run_check(out: Path, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout_s, check=False, cwd=REPO,
    )


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path: Path) -> None:
    done = run_check(tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["gpu"] is None
    assert report["verdict"].startswith("no GPU")
    assert report["steps"] == []
    assert "no GPU on this host" in done.stdout


@pytest.mark.usefixtures("bwrap")
def test_a_rehearsal_on_the_cpu_runs_the_sandbox_probe_and_leaves_no_trace(tmp_path: Path) -> None:
    # --quick stops after the probe: the gradings it skips are `cvgrade calibrate` and `cvgrade grade`,
    # tested elsewhere.
    done = run_check(tmp_path, "--rehearse", "--quick", "--budget-s", "400", timeout_s=500)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    steps = {step["name"]: step for step in report["steps"]}
    assert steps["import cvgrade (isolated mode, as the judge does)"]["ok"] is True
    assert steps["cvgrade doctor"]["exit_code"] == 0
    probe = steps["worker on cpu inside bubblewrap"]
    assert probe["ok"] is True, probe
    assert probe["sandbox"]["isolation"] == "bubblewrap namespaces"
    assert probe["matmul"]["shape"] == [512, 512]
    assert probe["echo_equal"] is True
    assert report["isolation"] == "bwrap"
    assert "--quick" in report["verdict"]
    # The interpreter's path is as it was: the .pth file that put cvgrade on it is gone.
    assert not (Path(sysconfig.get_paths()["purelib"]) / "zz-cvgrade-gpu-check.pth").exists()
