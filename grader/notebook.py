"""Notebooks: the Python code cells of a candidate's ``.ipynb``, ready to run in order.

``read_notebook`` parses the notebook (refusing anything that is not a valid
Jupyter notebook with one ``BadSubmission``), keeps the code cells, and blanks
out what only IPython understands (``%magic``, ``!shell``, ``obj?``) with a
warning that names the cell, so a notebook written for Jupyter runs as plain
Python. Cell numbers count every cell, markdown included, as the candidate sees
them in Jupyter; line numbers inside a cell never move.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.errors import BadSubmission

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
_MAX_WARNINGS = 50
_SHOWN_CHARS = 60

# Assignments from IPython: ``files = !ls``, ``t = %timeit -o f()``.
_MAGIC_ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.\[\], ]*=\s*[%!]")
# Help: ``?obj``, ``??obj``, ``obj?``, ``np.zeros??``; no Python statement ends with ``?``.
_HELP = re.compile(r"^\?|^[A-Za-z_][\w.]*\?{1,2}$")


@dataclass
class NotebookCode:
    """The code cells to run, each ``{"number": int, "source": str}``, and what was skipped."""

    cells: list[dict[str, object]]
    warnings: list[str] = field(default_factory=list)


def read_notebook(path: Path) -> NotebookCode:
    """Read the code cells of the notebook at ``path``.

    Raises ``BadSubmission`` when the file is too large, not UTF-8, not JSON,
    not a valid nbformat notebook, or written for a kernel other than Python.
    Cells that are empty (or only magics) are dropped; ``number`` is the cell's
    1-based position among all cells.
    """
    name = path.name
    try:
        size_bytes = path.stat().st_size
        if size_bytes > MAX_NOTEBOOK_BYTES:
            raise _invalid(
                name,
                f"it is {size_bytes // 2**20} MiB, the limit is "
                f"{MAX_NOTEBOOK_BYTES // 2**20} MiB (clear the cell outputs)",
            )
        with path.open("rb") as stream:
            # Read one byte over the limit so a file that grew after stat() is still caught.
            raw = stream.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as error:
        raise BadSubmission(f"{name} cannot be read ({error.strerror}); submit it again") from None
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise _invalid(name, "it is larger than the limit (clear the cell outputs)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(name, f"it is not UTF-8 text (byte {error.start})") from None
    try:
        # nbformat warns about the candidate's file (missing cell ids...); that is not ours to show.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Validation errors are captured, not logged, then raised by validate() below.
            json.loads(text)  # its own error says where the JSON breaks; nbformat's only that it does
            notebook: nbformat.NotebookNode = nbformat.reads(  # type: ignore[no-untyped-call]
                text, as_version=4, capture_validation_error={}
            )
            nbformat.validate(notebook)
    except RecursionError:
        raise _invalid(name, "its JSON is nested too deeply") from None
    except Exception as error:  # nbformat raises a zoo of types on hostile input
        raise _invalid(name, _short_reason(error)) from None
    _check_python_kernel(name, notebook)

    code = NotebookCode(cells=[])
    skipped: list[str] = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        source = str(cell.source)
        first_line = source.lstrip().split("\n", 1)[0]
        if first_line.startswith("%%"):
            skipped.append(
                f"cell {number}: skipped cell magic `{_shown(first_line)}` (the whole cell)"
            )
            continue
        cleaned = _strip_ipython_lines(source, number, skipped)
        if cleaned.strip():
            code.cells.append({"number": number, "source": cleaned})
    code.warnings = skipped[:_MAX_WARNINGS]
    if len(skipped) > _MAX_WARNINGS:
        code.warnings.append(f"... and {len(skipped) - _MAX_WARNINGS} more IPython lines skipped")
    return code


def _strip_ipython_lines(source: str, number: int, skipped: list[str]) -> str:
    """Blank out IPython-only lines, keeping line numbers and indentation valid."""
    scanner = _PythonLineScanner()
    lines = source.split("\n")
    smallest_indent: int | None = None
    for index, line in enumerate(lines):
        if scanner.at_statement_start:
            stripped = line.strip()
            what = _ipython_kind(stripped)
            if what is not None:
                skipped.append(f"cell {number}: skipped {what} `{_shown(stripped)}`")
                indent = line[: len(line) - len(line.lstrip())]
                inside_block = (
                    bool(indent) and smallest_indent is not None and (len(indent) > smallest_indent)
                )
                ending = "\r" if line.endswith("\r") else ""
                lines[index] = (indent + "pass" if inside_block else "") + ending
                continue
            if stripped and not stripped.startswith("#"):
                indent_chars = len(line) - len(line.lstrip())
                smallest_indent = (
                    indent_chars if smallest_indent is None else min(indent_chars, smallest_indent)
                )
        scanner.feed(line)
    return "\n".join(lines)


def _ipython_kind(stripped: str) -> str | None:
    """What IPython-only syntax a statement line is, or None for plain Python."""
    if not stripped or stripped.startswith("#"):
        return None
    if stripped.startswith("%"):
        return "IPython magic"
    if stripped.startswith("!"):
        return "shell command"
    assignment = _MAGIC_ASSIGNMENT.match(stripped)
    if assignment:
        return "shell command" if assignment.group().endswith("!") else "IPython magic"
    if _HELP.match(stripped):
        return "IPython help"
    return None


class _PythonLineScanner:
    """Tracks, line by line, whether the next line starts a new statement.

    Enough of Python's lexer to see strings, comments, brackets and backslash
    continuations, so ``% b`` continuing an expression or ``%d`` inside a
    triple-quoted string is never mistaken for a magic.
    """

    def __init__(self) -> None:
        self.quote: str | None = None
        self.bracket_depth = 0
        self.continued = False

    @property
    def at_statement_start(self) -> bool:
        return self.quote is None and self.bracket_depth == 0 and not self.continued

    def feed(self, line: str) -> None:
        line = line.rstrip("\r")
        self.continued = False
        index, length = 0, len(line)
        in_comment = False
        while index < length:
            char = line[index]
            if self.quote is not None:
                if char == "\\":
                    index += 2
                elif line.startswith(self.quote, index):
                    index += len(self.quote)
                    self.quote = None
                else:
                    index += 1
                continue
            if char == "#":
                in_comment = True
                break
            if char in "'\"":
                triple = line[index : index + 3]
                self.quote = triple if triple in ('"""', "'''") else char
                index += len(self.quote)
                continue
            if char in "([{":
                self.bracket_depth += 1
            elif char in ")]}":
                self.bracket_depth = max(0, self.bracket_depth - 1)
            index += 1
        escaped_newline = index > length
        if self.quote in ("'", '"') and not escaped_newline:
            self.quote = None  # an unterminated one-line string: a syntax error Python will report
        if self.quote is None and not in_comment and line.endswith("\\"):
            self.continued = True


