"""A submission's files as people read them: each file's text, a notebook's cells with their outputs,
a zip's tree. Used by the team's code view and by the similarity check (``grader.similarity``).

Everything here is the candidate's and untrusted. Nothing is run or rendered:
a notebook's HTML, JavaScript or SVG output stays text (marked with its type),
and only PNG and JPEG images whose bytes really are PNG or JPEG are kept as
images, decoded and re-encoded here. Caps bound what a hostile upload can make
us read: bytes per file, bytes in all, files, cells and outputs; what passes a
cap is cut and says so. A zip is read member by member (never extracted), and
a member that cannot be read is listed with the reason instead.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from grader.archive import SKIPPED_DIRS, is_skipped_file

MAX_SHOWN_FILE_BYTES = 512 * 1024  # more of one file is cut (the original stays downloadable)
MAX_READ_BYTES = 16 * 1024 * 1024  # read from a zip in all
MAX_FILES = 2000
MAX_CELLS = 2000
MAX_OUTPUTS_PER_CELL = 50
MAX_OUTPUT_CHARS = 20_000
MAX_IMAGE_BYTES = 2 * 1024 * 1024

Language = Literal["python", "notebook", "text", "binary"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
# What a notebook output may carry besides plain text, shown as its source text and never rendered.
_SHOWN_AS_TEXT = ("text/html", "image/svg+xml", "text/markdown", "text/latex", "application/javascript",
                  "application/json")


@dataclass(frozen=True)
class CellOutput:
    """One output of a notebook cell. ``mime`` says what it was; ``text`` is what is shown (for
    ``text/html`` or ``application/javascript``, their source as text); ``image`` is base64 of a
    checked PNG or JPEG (``mime`` then says which)."""

    kind: Literal["stream", "result", "error", "image"]
    mime: str
    text: str = ""
    image: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based among all cells, as Jupyter shows them
    kind: Literal["code", "markdown", "raw"]
    source: str
    execution_count: int | None = None
    outputs: list[CellOutput] = field(default_factory=list)


@dataclass(frozen=True)
class SourceFile:
    """One file of a submission. ``text`` is None for a binary file; ``cells`` is set for a notebook
    that could be read as one; ``note`` says why something is not shown in full."""

    path: str
    size_bytes: int
    language: Language
    text: str | None
    truncated: bool = False
    cells: list[Cell] | None = None
    note: str = ""


@dataclass(frozen=True)
class SubmissionSources:
    kind: str  # py | ipynb | zip, as stored
    entry: str | None  # the file that is graded, when it can be told
    files: list[SourceFile]
    note: str = ""  # about the whole upload (a zip that cannot be opened, too many files)

    def code_units(self) -> list[tuple[str, str]]:
        """The Python code to compare, as ``(label, code)``: each ``.py`` file, and each notebook's code
        cells (labelled ``path, cell N``), in file order."""
        units: list[tuple[str, str]] = []
        for source in self.files:
            if source.cells is not None:
                units += [(f"{source.path}, cell {cell.number}", cell.source)
                          for cell in source.cells if cell.kind == "code" and cell.source.strip()]
            elif source.language == "python" and source.text:
                units.append((source.path, source.text))
        return units


def read_sources(content: bytes, filename: str, kind: str) -> SubmissionSources:
    """The files of an upload as stored: its bytes, the name it was uploaded as, and its kind."""
    if kind == "zip":
        return _read_zip(content)
    return SubmissionSources(kind=kind, entry=filename, files=[read_file(filename, content)])


def read_file(path: str, content: bytes) -> SourceFile:
    """One file: Python, a notebook, other text, or binary (by its bytes, not only its name)."""
    size_bytes = len(content)
    text = _decode(content[:MAX_SHOWN_FILE_BYTES])
    if text is None:
        return SourceFile(path, size_bytes, "binary", None, note=f"a binary file of {size_bytes:,} bytes: not shown")
    truncated = size_bytes > MAX_SHOWN_FILE_BYTES
    note = f"only the first {MAX_SHOWN_FILE_BYTES // 1024} KiB of {size_bytes:,} bytes are shown" if truncated else ""
    if path.lower().endswith(".ipynb"):
        if truncated:
            return SourceFile(path, size_bytes, "text", text, truncated, note=note + " (too large to show as cells)")
        try:
            cells = notebook_cells(content)
        except ValueError as err:
            return SourceFile(path, size_bytes, "text", text, note=f"not shown as cells: {err}")
        return SourceFile(path, size_bytes, "notebook", text, cells=cells)
    language: Language = "python" if path.lower().endswith(".py") else "text"
    return SourceFile(path, size_bytes, language, text, truncated, note=note)


def _decode(content: bytes) -> str | None:
    if b"\x00" in content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(content) - 3:  # a multi-byte character cut by the cap
            return content[: err.start].decode("utf-8")
        return None


# -- notebooks ----------------------------------------------------------------------------------

def notebook_cells(content: bytes) -> list[Cell]:
    """The cells of a notebook (nbformat 4, or 3 where cells sit in worksheets), with their outputs as
    text or checked images. ``ValueError`` with the reason when it is not a notebook."""
    try:
        notebook = json.loads(content)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"it is not JSON ({type(err).__name__})") from None
    if not isinstance(notebook, dict):
        raise ValueError("it is not a JSON object")
    raw_cells = notebook.get("cells")
    if raw_cells is None and isinstance(notebook.get("worksheets"), list) and notebook["worksheets"]:
        raw_cells = notebook["worksheets"][0].get("cells") if isinstance(notebook["worksheets"][0], dict) else None
    if not isinstance(raw_cells, list):
        raise ValueError("it has no list of cells")
    cells = []
    for number, raw in enumerate(raw_cells[:MAX_CELLS], start=1):
        if not isinstance(raw, dict):
            continue
        kind: Literal["code", "markdown", "raw"] = (
            raw["cell_type"] if raw.get("cell_type") in ("code", "markdown", "raw") else "raw")
        source = _joined(raw.get("source", raw.get("input", "")))
        count = raw.get("execution_count", raw.get("prompt_number"))
        outputs = list(_outputs(raw.get("outputs"))) if kind == "code" else []
        cells.append(Cell(number, kind, source, count if isinstance(count, int) else None, outputs))
    return cells


def _joined(value: Any) -> str:
    """nbformat keeps multi-line strings as a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part for part in value if isinstance(part, str))
    return ""


