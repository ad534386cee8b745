"""Python source to an ``ast`` tree, safely from any thread: the one place the grader calls ``ast.parse``
in its own process (the candidate's code is parsed in a limited child: ``grader.check_targets``).

CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state. When a garbage
collection in the middle of one parse runs a finalizer that lets another thread in, and that thread
parses too, the first parse ends in ``SystemError: AST constructor recursion depth mismatch``
(python/cpython gh-106905; 3.12 changed when collections run, which hides it). The grader parses in
threads: gradings under ``--jobs``, the service's workers and the dashboard's requests. So every
parse of ours takes one lock; a parse by someone else's code (the 3.11 ``traceback`` module places
its carets with ``ast.parse``) can still collide with ours, so one more try follows such an error.
"""

from __future__ import annotations

import ast
import threading

_PARSING = threading.Lock()
_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def parse_python(source: str | bytes, filename: str = "<unknown>") -> ast.Module | None:
    """The module's tree, or None when ``source`` is not Python this interpreter can parse."""
    with _PARSING:
        for attempt in range(2):
            try:
                return ast.parse(source, filename=filename)
            except _UNPARSABLE:
                return None
            except SystemError:  # another thread's unlocked parse collided with this one (see above)
                if attempt:
                    return None
    return None
