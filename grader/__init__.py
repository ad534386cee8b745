"""cvgrade: grade computer-vision coding challenges against hidden checks."""

__version__ = "0.1.0"
