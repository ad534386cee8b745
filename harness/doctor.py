"""What this machine offers for grading, and what is unsafe about it (``cvgrade doctor``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Literal

from harness import cgroups, seccomp
from harness.gpus import nvidia_gpus
from harness.images import image_exists, runtime_tag, stale_worker
from harness.sandbox import SandboxUnavailable

Status = Literal["ok", "warn", "missing"]

# Container runtimes and toolkits with known escapes, and the first fixed version.
KNOWN_ESCAPES: dict[str, tuple[tuple[int, ...], str]] = {
    "runc": ((1, 1, 12), "CVE-2024-21626 (leaked file descriptor lets a container reach the host file system)"),
    "nvidia-container-toolkit": ((1, 17, 4), "CVE-2024-0132 / CVE-2025-23359 (TOCTOU container escape)"),
}


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(part) for part in match.groups()) if match else ()


def check_version(component: str, version: str) -> Finding:
    """Compare ``version`` of ``component`` with the first release that fixed its known escape."""
    fixed, advisory = KNOWN_ESCAPES[component]
    found = _version_tuple(version)
    if not found:
        return Finding(component, "warn", f"version unknown ({version!r}); make sure it is >= {_dotted(fixed)}")
    if found < fixed:
        return Finding(component, "warn", f"{version} is older than {_dotted(fixed)}: {advisory}. Upgrade it "
                                          "before grading untrusted code in containers")
    return Finding(component, "ok", version)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _local_findings() -> list[Finding]:
    bwrap = shutil.which("bwrap")
    version = cgroups.detect()
    return [
        Finding("bubblewrap", "ok" if bwrap else "missing",
                bwrap or "not installed: the local backend falls back to a plain subprocess (practice only)"),
        Finding("cgroups", "ok" if version else "warn",
                f"{version}: memory, pids and CPU limits" if version else "none writable: rlimits only"),
        Finding("seccomp filter", "ok" if seccomp.supported() else "warn",
                "cvgrade's filter for this architecture" if seccomp.supported() else "no syscall table here"),
    ]


def _docker_findings() -> list[Finding]:
    from harness.containers import docker_client, engine_gpus

    try:
        client = docker_client()
    except SandboxUnavailable as err:
        return [Finding("docker engine", "missing", str(err))]
    info: dict[str, Any] = client.info()
    version: dict[str, Any] = client.version()
    findings = [Finding("docker engine", "ok", f"{version.get('Version', '?')} ({info.get('Driver', '?')})")]
    runc = next((c for c in version.get("Components", []) if c.get("Name") == "runc"), None)
    if runc is not None:
        findings.append(check_version("runc", str(runc.get("Version", ""))))
    tag = runtime_tag()
    if not image_exists(client, tag):
        findings.append(Finding("runtime image", "missing",
                                f"{tag} not built: run `cvgrade image build --bootstrap`"))
    elif stale_worker(client, tag):
        findings.append(Finding("runtime image", "warn",
                                f"{tag} holds an older candidate worker: run `cvgrade image build`"))
    else:
        findings.append(Finding("runtime image", "ok", tag))
    has_gpu_runtime = engine_gpus(client)
    findings.append(Finding("engine GPU runtime", "ok" if has_gpu_runtime else "warn",
                            "nvidia" if has_gpu_runtime else "no nvidia runtime: GPU challenges run on the CPU "
                                                             "when the GPU is optional, and are refused when required"))
    toolkit = shutil.which("nvidia-container-cli")
    if toolkit is not None:
        try:
            text = subprocess.run([toolkit, "--version"], capture_output=True, text=True,  # noqa: S603
                                  timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        findings.append(check_version("nvidia-container-toolkit", text))
    return findings


def diagnose() -> list[Finding]:
    """Everything ``cvgrade doctor`` reports, in order."""
    gpus = [gpu.describe() for gpu in nvidia_gpus()]
    findings = [Finding("GPUs", "ok" if gpus else "warn", "; ".join(gpus) if gpus else "none (CPU only)")]
    return findings + _local_findings() + _docker_findings()
