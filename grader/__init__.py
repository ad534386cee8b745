"""cvgrade: grade computer-vision coding challenges against hidden checks."""

from importlib import metadata

try:
    __version__ = metadata.version("cvgrade")  # pyproject.toml's, as installed: the one place it is written
except metadata.PackageNotFoundError:  # run from a checkout that was never installed (scripts/gpu-check's kit)
    __version__ = "0+unknown"
