"""Candidate text reaches a terminal as text: markup printed literally, control characters made visible.

Exception messages, printed output, notes that quote a notebook, file names and what a service
relays all come from the submission; rich would parse them as markup (and crash on ``[/]``) and
pass escape sequences to the terminal (clear the screen, draw a fake "Passed" line, write the
clipboard). ``grade`` and ``submit`` print them through ``grader.terminal``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.main import app
from grader.report import print_feedback, print_result, print_summary
from grader.results import GradeResult
from grader.results import TestResult as CheckResult  # not Test*: pytest would try to collect it
from grader.terminal import as_markup, as_text, visible

HOSTILE = ("[/] [bold green]all checks passed[/bold green] \x1b[2J\x1b[H\x1b[32mPassed: 100 / 100\x1b[0m "
           "\x1b]52;c;Y3VybA==\x07 \x1b]8;;https://evil.example/\x1b\\here\x1b]8;;\x1b\\ \u202etxt.exe \r\x9b31m")
RAW = ("\x1b[2J", "\x1b[32m", "\x1b]52", "\x1b]8;;https://evil", "\x07", "\u202e", "\r", "\x9b")


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J", "\\x1b[2J"),
    ("bell\x07", "bell\\x07"),
    ("a\rb", "a\\x0db"),
    ("\x9b31m", "\\x9b31m"),
    ("\u202etxt.exe", "\\u202etxt.exe"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("lines\nand\ttabs stay", "lines\nand\ttabs stay"),
    ("plain [text] and ünïcode", "plain [text] and ünïcode"),
])
def test_control_characters_become_visible_escapes(text: str, shown: str) -> None:
    assert visible(text) == shown


def test_markup_stays_literal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, width=200)
    console.print(as_text("[/] [bold]x[/bold]"))
    console.print(f"[dim]{as_markup('[/] [link=https://evil.example/]y[/link]')}[/dim]")
    assert screen.getvalue() == "[/] [bold]x[/bold]\n[/] [link=https://evil.example/]y[/link]\n"


def hostile_result() -> GradeResult:
    test = CheckResult(name="box_iou_edge_cases", number="1", score=0, max_score=10, status="failed",
                      output=f"box_iou() raised RuntimeError: {HOSTILE}\n{HOSTILE}", visibility="visible",
                      gate=True, outcome="raised", description="", duration_s=0.1)
    return GradeResult(score=0, max_score=10, passed=False, status="graded", output="0 of 1 checks passed",
                       failed_gates=["box_iou_edge_cases"], tests=[test], metrics={}, limits={}, environment={},
                       challenge={"id": "iou", "version": "1.0.0"}, submission={"name": f"{HOSTILE}.py"},
                       feedback=[f"cell 1: skipped shell command `!echo {HOSTILE}`"], duration_s=1.0)


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_a_report_prints_hostile_text_visibly_and_never_raw(terminal: bool) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=terminal, color_system="truecolor" if terminal else None, width=300)
    result = hostile_result()
    print_result(console, result)
    print_summary(console, [(f"{HOSTILE}.py", result), (HOSTILE, f"bad input: {HOSTILE}")])
    printed = screen.getvalue()
    for raw in RAW:
        assert raw not in printed, f"{raw!r} reached the terminal"
    assert "[/] [bold green]all checks passed[/bold green]" in printed
    assert "\\x1b[2J" in printed and "\\x1b]52;c;" in printed and "\\u202e" in printed
    assert "skipped shell command `!echo [/]" in printed
    if not terminal:
        assert "\x1b" not in printed  # rich adds no styles of its own to a pipe either


def test_cvgrade_submit_prints_the_services_view_visibly() -> None:
    view = {"id": 3, "filename": f"{HOSTILE}.py", "state": "done", "attempts_left": 1, "feedback": {
        "status": "graded", "summary": HOSTILE, "notes": [HOSTILE], "passed": False,
        "checks": [{"name": "box_iou_edge_cases", "status": "failed", "message": HOSTILE, "description": HOSTILE,
                    "score": 0, "max_score": 10}]}}
    screen = io.StringIO()
    print_feedback(Console(file=screen, force_terminal=True, color_system="truecolor", width=300), view)
    printed = screen.getvalue()
    for raw in RAW:
        assert raw not in printed, f"{raw!r} reached the terminal"
    assert "[/] [bold green]all checks passed" in printed and "\\x1b]8;;https://evil.example/" in printed


def test_refused_files_named_with_markup_and_escapes_are_reported_not_crashed(tmp_path: Path) -> None:
    hostile = tmp_path / "\x1b[2J\x1b]52;c;eA==\x07[red]solution.txt"
    hostile.write_text("not a solution")
    result = CliRunner().invoke(app, ["grade", str(hostile), "-c", "iou", "--backend", "local"])
    assert result.exit_code == 2, result.output
    assert "\\x1b[2J\\x1b]52;c;eA==\\x07[red]solution.txt: cvgrade cannot grade" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    archive = tmp_path / "climbs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("solution.py", "def box_iou(a, b):\n    return a\n")
        bundle.writestr("[/]/../../evil.py", "import os\n")
    result = CliRunner().invoke(app, ["grade", str(archive), "-c", "iou", "--backend", "local"])
    assert result.exit_code == 2, result.output
    assert "[/]/../../evil.py" in result.output and "points outside the archive" in result.output
