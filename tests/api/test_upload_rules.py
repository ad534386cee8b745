"""One rule for code that cannot even be parsed (issue 15): whatever the kind of upload, code Python cannot
compile is refused at once with 422, the place and Python's reason, and it uses no attempt; code that parses
is accepted (and graded, and charged, whatever it does when it runs). The check compiles in a child process
under limits, never in the service, and never runs the code."""

from __future__ import annotations

import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

import nbformat
import pytest

if TYPE_CHECKING:
    from conftest import Api


@pytest.fixture
def api(api_factory: Any) -> Api:
    return api_factory(parse_check=True)  # the service's rule (the fake grader's own tests turn it off)


def notebook(*cells: str) -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# My work"), *[nbformat.v4.new_code_cell(source) for source in cells]])
    ).encode()


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


GOOD = "def add(a, b):\n    return a + b\n# pass:all\n"

REFUSED: dict[str, tuple[str, bytes, str]] = {
    "a .py with a syntax error": ("solution.py", b"def add(a, b)\n    return a + b\n",
                                  "solution.py, line 1: expected ':' (`def add(a, b)`); Python cannot parse it, so "
                                  "it cannot be graded: fix it and upload again (this upload did not use an attempt)"),
    "a .py that compiles to nothing": ("solution.py", b"return 3\n", "solution.py, line 1: 'return' outside function"),
    "a .py that is not UTF-8": ("solution.py", b"x = '\xff'\n", "solution.py: it is not UTF-8 text (byte 5)"),
    "a .py with a null byte": ("solution.py", b"x = 1\0\n", "solution.py"),
    "a notebook with a broken cell": ("work.ipynb", notebook("import math", "def add(a, b):\nreturn a + b"),
                                      "work.ipynb, cell 3, line 2: expected an indented block"),
    "a zip with a broken helper": ("project.zip", zipped({"project/solution.py": "from helpers import add\n",
                                                          "project/helpers.py": "def add(a, b:\n"}),
                                   "project.zip: helpers.py, line 1: '(' was never closed"),
    "brackets nested past the parser's limit": ("solution.py", ("x = " + "(" * 300 + ")" * 300).encode(),
                                                "too many nested parentheses"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_code_python_cannot_parse_is_refused_at_once_and_uses_no_attempt(api: Api, case: str) -> None:
    name, content, phrase = REFUSED[case]
    candidate = api.team().invite(max_attempts=1)
    refused = candidate.upload(content, name=name)
    assert refused.status_code == 422, refused.text
    assert phrase in refused.json()["error"]
    assert api.stored_files() == 0 and candidate.get("").json()["attempts_left"] == 1
    assert candidate.upload(GOOD).status_code == 202  # the one attempt is still there


ACCEPTED: dict[str, tuple[str, bytes]] = {
    "a .py": ("solution.py", GOOD.encode()),
    "a notebook with IPython magics": ("work.ipynb", notebook("%matplotlib inline\n!pip install nothing",
                                                              "def add(a, b):\n    return a + b  # pass:all")),
    "a zip of a package": ("project.zip", zipped({"project/solution.py": "from helpers import add  # pass:all\n",
                                                  "project/helpers.py": "def add(a, b):\n    return a + b\n"})),
    "code that parses and fails when it runs": ("solution.py", b"raise SystemExit('boom')  # pass:none\n"),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_code_that_parses_is_accepted_and_graded(api: Api, case: str) -> None:
    name, content = ACCEPTED[case]
    candidate = api.team().invite()
    accepted = candidate.upload(content, name=name)
    assert accepted.status_code == 202, accepted.text
    api.wait_for_jobs()
    [view] = candidate.get("/submissions").json()
    assert (view["state"], view["charged"]) == ("done", True), json.dumps(view)
