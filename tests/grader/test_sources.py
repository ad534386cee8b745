"""A submission's files as people read them: text, a notebook's cells and outputs (HTML, JavaScript
and SVG kept as text, images only when their bytes are really PNG or JPEG), a zip's tree read without
extracting; and the link from a check to the candidate's function it calls."""

from __future__ import annotations

import ast
import base64
import io
import json
import zipfile

import pytest

from grader import limited_python, python_ast
from grader.challenge import load_challenge
from grader.check_targets import MAX_PARSED_CHARS, check_functions, definitions
from grader.sources import MAX_SHOWN_FILE_BYTES, notebook_cells, read_sources
from tests.conftest import CHALLENGES

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
HOSTILE_HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def notebook(*cells: dict[str, object]) -> bytes:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}).encode()


def code_cell(source: str, *outputs: dict[str, object], count: int = 1) -> dict[str, object]:
    return {"cell_type": "code", "source": source.splitlines(keepends=True), "execution_count": count,
            "metadata": {}, "outputs": list(outputs)}


def test_a_python_file_is_its_text_and_a_binary_one_is_not_shown() -> None:
    sources = read_sources(b"def add(a, b):\n    return a + b\n", "solution.py", "py")
    assert sources.entry == "solution.py" and sources.files[0].language == "python"
    assert sources.files[0].text == "def add(a, b):\n    return a + b\n"
    binary = read_sources(b"\x00\x01\x02weights", "model.py", "py").files[0]
    assert binary.language == "binary" and binary.text is None and "not shown" in binary.note


