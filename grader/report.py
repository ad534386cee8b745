"""Results for people: a terminal table per submission and a summary across several."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.results import GradeResult

_STATUS_STYLE = {"passed": "green", "failed": "red"}


def print_result(console: Console, result: GradeResult, *, show_details: bool = True) -> None:
    """A readable table of one grading: each check, its points and what went wrong."""
    title = (
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
        why = test.output.splitlines()[0] if test.output else ""
        table.add_row(
            test.number, test.name, "yes" if test.gate else "",
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
                console.print(f"[bold]{test.name}[/bold]: same details as above", highlight=False)
                continue
            shown.add(details)
            console.print(f"[bold]{test.name}[/bold]:", highlight=False)
            console.print(Text("\n".join("  " + line for line in details.splitlines())))
    for line in result.feedback:
        console.print(f"[yellow]note:[/yellow] {line}", highlight=False)
    style = "bold green" if result.passed else ("bold magenta" if result.status == "error" else "bold red")
    console.print(Text(result.output, style=style))
    console.print(f"[dim]graded in {result.duration_s:.1f} s[/dim]")


def print_summary(console: Console, rows: Sequence[tuple[str, GradeResult | str]]) -> None:
    """One line per submission: verdict and score, or why it could not be graded."""
    table = Table(title="Summary", title_justify="left")
    table.add_column("submission")
    table.add_column("score", justify="right")
    table.add_column("verdict")
    for name, outcome in rows:
        if isinstance(outcome, str):
            table.add_row(name, "-", Text(f"bad input: {outcome}", style="yellow"))
            continue
        if outcome.status == "error":
            table.add_row(name, "-", Text("not gradable (our failure)", style="magenta"))
            continue
        verdict = Text("passed", style="green") if outcome.passed else Text("not passed", style="red")
        if outcome.failed_gates:
            verdict.append(f" (gates: {', '.join(outcome.failed_gates)})", style="dim")
        table.add_row(name, f"{outcome.score:g}/{outcome.max_score:g}", verdict)
    console.print(table)
