"""Hardware-calibrated thresholds: figures measured on the reference solution, cached per machine.

A threshold such as "at least half the reference's speed-up" only means the same
on a laptop and on an H100 when the reference's figure comes from the machine
that grades. Hidden checks ask the ``calibration`` fixture for a figure by key;
it is read from a cache keyed by challenge, version and machine, or measured
on the spot with the check's own ``measure`` function.

Only a run whose submission *is* the reference writes the cache (``cvgrade
calibrate``, ``cvgrade validate``): a candidate's run measures what is missing
for itself but never stores it, so no submission can lower the bar for the
candidates graded after it.

No candidate process runs while a figure is measured: ``measure`` runs inside
``isolate`` (the judge freezes the candidate's worker, or stops it where the
backend cannot freeze), and the result says which.

Besides the checks' own figures, a run grading the reference stores how long
its slowest call of each function took (``call_s.<function>``: the per-call
limits of later candidates, see ``grader.judge.proxy``) and how long each check
took (``check_s.<check>``: the time-left estimate shown while grading).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from harness.cache import cache_dir

SOURCE_CACHED = "cached"
SOURCE_MEASURED = "measured"


def calibration_dir() -> Path:
    """``$CVGRADE_CACHE/calibration``, by default ``~/.cache/cvgrade/calibration`` (``harness.cache``)."""
    return cache_dir() / "calibration"


def hardware_class(device: Mapping[str, Any]) -> str:
    """``cpu``, or ``cuda-`` and the GPU's name in lower case (``cuda-nvidia-h100-80gb-hbm3``)."""
    if device.get("type") != "cuda":
        return "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", str(device.get("name", "unknown")).lower()).strip("-")
    return f"cuda-{slug or 'unknown'}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_description(device: Mapping[str, Any], cpu_threads: int, backend: str) -> dict[str, Any]:
    """What a calibrated figure depends on: the processor, the accelerator, the threads and the sandbox."""
    return {
        "hardware_class": hardware_class(device),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count() or 1,
        "cpu_threads": cpu_threads,
        "gpu": str(device.get("name", "")) if device.get("type") == "cuda" else "",
        "gpu_memory_mb": int(device.get("memory_mb", 0) or 0) if device.get("type") == "cuda" else 0,
        "backend": backend,
    }


def machine_key(description: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(description), sort_keys=True).encode()).hexdigest()[:16]


def forget_calibration(challenge_id: str, version: str, root: Path | None = None) -> bool:
    """Drop every machine's figures for one challenge version; True when there were some."""
    import shutil

    folder = (root or calibration_dir()) / f"{challenge_id}@{version}"
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


class CalibrationCache:
    """Figures for one challenge version on one machine: ``<root>/<id>@<version>/<machine key>.json``."""

    def __init__(self, root: Path, challenge_id: str, version: str, machine: Mapping[str, Any]) -> None:
        self.machine = dict(machine)
        self.path = root / f"{challenge_id}@{version}" / f"{machine_key(machine)}.json"

    def read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        values = data.get("values") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            return {}
        return {str(k): float(v) for k, v in values.items() if isinstance(v, (int, float))}

    def write(self, key: str, value: float) -> None:
        """Add one figure; the file is replaced atomically, so concurrent readers never see half of it."""
        self.write_many({key: value})

    def write_many(self, figures: Mapping[str, float]) -> None:
        """Add or replace several figures at once, atomically."""
        values = self.read()
        values.update(figures)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".calibration-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"machine": self.machine, "values": values}, out, indent=2, sort_keys=True)
        Path(temporary).replace(self.path)

    def clear(self) -> bool:
        """Forget this machine's figures; True when there were some."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


@contextlib.contextmanager
def _nothing_to_isolate() -> Iterator[str]:
    yield "no candidate worker"


class Calibration:
    """The ``calibration`` fixture of hidden checks.

    ``isolate``: a context manager that keeps every process of the candidate from
    running while a figure is measured (the judge's freezer); it yields what it did.
    """

    def __init__(
        self, cache: CalibrationCache, *, writable: bool,
        isolate: Callable[[], AbstractContextManager[str]] = _nothing_to_isolate,
    ) -> None:
        self._cache = cache
        self._writable = writable
        self._isolate = isolate
        self.used: dict[str, dict[str, Any]] = {}

    @property
    def writable(self) -> bool:
        """Whether this run grades the reference itself, and so may store figures."""
        return self._writable

    def cached(self) -> dict[str, float]:
        """Every figure stored for this challenge version on this machine."""
        return self._cache.read()

    def store(self, figures: Mapping[str, float]) -> None:
        """Store figures measured by this run (only a run grading the reference may; others store nothing)."""
        if self._writable and figures:
            self._cache.write_many(figures)

    @property
    def hardware_class(self) -> str:
        return str(self._cache.machine["hardware_class"])

    @property
    def machine(self) -> dict[str, Any]:
        return dict(self._cache.machine)

    def value(self, key: str, measure: Callable[[], float]) -> float:
        """The cached figure for ``key`` on this machine, else ``measure()`` (stored only by reference runs)."""
        cached = self._cache.read().get(key)
        if cached is not None:
            self.used[key] = {"value": cached, "source": SOURCE_CACHED}
            return cached
        with self._isolate() as candidate:
            measured = float(measure())
        if self._writable:
            self._cache.write(key, measured)
        self.used[key] = {"value": measured, "source": SOURCE_MEASURED, "candidate_during_measurement": candidate}
        return measured
