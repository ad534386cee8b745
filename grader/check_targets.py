"""Which of the candidate's functions each check calls, and where the candidate defined them: the link
from a failed check in a report to the code a reviewer should read.

The checks side is read from the hidden tests (trusted code of ours) without running them: the names
of the challenge's declared functions that a check's test function mentions, as ``candidate.nms(...)``,
as a string (``candidate.timed("box_iou", ...)``) or first in a message (``"sample_params: ..."``),
directly or through a helper function of the same file. A challenge that declares one function links
every check to it.

The candidate side parses the candidate's code with ``ast`` (never runs it) and finds the top-level
definitions of those names; code that does not parse simply has no links.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from grader.challenge import Challenge
from grader.python_ast import parse_python

# The candidate's code is parsed in our process (the service's, for the team's code view), under the one
# parse lock: at most this much of it in all, whatever the number of files and cells (a 1 MiB file took
# 1.5 to 6.4 s and up to 495 MiB to parse here).
MAX_PARSED_CHARS = 1024 * 1024
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
    one that does not fit is passed over."""
    found: dict[str, Definition] = {}
    wanted = set(names)
    left = MAX_PARSED_CHARS
    for index, (label, code) in enumerate(units):
        if len(code) > left:
            continue
        left -= len(code)
        tree = parse_python(code)
        if tree is None:
            continue
        for node in tree.body:
            for name in _defined_names(node):
                if name in wanted:
                    found[name] = Definition(index, label, node.lineno)
    return found


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []
