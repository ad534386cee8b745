"""What machine and software a grading ran on, for the result's ``environment``."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import grader
from harness.gpus import nvidia_gpus

PACKAGES = ("cvgrade", "torch", "torchvision", "numpy", "pytest")


def _cpu_model() -> str:
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with Path("/proc/meminfo").open(encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def detect_gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as ``nvidia-smi`` reports them (``harness.gpus``); empty when there are none."""
    return [{"name": gpu.name, "memory": gpu.memory, "driver": gpu.driver} for gpu in nvidia_gpus()]


def describe_environment() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["cvgrade"] = getattr(grader, "__version__", versions["cvgrade"])
    gpus = detect_gpus()
    return {
        "hardware": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_gb": _memory_gb(),
            "gpus": gpus,
            "device_class": f"gpu:{gpus[0]['name']}" if gpus else "cpu",
        },
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }
