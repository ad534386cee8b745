"""Which of the grader's modules a grading can run: the part of ``grader/`` a validation's verdict depends on.

A passing validation is reused while nothing that decides it has changed (``grader.validation_cache``).
The grader's reports, pages, exports and the review tools (``html_report``, ``check_targets``,
``similarity``, ...) are never run by a grading, so a change to them must not cost CI a fresh
validation of every challenge (about 18 minutes here).

What a grading can run is found by reading the code, never by running it: starting from the validation
itself and from what the challenge's own files import, every module that is imported anywhere in a
module already found (at its top or inside a function), and every module named in a string
(``python -m grader.judge.runner``, the warm judge's list of modules to import). The answer errs towards
"more": a module named anywhere in the grading's code counts, whether or not that line ever runs. A file
that cannot be parsed counts as importing every module.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

from grader.python_ast import parse_python

PACKAGES = ("grader", "harness")
# Where a validation starts: the validation itself (it grades through ``grader.grading``).
VALIDATION_ROOTS = ("grader.validation_cache", "grader.validate")
_MODULE_NAME = re.compile(r"(?:grader|harness)(?:\.\w+)+|grader|harness")


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package at ``package_dir``, by its dotted name (``grader.judge.runner``)."""
    found = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def named_modules(source: str | bytes, filename: str) -> set[str] | None:
    """The grader's and harness's modules ``source`` imports or names in a string; None when it does not parse."""
    tree = parse_python(source, filename=filename)
    if tree is None:
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # ``from grader import judgekit``
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.fullmatch(node.value):
            names.add(node.value)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def modules_a_grading_can_run(modules: dict[str, Path], challenge_root: Path | None = None,
                              roots: Iterable[str] = VALIDATION_ROOTS) -> set[str]:
    """The names in ``modules`` that a validation of the challenge at ``challenge_root`` can import."""
    pending = list(roots)
    if challenge_root is not None:
        for path in sorted(challenge_root.rglob("*.py")):
            named = named_modules(path.read_bytes(), str(path))
            pending += list(modules) if named is None else sorted(named)
    found: set[str] = set()
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for end in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            module = ".".join(parts[:end])
            if module in found or module not in modules:
                continue
            found.add(module)
            named = named_modules(modules[module].read_bytes(), str(modules[module]))
            pending += list(modules) if named is None else sorted(named)
    return found
