"""The team's view of a submission's code: its files as JSON, highlighted for the dashboard, and the
original upload to download.

Reading goes through ``grader.sources`` (nothing is run or rendered). Highlighting
is Pygments' lexers with our own per-line HTML: every piece of candidate text is
escaped by ``markupsafe.escape``, and the only markup added is ``<span class="...">``
with Pygments' short class names, styled by ``code_css()`` (class names only: the
pages' Content-Security-Policy allows no inline style). The download is sent as
``application/octet-stream``, ``attachment``, ``nosniff`` and a sandboxing CSP, so a
browser saves it and never renders or runs it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from fastapi import Response
from markupsafe import Markup, escape
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.lexers.python import PythonLexer
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.models import Submission
from api.round_schemas import CellOutputPublic, CellPublic, SourceFilePublic, SubmissionFiles
from api.service import Service
from api.teams import TeamPrincipal
from grader.sources import SourceFile, SubmissionSources, read_sources

MAX_HIGHLIGHTED_CHARS = 256 * 1024  # more of one file is shown without colours (Pygments is not free)


@dataclass(frozen=True)
class StoredSubmission:
    id: int
    invitation_id: int
    challenge_id: str
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    store_key: str


def stored_submission(session: Session, team: TeamPrincipal, submission_id: int) -> StoredSubmission:
    row = session.execute(
        select(Submission.id, Submission.invitation_id, Submission.challenge_id, Submission.filename,
               Submission.kind, Submission.sha256, Submission.size_bytes, Submission.store_key)
        .where(Submission.id == submission_id, Submission.team_id == team.team_id)).first()
    if row is None:
        raise NotFound(f"your team has no submission {submission_id}")
    return StoredSubmission(*row)


def submission_sources(service: Service, stored: StoredSubmission) -> SubmissionSources:
    with service.store.local_path(stored.store_key) as path:
        return read_sources(path.read_bytes(), stored.filename, stored.kind)


def files_public(stored: StoredSubmission, sources: SubmissionSources) -> SubmissionFiles:
    return SubmissionFiles(
        submission_id=stored.id, filename=stored.filename, kind=stored.kind, sha256=stored.sha256,
        size_bytes=stored.size_bytes, entry=sources.entry, note=sources.note,
        files=[_file_public(source) for source in sources.files])


def _file_public(source: SourceFile) -> SourceFilePublic:
    cells = None
    if source.cells is not None:
        cells = [CellPublic(number=cell.number, kind=cell.kind, source=cell.source,
                            execution_count=cell.execution_count,
                            outputs=[CellOutputPublic(kind=output.kind, mime=output.mime, text=output.text,
                                                      image_base64=output.image, truncated=output.truncated)
                                     for output in cell.outputs])
                 for cell in source.cells]
    return SourceFilePublic(path=source.path, size_bytes=source.size_bytes, language=source.language,
                            text=source.text, truncated=source.truncated, cells=cells, note=source.note)


def unit_anchors(sources: SubmissionSources) -> list[str]:
    """The code view's anchor of each code unit, in ``SubmissionSources.code_units`` order: ``f3`` for
    file 3, ``f3-c7`` for cell 7 of the notebook that is file 3 (lines add ``-L12``)."""
    anchors = []
    for index, source in enumerate(sources.files):
        if source.cells is not None:
            anchors += [f"f{index}-c{cell.number}" for cell in source.cells
                        if cell.kind == "code" and cell.source.strip()]
        elif source.language == "python" and source.text:
            anchors.append(f"f{index}")
    return anchors


# -- the original upload ------------------------------------------------------------------------

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def download(service: Service, stored: StoredSubmission) -> Response:
    """The upload as it was received, to save (never to display)."""
    name = _UNSAFE_NAME.sub("_", f"submission-{stored.id}-{stored.filename}")[:150]
    with service.store.local_path(stored.store_key) as path:
        content = path.read_bytes()
    return Response(content, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store",
        "X-Sha256": stored.sha256,
    })


# -- highlighting -------------------------------------------------------------------------------

@functools.cache
def code_css() -> str:
    """Pygments' colours for the classes ``highlighted_lines`` uses, under ``.code``."""
    return str(HtmlFormatter(style="default").get_style_defs(".code"))  # type: ignore[no-untyped-call]


@functools.cache
def _python() -> PythonLexer:
    return PythonLexer(stripnl=False, ensurenl=False)


def lexer_for(path: str) -> Lexer:
    if path.lower().endswith((".py", ".ipynb")):
        return _python()
    lexer: Lexer
    try:
        lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    return lexer


def highlighted_lines(code: str, lexer: Lexer) -> list[Markup]:
    """The code as one escaped, highlighted HTML string per line (a token across lines is split)."""
    if len(code) > MAX_HIGHLIGHTED_CHARS:
        return [escape(line) for line in code.split("\n")]
    lines: list[Markup] = []
    current: list[str] = []
    for kind, value in lexer.get_tokens(code):
        css = _css_class(kind)
        parts = value.split("\n")
        for index, part in enumerate(parts):
            if index > 0:
                lines.append(Markup("".join(current)))  # noqa: S704  # every part was escaped below
                current = []
            if part:
                text = str(escape(part))
                current.append(f'<span class="{css}">{text}</span>' if css else text)
    lines.append(Markup("".join(current)))  # noqa: S704
    if len(lines) > 1 and not str(lines[-1]) and code.endswith("\n"):
        lines.pop()  # the newline that ends the last line does not start another
    return lines


@functools.cache
def _css_class(kind: _TokenType) -> str:
    while kind not in STANDARD_TYPES and kind.parent is not None:
        kind = kind.parent
    return STANDARD_TYPES.get(kind, "")
