"""Whether a challenge's checks can take the reference solution: if not, its worker is not started up front.

The judge starts the reference's sandboxed worker beside the candidate's, before its own imports,
so that the two start-ups overlap. That worker costs as much as the candidate's (a sandbox and an
``import torch``: about 1.5 s of a core here), and checks that never take it (oracles written in the
check itself, say) pay it for nothing: on a small machine grading many submissions, it is a third of
each grading's CPU.

The checks are read without running them (they are our trusted code, but reading is enough): a
function parameter named after a fixture that needs the reference's worker, or that name as a
string anywhere (``request.getfixturevalue("reference")``), in any Python file of the checks'
folder. The answer errs towards "yes": a file that cannot be read or parsed counts as taking it.
Being wrong the other way costs time, never a verdict: the judge still has the reference's session,
and a check that takes it starts its worker at the first call, as after a restart.
"""

from __future__ import annotations

import ast
import functools
import threading
from pathlib import Path

# The judge's fixtures that start the reference's worker: the reference itself, and the calibration,
# which asks the reference's worker (ours) what the machine offers.
FIXTURES_NEEDING_THE_REFERENCE = frozenset({"reference", "calibration"})
_MAX_PARSED_BYTES = 4 << 20
# CPython 3.11's ast.parse is not safe in two threads at once (gradings run in threads: --jobs, the
# service): a SystemError "AST constructor recursion depth mismatch" seen in CI. One parse at a time.
_PARSING = threading.Lock()


def checks_take_reference(tests_dir: Path) -> bool:
    """Whether any Python file under ``tests_dir`` may ask for the reference's worker (True when unsure)."""
    return _checks_take_reference(tests_dir.resolve(), _fingerprint(tests_dir))


def _fingerprint(tests_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and change times of the checks' files: an edited check is read again."""
    files = []
    for path in sorted(tests_dir.rglob("*.py")):
        try:
            stat = path.stat()
        except OSError:
            files.append((str(path), -1, -1))
            continue
        files.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(files)


@functools.lru_cache(maxsize=64)
def _checks_take_reference(tests_dir: Path, fingerprint: tuple[tuple[str, int, int], ...]) -> bool:
    return any(_file_takes_reference(Path(name)) for name, _, _ in fingerprint)


def _file_takes_reference(path: Path) -> bool:
    try:
        if path.stat().st_size > _MAX_PARSED_BYTES:
            return True
        source = path.read_bytes()
        with _PARSING:
            tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.arg in FIXTURES_NEEDING_THE_REFERENCE:
            return True
        if isinstance(node, ast.Constant) and node.value in FIXTURES_NEEDING_THE_REFERENCE:
            return True
    return False
