"""Choosing a sandbox backend by name: ``docker``, ``local``, or ``auto``.

``auto`` is the production default: Docker wherever an engine is reachable and
the runtime image is built, else the local sandbox.
"""

from __future__ import annotations

from typing import Any

from harness.local import LocalSandbox
from harness.sandbox import Sandbox, SandboxUnavailable

BACKENDS = ("auto", "docker", "local")


def make_sandbox(config: dict[str, Any]) -> Sandbox:
    """Build the backend named by ``config["backend"]`` with its options."""
    name = config.get("backend", "auto")
    if name == "local":
        return LocalSandbox(isolation=config.get("isolation", "auto"))
    if name in ("docker", "auto"):
        from harness.containers import DockerSandbox
        from harness.images import RUNTIME_TAG

        try:
            return DockerSandbox(image=config.get("image") or RUNTIME_TAG, gpu=config.get("gpu", "off"))
        except SandboxUnavailable:
            if name == "docker":
                raise
            return LocalSandbox(isolation=config.get("isolation", "auto"))
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: {', '.join(BACKENDS)}")
