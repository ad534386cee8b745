"""Results for people: a terminal table per submission and a summary across several.

Text that a submission could influence (messages, output, notes quoting it, its file name,
what a service relays) is printed as ``rich.text.Text`` with its control characters made
visible (``grader.terminal``): never parsed as markup, never a raw escape sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.results import GradeResult
from grader.terminal import as_text

_STATUS_STYLE = {"passed": "green", "failed": "red"}


def print_result(console: Console, result: GradeResult, *, show_details: bool = True) -> None:
    """A readable table of one grading: each check, its points and what went wrong."""
    title = as_text(
        f"{result.submission.get('name', '?')} - challenge {result.challenge['id']} "
        f"v{result.challenge['version']} ({result.challenge.get('checks', 'hidden')} checks)"
    )
    table = Table(title=title, title_justify="left", expand=False, show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("check")
    table.add_column("gate", justify="center")
    table.add_column("points", justify="right")
    table.add_column("result")
    table.add_column("why", overflow="fold", max_width=80)
    for test in result.tests:
        status = Text(test.status, style=_STATUS_STYLE[test.status])
        if test.outcome not in ("ok", "failed") and test.status == "failed":
            status.append(f" ({test.outcome.replace('_', ' ')})", style="yellow")
        why = as_text(test.output.splitlines()[0] if test.output.strip() else "")
        table.add_row(
            test.number, as_text(test.name), "yes" if test.gate else "",
            f"{test.score:g}/{test.max_score:g}", status, why,
        )
    console.print(table)
    if show_details:
        shown: set[str] = set()
        for test in result.tests:
            details = "\n".join(test.output.splitlines()[1:][-25:])
            if test.status != "failed" or not details:
                continue
            if details in shown:
                console.print(Text.assemble(as_text(test.name, "bold"), ": same details as above"))
                continue
            shown.add(details)
            console.print(Text.assemble(as_text(test.name, "bold"), ":"))
            console.print(as_text("\n".join("  " + line for line in details.splitlines())))
    for line in result.feedback:
        console.print(Text.assemble(("note: ", "yellow"), as_text(line)))
    style = "bold green" if result.passed else ("bold magenta" if result.status == "error" else "bold red")
    console.print(as_text(result.output, style))
    console.print(f"[dim]graded in {result.duration_s:.1f} s[/dim]")


def print_summary(console: Console, rows: Sequence[tuple[str, GradeResult | str]]) -> None:
    """One line per submission: verdict and score, or why it could not be graded."""
    table = Table(title="Summary", title_justify="left")
    table.add_column("submission")
    table.add_column("score", justify="right")
    table.add_column("verdict")
    for name, outcome in rows:
        if isinstance(outcome, str):
            table.add_row(as_text(name), "-", as_text(f"bad input: {outcome}", "yellow"))
            continue
        if outcome.status == "error":
            table.add_row(as_text(name), "-", Text("not gradable (our failure)", style="magenta"))
            continue
        verdict = Text("passed", style="green") if outcome.passed else Text("not passed", style="red")
        if outcome.failed_gates:
            verdict.append(as_text(f" (gates: {', '.join(outcome.failed_gates)})", "dim"))
        table.add_row(as_text(name), f"{outcome.score:g}/{outcome.max_score:g}", verdict)
    console.print(table)


def print_feedback(console: Console, submission: dict[str, Any]) -> None:
    """What ``cvgrade submit`` prints: a submission the service graded, as its candidate may see it.

    ``submission`` is the service's candidate view (``/api/v1/candidate/submissions/ID``): its state and
    message, and the feedback ``grader.feedback.candidate_feedback`` made (hidden checks: pass or fail and
    the kind of failure; points and verdict only when the team shares them).
    """
    feedback = submission.get("feedback") or {}
    title = as_text(f"{submission.get('filename', '?')} - submission {submission.get('id', '?')}")
    checks = feedback.get("checks", [])
    if checks:
        scored = any(check.get("max_score") is not None for check in checks)
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("#", justify="right", style="dim")
        table.add_column("check")
        if scored:
            table.add_column("points", justify="right")
        table.add_column("result")
        table.add_column("why", overflow="fold", max_width=80)
        for number, check in enumerate(checks, start=1):
            status = as_text(check["status"], _STATUS_STYLE.get(check["status"], ""))
            message = str(check.get("message") or "")
            why = "" if message in ("passed", check["status"]) or not message.strip() else message.splitlines()[0]
            row: list[str | Text] = [str(number), as_text(check["name"])]
            if scored:
                row.append(f"{check['score']:g}/{check['max_score']:g}" if check.get("max_score") is not None else "")
            table.add_row(*row, status, as_text(why))
        console.print(table)
    else:
        console.print(Text.assemble(title, style="bold"))
    for line in feedback.get("notes", []):
        console.print(Text.assemble(("note: ", "yellow"), as_text(line)))
    state = submission.get("state")
    if state == "done":
        passed = feedback.get("passed")
        style = "bold red" if passed is False else "bold green"
        console.print(as_text(feedback.get("summary", submission.get("message", "")), style))
        if passed is None:
            console.print(Text("the hiring team does not share scores or the verdict", style="dim"))
    else:
        style = "bold magenta" if state == "not_gradable" or not submission.get("charged", True) else "bold red"
        console.print(as_text(submission.get("message", state), style))
    if "attempts_left" in submission:
        console.print(as_text(f"{submission['attempts_left']} attempt(s) left", "dim"))
