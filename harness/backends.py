"""Choosing a sandbox backend by name: ``docker``, ``local``, or ``auto``.

``auto`` is the production default: Docker wherever an engine is reachable and
the runtime image is built, else the local sandbox.
"""

from __future__ import annotations

import shutil
from typing import Any

from harness.local import LocalSandbox
from harness.sandbox import Sandbox, SandboxUnavailable

BACKENDS = ("auto", "docker", "local")


def _local(config: dict[str, Any]) -> LocalSandbox:
    if config.get("gpu") == "required" and shutil.which("nvidia-smi") is None:
        raise SandboxUnavailable("this challenge requires a GPU, and this machine has none (no nvidia-smi)")
    return LocalSandbox(isolation=config.get("isolation", "auto"), gpu=config.get("gpu", "off"),
                        hidden_distributions=tuple(config.get("judge_only", ())),
                        cpu_threads=int(config.get("cpu_threads", 1)))


def make_sandbox(config: dict[str, Any]) -> Sandbox:
    """Build the backend named by ``config["backend"]`` with its options.

    ``config["gpu"]`` is the challenge's wish: ``off``, ``optional`` or
    ``required``; a required GPU that the backend cannot give is an error here.
    ``config["cpu_threads"]``: how many cores each worker is pinned to (``harness.cores``).
    """
    name = config.get("backend", "auto")
    if name == "local":
        return _local(config)
    if name in ("docker", "auto"):
        from harness.containers import DockerSandbox
        try:
            return DockerSandbox(image=config.get("image") or None, gpu=config.get("gpu", "off"),
                                 cpu_threads=int(config.get("cpu_threads", 1)))
        except SandboxUnavailable:
            if name == "docker":
                raise
            return _local(config)
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: {', '.join(BACKENDS)}")
