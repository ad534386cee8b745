"""Whether a challenge's checks can take the reference solution: if not, its worker is not started up front.

The judge starts the reference's sandboxed worker beside the candidate's, before its own imports,
so that the two start-ups overlap. That worker costs as much as the candidate's (a sandbox and an
``import torch``: about 1.5 s of a core here), and checks that never take it (oracles written in the
check itself, say) pay it for nothing: about 40 % of a light grading's CPU (``bench/backends.py``,
2026-12-04: 3.7 against 2.2 machine CPU-seconds per grading, with and without it).

The checks are read without running them (they are our trusted code, but reading is enough): a
function parameter named after a fixture that needs the reference's worker, or that name as a
string anywhere (``request.getfixturevalue("reference")``), in any Python file of the checks'
folder. The answer errs towards "yes": a file that cannot be read or parsed counts as taking it.
Being wrong the other way costs time, never a verdict: the judge still has the reference's session,
and a check that takes it starts its worker at the first call, as after a restart.
"""

from __future__ import annotations

import ast
from pathlib import Path

from grader.python_ast import parse_python

# The judge's fixtures that start the reference's worker: the reference itself, and the calibration,
# which times the reference (and, with a GPU leased, asks its worker what the machine offers).
FIXTURES_NEEDING_THE_REFERENCE = frozenset({"reference", "calibration"})
_MAX_PARSED_BYTES = 4 << 20


def checks_take_reference(tests_dir: Path) -> bool:
    """Whether any Python file under ``tests_dir`` may ask for the reference's worker (True when unsure).

    Read afresh at every grading: a few milliseconds for the shipped challenges' checks."""
    return any(_file_takes_reference(path) for path in sorted(tests_dir.rglob("*.py")))


def _file_takes_reference(path: Path) -> bool:
    try:
        if path.stat().st_size > _MAX_PARSED_BYTES:
            return True
        source = path.read_bytes()
    except OSError:
        return True
    tree = parse_python(source, filename=str(path))
    if tree is None:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.arg in FIXTURES_NEEDING_THE_REFERENCE:
            return True
        if isinstance(node, ast.Constant) and node.value in FIXTURES_NEEDING_THE_REFERENCE:
            return True
    return False