def _outputs(raw_outputs: Any) -> Iterator[CellOutput]:
    if not isinstance(raw_outputs, list):
        return
    for raw in raw_outputs[:MAX_OUTPUTS_PER_CELL]:
        if not isinstance(raw, dict):
            continue
        kind = raw.get("output_type")
        if kind == "stream":
            yield _text_output("stream", f"text/{raw.get('name', 'stdout')}", _joined(raw.get("text")))
        elif kind == "error":
            lines = raw.get("traceback")
            text = "\n".join(line for line in lines if isinstance(line, str)) if isinstance(lines, list) else ""
            text = text or f"{raw.get('ename', 'Error')}: {raw.get('evalue', '')}"
            yield _text_output("error", "error", _ANSI.sub("", text))
        elif kind in ("execute_result", "display_data", "pyout"):
            data = raw.get("data")
            yield _rich_output(data if isinstance(data, dict) else raw)
    if len(raw_outputs) > MAX_OUTPUTS_PER_CELL:
        yield CellOutput("stream", "text/plain", f"... {len(raw_outputs) - MAX_OUTPUTS_PER_CELL} more outputs "
                         "not shown", truncated=True)


def _rich_output(data: dict[str, Any]) -> CellOutput:
    """A display: a checked image if it has one, else its plain text, else another type's source as text."""
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            image = _checked_image(mime, data[mime])
            if image is not None:
                return CellOutput("image", mime, _joined(data.get("text/plain")), image=image)
    if "text/plain" in data:
        also = [mime for mime in data if mime != "text/plain"]
        output = _text_output("result", "text/plain", _joined(data["text/plain"]))
        return CellOutput(output.kind, "text/plain" + (f" (also {', '.join(also[:3])}, not shown)" if also else ""),
                          output.text, truncated=output.truncated)
    for mime in _SHOWN_AS_TEXT:
        if mime in data:
            value = data[mime]
            if isinstance(value, str | list):
                return _text_output("result", mime, _joined(value))
            try:
                return _text_output("result", mime, json.dumps(value, indent=1))
            except (TypeError, ValueError, RecursionError):
                return CellOutput("result", mime, f"(an output of type {mime}: not shown)")
    kinds = ", ".join(str(mime)[:40] for mime in list(data)[:3]) or "nothing"
    return CellOutput("result", "unknown", f"(an output of type {kinds}: not shown)")


