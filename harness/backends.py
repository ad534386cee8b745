"""Choosing a sandbox backend by name: ``docker``, ``local``, or ``auto``.

``auto`` is the production default: Docker wherever an engine is reachable and
the runtime image is built, else the local sandbox.
"""

from __future__ import annotations

import shutil

from harness.local import LocalSandbox
from harness.sandbox import Sandbox, SandboxConfig, SandboxUnavailable

BACKENDS = ("auto", "docker", "local")


def _local(config: SandboxConfig) -> LocalSandbox:
    if config.gpu == "required" and shutil.which("nvidia-smi") is None:
        raise SandboxUnavailable("this challenge requires a GPU, and this machine has none (no nvidia-smi)")
    return LocalSandbox(isolation=config.isolation, gpu=config.gpu,
                        hidden_distributions=tuple(config.judge_only), cpu_threads=config.cpu_threads)


def make_sandbox(config: SandboxConfig) -> Sandbox:
    """Build the backend ``config`` names, with its options (see ``SandboxConfig``).

    A required GPU that the backend cannot give is an error here.
    """
    name = config.backend
    if name == "local":
        return _local(config)
    if name in ("docker", "auto"):
        from harness.containers import DockerSandbox
        try:
            return DockerSandbox(image=config.image or None, gpu=config.gpu, cpu_threads=config.cpu_threads)
        except SandboxUnavailable:
            if name == "docker":
                raise
            return _local(config)
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: {', '.join(BACKENDS)}")
