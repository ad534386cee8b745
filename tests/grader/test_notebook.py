"""What ``read_notebook`` keeps from a candidate's notebook, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from grader import notebook as notebook_module
from grader.errors import BadSubmission
from grader.notebook import read_notebook

ADVICE = "save it again from Jupyter, or submit a .py file"


def write_notebook(path: Path, *cells: nbformat.NotebookNode, **metadata: object) -> Path:
    notebook = new_notebook(cells=list(cells), metadata=metadata)
    nbformat.write(notebook, path)
    return path


def single_cell(tmp_path: Path, source: str) -> tuple[str, list[str]]:
    code = read_notebook(write_notebook(tmp_path / "nb.ipynb", new_code_cell(source)))
    assert len(code.cells) == 1
    cleaned = code.cells[0]["source"]
    assert isinstance(cleaned, str)
    return cleaned, code.warnings


def test_code_cells_are_numbered_among_all_cells_and_magics_are_skipped_with_warnings(
    tmp_path: Path,
) -> None:
    path = write_notebook(
        tmp_path / "solution.ipynb",
        new_markdown_cell("# Edge detection"),
        new_code_cell("%matplotlib inline\nimport numpy as np"),
        new_code_cell("%%bash\npip install opencv-python"),
        new_code_cell("   \n"),
        new_raw_cell("raw text"),
        new_code_cell("!pip install torch\ndef edges(image):\n    return image"),
    )

    code = read_notebook(path)

    assert code.cells == [
        {"number": 2, "source": "\nimport numpy as np"},
        {"number": 6, "source": "\ndef edges(image):\n    return image"},
    ]
    assert code.warnings == [
        "cell 2: skipped IPython magic `%matplotlib inline`",
        "cell 3: skipped cell magic `%%bash` (the whole cell)",
        "cell 6: skipped shell command `!pip install torch`",
    ]


def test_skipped_lines_keep_line_numbers_and_blocks_valid(tmp_path: Path) -> None:
    source = "for i in range(3):\n    %time step(i)\nif True:\n    !ls\n    x = 1\ny = 2\n"

    cleaned, warnings = single_cell(tmp_path, source)

    assert cleaned == "for i in range(3):\n    pass\nif True:\n    pass\n    x = 1\ny = 2\n"
    assert len(warnings) == 2
    compile(cleaned, "cell", "exec")


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("files = !ls data", "shell command"),
        ("t = %timeit -o run()", "IPython magic"),
        ("np.zeros?", "IPython help"),
        ("??np.zeros", "IPython help"),
        ("  %load_ext autoreload", "IPython magic"),
    ],
)
def test_ipython_only_lines_are_skipped(tmp_path: Path, line: str, kind: str) -> None:
    cleaned, warnings = single_cell(tmp_path, f"{line}\ny = 2")

    assert cleaned == "\ny = 2"
    assert warnings == [f"cell 1: skipped {kind} `{line.strip()}`"]


@pytest.mark.parametrize(
    "source",
    [
        'text = """\n%d items\n!important\n"""',
        "total = (a\n         % b)",
        "total = a \\\n    % b",
        "x = 1  # really?",
        "ratio = a % b",
        "ok = a != b",
        "# %matplotlib inline",
    ],
)
def test_plain_python_that_looks_like_a_magic_is_kept_untouched(
    tmp_path: Path, source: str
) -> None:
    cleaned, warnings = single_cell(tmp_path, source)

    assert cleaned == source
    assert warnings == []


def test_a_cell_of_only_magics_is_dropped(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        new_code_cell("%load_ext autoreload\n%autoreload 2"),
        new_code_cell("x = 1"),
    )

    code = read_notebook(path)

    assert code.cells == [{"number": 2, "source": "x = 1"}]
    assert len(code.warnings) == 2


def test_warnings_are_capped_with_a_count_of_the_rest(tmp_path: Path) -> None:
    cleaned, warnings = single_cell(tmp_path, "\n".join(["!echo hi"] * 80 + ["x = 1"]))

    assert cleaned.count("\n") == 80
    assert len(warnings) == 51
    assert warnings[-1] == "... and 30 more IPython lines skipped"


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "solution.ipynb"
    path.write_text("print('hello')\n")

    with pytest.raises(BadSubmission) as refused:
        read_notebook(path)

    message = str(refused.value)
    assert message.startswith("solution.ipynb is not a valid Jupyter notebook: ")
    assert message.endswith(ADVICE)


@pytest.mark.parametrize(
    "content",
    [
        b'{"cells": [], "nbformat": 4, "nbformat_minor": 5}',  # no metadata
        b'{"cells": [{"cell_type": "code", "source": 1}], "metadata": {}, "nbformat": 4,'
        b' "nbformat_minor": 5}',
        b"[]",
        b'"just a string"',
        b'{"nbformat": 99, "nbformat_minor": 0}',
        b'{"nbformat": 3, "worksheets": 5}',
    ],
)
def test_json_that_is_not_a_valid_notebook_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "solution.ipynb"
    path.write_bytes(content)

    with pytest.raises(BadSubmission, match=r"is not a valid Jupyter notebook: .+; save it again"):
        read_notebook(path)


def test_deeply_nested_json_is_refused_without_crashing(tmp_path: Path) -> None:
    path = tmp_path / "solution.ipynb"
    path.write_text('{"cells": ' + "[" * 200_000 + "]" * 200_000 + "}")

    with pytest.raises(BadSubmission, match="nested too deeply"):
        read_notebook(path)


def test_a_notebook_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "solution.ipynb"
    path.write_bytes(b'{"cells": [], "metadata": {"a": "\xff\xfe"}, "nbformat": 4}')

    with pytest.raises(BadSubmission, match="not UTF-8"):
        read_notebook(path)


def test_a_notebook_over_the_size_guard_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notebook_module, "MAX_NOTEBOOK_BYTES", 1000)
    path = write_notebook(tmp_path / "big.ipynb", new_code_cell("x = 1\n" * 500))

    with pytest.raises(BadSubmission, match=r"big.ipynb is not a valid Jupyter notebook: .*limit"):
        read_notebook(path)


def test_a_notebook_for_another_language_is_refused(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "solution.ipynb",
        new_code_cell("x <- 1"),
        kernelspec={"name": "ir", "display_name": "R", "language": "R"},
    )

    with pytest.raises(BadSubmission, match="is a R notebook, but solutions are run as Python"):
        read_notebook(path)