def test_a_large_file_is_cut_and_says_so() -> None:
    source = read_sources(b"x = 1\n" * (MAX_SHOWN_FILE_BYTES // 3), "solution.py", "py").files[0]
    assert source.truncated and len(source.text or "") == MAX_SHOWN_FILE_BYTES and "only the first" in source.note


def test_notebook_outputs_are_text_never_markup_and_images_are_checked() -> None:
    cells = notebook_cells(notebook(
        {"cell_type": "markdown", "source": "# Title", "metadata": {}},
        code_cell("print('hi')", {"output_type": "stream", "name": "stdout", "text": ["hi\n"]}),
        code_cell("show()",
                  {"output_type": "display_data", "metadata": {}, "data": {"text/html": [HOSTILE_HTML]}},
                  {"output_type": "display_data", "metadata": {}, "data": {"application/javascript": "alert(3)"}},
                  {"output_type": "display_data", "metadata": {}, "data": {"image/svg+xml": "<svg onload=alert(4)>"}},
                  {"output_type": "display_data", "metadata": {},
                   "data": {"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"}},
                  {"output_type": "display_data", "metadata": {},
                   "data": {"image/png": base64.b64encode(b"<script>not a png").decode(), "text/plain": "fake"}},
                  {"output_type": "error", "ename": "ValueError", "evalue": "bad",
                   "traceback": ["\x1b[0;31mValueError\x1b[0m: bad"]}),
    ))
    assert [cell.kind for cell in cells] == ["markdown", "code", "code"] and cells[1].source == "print('hi')"
    assert cells[1].outputs[0].text == "hi\n"
    html, script, svg, image, fake, error = cells[2].outputs
    assert (html.mime, html.text, html.image) == ("text/html", HOSTILE_HTML, None)
    assert (script.mime, script.text) == ("application/javascript", "alert(3)")
    assert (svg.mime, svg.image) == ("image/svg+xml", None)
    assert image.kind == "image" and base64.b64decode(image.image or "") == PNG
    assert fake.kind == "result" and fake.image is None and fake.text == "fake"
    assert error.kind == "error" and error.text == "ValueError: bad"


def test_a_file_named_ipynb_that_is_not_a_notebook_is_shown_as_text() -> None:
    source = read_sources(b"{not json", "solution.ipynb", "ipynb").files[0]
    assert source.language == "text" and source.cells is None and "not JSON" in source.note


def test_a_zip_is_a_tree_read_without_extracting() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ada/solution.py", "from helpers import area\n")
        archive.writestr("ada/helpers.py", "def area(b):\n    return b\n")
        archive.writestr("ada/__pycache__/helpers.cpython-311.pyc", b"\x00junk")
        archive.writestr("ada/data/weights.bin", b"\x00\x01")
        archive.writestr("ada/notes.ipynb", notebook(code_cell("x = 1")))
    sources = read_sources(buffer.getvalue(), "ada.zip", "zip")
    assert sources.entry == "solution.py"
    assert [source.path for source in sources.files] == ["data/weights.bin", "helpers.py", "notes.ipynb",
                                                         "solution.py"]
    assert [label for label, _ in sources.code_units()] == ["helpers.py", "notes.ipynb, cell 1", "solution.py"]
    broken = read_sources(b"PK\x03\x04 not really", "x.zip", "zip")
    assert broken.files == [] and "cannot be opened" in broken.note


def test_each_check_links_to_the_functions_it_calls_and_the_candidate_defines() -> None:
    mapping = check_functions(load_challenge("iou"))
    assert mapping["box_iou_speed"] == ["box_iou"] and mapping["nms_score_order"] == ["nms"]
    assert mapping["inputs_unchanged"] == ["box_iou", "nms"]  # through candidate.call_with_inputs("nms", ...)
    # latency's checks call through helpers of another file; its one function is then the link.
    assert all(names == ["optimize"] for names in check_functions(load_challenge("latency")).values())
    units = [("solution.ipynb, cell 2", "import torch\n"),
             ("solution.ipynb, cell 3", "x = 1\n\ndef nms(b, s, t):\n  pass\n"),
             ("helpers.py", "def box_iou(a, b):\n    return a\n"), ("broken.py", "def (:")]
    found = definitions(units, ["box_iou", "nms"])
    assert (found["nms"].unit, found["nms"].line) == (1, 3) and found["box_iou"].label == "helpers.py"


def test_the_candidates_code_is_parsed_up_to_a_budget_in_all_however_many_files_it_spreads_over() -> None:
    # Each file is under the budget; together they are over it. What is past the budget is not parsed
    # (its definitions get no link), so a page view costs a bounded parse, not one per file of a 16 MiB zip.
    padding = "x = 1\n" * (MAX_PARSED_CHARS // 6 // 4)
    units = [(f"part{n}.py", f"def f{n}():\n    pass\n" + padding) for n in range(6)]
    found = definitions(units, [f"f{n}" for n in range(6)])
    assert sorted(found) == ["f0", "f1", "f2"]
    small_after = [*units, ("last.py", "def g():\n    pass\n")]
    assert "g" in definitions(small_after, ["g"])  # a unit that still fits is read after one that did not



def test_the_candidates_code_is_parsed_in_a_limited_child_never_in_our_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the candidate's code was parsed in the service's process")

    monkeypatch.setattr(ast, "parse", refuse)
    monkeypatch.setattr(python_ast, "parse_python", refuse)
    units = [("solution.py", "def box_iou(a, b):\n    return a\n\nbox_iou = None\n"),
             ("deep.py", "(" * 200_000 + ")" * 200_000), ("later.py", "\n\nasync def nms(b, s, t):\n    pass\n")]
    found = definitions(units, ["box_iou", "nms"])
    # The last definition wins, as when the module runs; a unit the child cannot parse is passed over.
    assert {name: (where.label, where.line) for name, where in found.items()} == {
        "box_iou": ("solution.py", 4), "nms": ("later.py", 3)}


def test_a_file_too_costly_to_parse_within_the_childs_limits_is_passed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limited_python, "MEMORY_BYTES", 160 * 2**20)
    costly = "def big():\n    pass\n\nx = [" + "1, " * (MAX_PARSED_CHARS // 4) + "]\n"  # hundreds of MB as a tree
    found = definitions([("big.py", costly), ("small.py", "def small():\n    pass\n")], ["big", "small"])
    assert sorted(found) == ["small"]


@pytest.mark.parametrize("challenge", sorted(path.name for path in CHALLENGES.iterdir() if path.is_dir()))
def test_every_check_of_every_challenge_links_to_a_function_it_declares(challenge: str) -> None:
    loaded = load_challenge(challenge)
    declared = {function.name for function in loaded.spec.functions}
    for check, names in check_functions(loaded).items():
        assert names and set(names) <= declared, (check, names)
