"""Text from a submission, made safe for a terminal: never markup, never a raw control character.

Anything a candidate can influence (exception messages, printed output, notebook lines quoted in
a note, file names, what a service relays) reaches a terminal only through these functions. Rich
would read ``[/]`` or ``[link=...]`` in a plain string as markup (and crash on the first), and it
passes escape sequences through untouched: clear the screen, draw a fake "Passed" line, write the
clipboard (OSC 52), open a hyperlink (OSC 8). Here every control character becomes a visible
escape, ``\\x1b`` for ESC, so the reader sees what the candidate sent and the terminal does
nothing with it. Newlines and tabs are kept: messages and tracebacks span lines.
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

# C0 controls but tab and newline, DEL, C1 controls, and the invisible characters that reorder or
# hide text (bidirectional overrides and isolates, marks, line and paragraph separators).
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control or invisible character written as a visible escape."""
    return _INVISIBLE.sub(_escaped, text)


def as_text(text: object, style: str = "") -> Text:
    """Candidate text as a rich ``Text``: printed literally, its control characters made visible."""
    return Text(visible(str(text)), style=style)


def as_markup(text: object) -> str:
    """Candidate text to put inside a markup string: markup escaped, control characters made visible."""
    return escape(visible(str(text)))