def _check_python_kernel(name: str, notebook: nbformat.NotebookNode) -> None:
    metadata = notebook.get("metadata", {})
    language = metadata.get("kernelspec", {}).get("language") or metadata.get(
        "language_info", {}
    ).get("name")
    if isinstance(language, str) and language and not language.lower().startswith("python"):
        raise BadSubmission(
            f"{name} is a {_shown(language)} notebook, but solutions are run "
            "as Python; submit a Python notebook or a .py file"
        )


def _invalid(name: str, reason: str) -> BadSubmission:
    return BadSubmission(
        f"{name} is not a valid Jupyter notebook: {reason}; "
        "save it again from Jupyter, or submit a .py file"
    )


def _short_reason(error: Exception) -> str:
    """Why nbformat refused the file, as the middle of our sentence: lower case, one line, no Python internals."""
    if isinstance(error, json.JSONDecodeError):
        reason = f"it is not JSON ({error.msg[:1].lower()}{error.msg[1:]} at line {error.lineno}, column {error.colno})"
    elif isinstance(error, nbformat.ValidationError):
        first_line = str(error).strip().split("\n", 1)[0].rstrip(".")
        reason = f"it does not follow the notebook format: {first_line[:1].lower()}{first_line[1:]}"
    else:  # nbformat's reader fails on odd shapes with TypeError, KeyError ...: their text means nothing to a person
        reason = "it does not follow the notebook format (its cells or metadata are not what Jupyter writes)"
    return _shown(reason, 200)


def _shown(text: str, limit: int = _SHOWN_CHARS) -> str:
    """Candidate text made safe to show: printable, one line, bounded."""
    printable = "".join(char if char.isprintable() else "?" for char in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."
