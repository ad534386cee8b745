"""Which of the candidate's functions each check calls, and where the candidate defined them: the link
from a failed check in a report to the code a reviewer should read.

The checks side is read from the hidden tests (trusted code of ours) without running them: the names
of the challenge's declared functions that a check's test function mentions, as ``candidate.nms(...)``,
as a string (``candidate.timed("box_iou", ...)``) or first in a message (``"sample_params: ..."``),
directly or through a helper function of the same file. A challenge that declares one function links
every check to it.

The candidate side parses the candidate's code with ``ast`` (never runs it) and finds the top-level
definitions of those names; code that does not parse simply has no links. The candidate's code is
hostile, and parsing it can take seconds and hundreds of MB (a 1 MiB file: 1.5 to 6.4 s, up to 495 MiB
here), so it is parsed in a child Python under a memory and CPU limit, never in ours: the service's
process, which views pages and grades beside it, neither waits behind it (``grader.python_ast``'s lock)
nor grows by it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from grader.challenge import Challenge
from grader.limited_python import run_limited
from grader.python_ast import parse_python

# The candidate's code is parsed in a limited child (the team's code view asks on every page view): at most
# this much of it in all, whatever the number of files and cells (a 1 MiB file took 1.5 to 6.4 s and up to
# 495 MiB to parse here).
MAX_PARSED_CHARS = 1024 * 1024
# Reads {"units": [[index, code], ...], "names": [...]} on stdin; prints [[index, name, line], ...] in the
# order of the code, so the last definition of a name is the last found. Nothing of the code is run.
_CHILD = r"""
import ast
wanted = set(job["names"])
found = []
for index, code in job["units"]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        continue
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            names = []
        found += [[index, name, node.lineno] for name in names if name in wanted]
    del tree
print(json.dumps(found))
"""
_FIRST_WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Definition:
    unit: int  # which code unit (``SubmissionSources.code_units``)
    label: str  # its file, or notebook cell
    line: int


def check_functions(challenge: Challenge) -> dict[str, list[str]]:
    """For each check, the declared functions its test calls (in declaration order)."""
    declared = [function.name for function in challenge.spec.functions]
    mapping = {}
    for check in challenge.spec.checks:
        file_name, _, test = check.test.partition("::")
        names: frozenset[str] = _mentioned(str(challenge.hidden_dir / file_name), test.split("::")[-1].split("[")[0],
                           tuple(declared))
        if not names and len(declared) == 1:
            names = frozenset(declared)
        mapping[check.name] = [name for name in declared if name in names]
    return mapping


@functools.lru_cache(maxsize=64)
def _mentioned(path: str, test_name: str, declared: tuple[str, ...]) -> frozenset[str]:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return frozenset()
    tree = parse_python(source, filename=path)
    if tree is None:
        return frozenset()
    functions = {node.name: node for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    found: set[str] = set()
    seen: set[str] = set()
    pending = [test_name]
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Attribute) and node.attr in declared:
                found.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # "nms", or a message that names it first ("sample_params: ...", "box_iou of ..."): checks that
                # call through an adapter still say which function they judge.
                first = _FIRST_WORD.match(node.value)
                if first and first.group() in declared:
                    found.add(first.group())
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                pending.append(node.func.id)  # a helper of the same file
    return frozenset(found)


def definitions(units: list[tuple[str, str]], names: list[str]) -> dict[str, Definition]:
    """Where each of ``names`` is defined at the top level of the candidate's code (the last definition
    wins, as when the module runs). Units are read in order while they fit in ``MAX_PARSED_CHARS`` in all;
    one that does not fit is passed over. Parsed in a limited child: when it cannot finish (its memory or
    CPU limit, its time-out), nothing is linked."""
    wanted = set(names)
    job: list[tuple[int, str]] = []
    left = MAX_PARSED_CHARS
    for index, (_, code) in enumerate(units):
        if len(code) <= left:
            left -= len(code)
            job.append((index, code))
    if not job or not wanted:
        return {}
    rows = run_limited(_CHILD, {"units": job, "names": sorted(wanted)})
    found: dict[str, Definition] = {}
    for row in rows if isinstance(rows, list) else []:
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], int) and 0 <= row[0] < len(units)
                and row[1] in wanted and isinstance(row[2], int) and row[2] > 0):
            continue
        found[row[1]] = Definition(row[0], units[row[0]][0], row[2])
    return found
