"""cvgrade's cache folder on this machine: ``$CVGRADE_CACHE``, by default ``~/.cache/cvgrade``.

The one reader of ``CVGRADE_CACHE``. Inside it: ``wheels/`` and base file systems for the runtime
image (``harness.images``), ``calibration/`` for the figures measured here (``grader.calibration``), ``validations/``
for passing validations (``grader.validation_cache``).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$CVGRADE_CACHE`` when set (and not empty), else ``~/.cache/cvgrade``."""
    return Path(os.environ.get("CVGRADE_CACHE") or Path.home() / ".cache" / "cvgrade")