def _text_output(kind: Literal["stream", "result", "error"], mime: str, text: str) -> CellOutput:
    if len(text) > MAX_OUTPUT_CHARS:
        return CellOutput(kind, mime, text[:MAX_OUTPUT_CHARS] + f"\n... ({len(text) - MAX_OUTPUT_CHARS:,} more "
                          "characters not shown)", truncated=True)
    return CellOutput(kind, mime, text)


def _checked_image(mime: str, value: Any) -> str | None:
    """Base64 of the image when the data decodes to a PNG or JPEG within the cap; None otherwise."""
    encoded = _joined(value)
    if not encoded or len(encoded) > MAX_IMAGE_BYTES * 4 // 3 + 8:
        return None
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_IMAGE_MAGIC[mime]):
        return None
    return base64.b64encode(raw).decode("ascii")  # our own encoding of bytes we checked


# -- zip archives -------------------------------------------------------------------------------

def _read_zip(content: bytes) -> SubmissionSources:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        return SubmissionSources("zip", None, [], note=f"the zip cannot be opened ({type(err).__name__})")
    members = [info for info in members if not _skipped(info.filename)]
    note = ""
    if len(members) > MAX_FILES:
        note = f"{len(members):,} files: only the first {MAX_FILES:,} are listed"
        members = members[:MAX_FILES]
    top = _common_top_folder([info.filename for info in members])
    files, read_bytes = [], 0
    for info in sorted(members, key=lambda member: member.filename):
        path = info.filename[len(top):] if top else info.filename
        if read_bytes >= MAX_READ_BYTES:
            files.append(SourceFile(path, info.file_size, "binary", None, note="not read: the upload is too large "
                                    "to show in full; download it"))
            continue
        try:
            with archive.open(info) as member:
                content_part = member.read(MAX_SHOWN_FILE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as err:
            files.append(SourceFile(path, info.file_size, "binary", None,
                                    note=f"cannot be read ({type(err).__name__})"))
            continue
        read_bytes += len(content_part)
        shown = read_file(path, content_part)
        if len(content_part) > MAX_SHOWN_FILE_BYTES:  # the declared size is the candidate's word; the bytes are not
            shown = SourceFile(path, max(info.file_size, len(content_part)), shown.language, shown.text, True,
                               None, f"only the first {MAX_SHOWN_FILE_BYTES // 1024} KiB are shown")
        files.append(shown)
    paths = {source.path for source in files}
    entry: str | None = next((name for name in ("solution.py", "solution.ipynb") if name in paths), None)
    if entry is None:
        notebooks = [path for path in paths if "/" not in path and path.lower().endswith(".ipynb")]
        entry = notebooks[0] if len(notebooks) == 1 else None
    return SubmissionSources("zip", entry, files, note=note)


def _skipped(name: str) -> bool:
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    return not parts or any(part in SKIPPED_DIRS for part in parts[:-1]) or is_skipped_file(parts[-1])


def _common_top_folder(names: list[str]) -> str:
    """``folder/`` when every member sits in that one folder (graded from inside it), else ``""``."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and all("/" in name for name in names):
        return tops.pop() + "/"
    return ""
