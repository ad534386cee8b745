"""Choosing a sandbox backend by name."""

from __future__ import annotations

from typing import Any

from harness.local import LocalSandbox
from harness.sandbox import Sandbox, SandboxUnavailable

BACKENDS = ("local",)


def make_sandbox(config: dict[str, Any]) -> Sandbox:
    """Build the backend named by ``config["backend"]`` with its options."""
    name = config.get("backend", "local")
    if name == "local":
        return LocalSandbox(isolation=config.get("isolation", "auto"))
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: {', '.join(BACKENDS)}")
