"""A challenge's statement (its README.md) as HTML for the candidate's page.

Markdown is rendered with markdown-it-py (CommonMark, plus tables and
strikethrough) with raw HTML off: a ``<script>`` or ``<img onerror=...>`` in
the Markdown comes out as text. Links with a ``javascript:``, ``vbscript:``,
``file:`` or ``data:`` (other than images) target are left as text by
markdown-it's own link check, and every page that shows the result is sent
with a Content-Security-Policy that runs no inline script and loads no image
from elsewhere.
"""

from __future__ import annotations

import functools

from markdown_it import MarkdownIt
from markupsafe import Markup


@functools.cache
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"])


def statement_html(markdown: str) -> Markup:
    """The statement as HTML, safe to put in a page: nothing in ``markdown`` becomes markup of its own."""
    return Markup(_renderer().render(markdown))  # noqa: S704  # raw HTML is off: markdown-it escapes it
