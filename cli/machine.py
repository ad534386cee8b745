"""The machine's commands of ``cvgrade``: ``doctor``, ``janitor`` and ``image build`` (``harness``).

``image build`` also reads the challenges (``grader``): each may ask the image for packages.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from grader.challenge import list_challenge_ids, load_challenge
from grader.cli import ChallengesDirOption, console, errors, fail
from grader.errors import CvgradeError, InfrastructureError
from grader.terminal import as_markup
from harness.sandbox import SandboxUnavailable

image_app = typer.Typer(help="The candidate runtime image of the Docker backend.", no_args_is_help=True)


def add_machine_commands(app: typer.Typer) -> None:
    """Add ``image``, ``doctor`` and ``janitor`` to the main ``cvgrade`` app."""
    app.add_typer(image_app, name="image")
    app.command()(doctor)
    app.command()(janitor)


@image_app.command("build")
def image_build(
    bootstrap: Annotated[bool, typer.Option("--bootstrap", help="First make a Debian base with debootstrap.")] = False,
    base: Annotated[str | None, typer.Option("--base", help="Base image (default: the bootstrapped Debian).")] = None,
    challenges_dir: ChallengesDirOption = None,
) -> None:
    """Build the runtime image (Python, torch, torchvision, numpy, our worker, challenges' extra packages)."""
    from harness.images import BASE_TAG, bootstrap_base, build_runtime

    wanted: set[str] = set()
    for challenge_id in list_challenge_ids(challenges_dir):
        try:
            wanted.update(load_challenge(challenge_id, challenges_dir).spec.image.packages)
        except CvgradeError as err:  # one broken challenge must not stop the image every other one needs
            errors.print(f"[yellow]warning:[/yellow] skipping {as_markup(challenge_id)}'s packages: {as_markup(err)}",
                         highlight=False)
    extras = sorted(wanted)
    try:
        if bootstrap:
            bootstrap_base(log=console.print)
        tag = build_runtime(base=base or BASE_TAG, extra_packages=extras, log=console.print)
    except SandboxUnavailable as err:
        fail(InfrastructureError(str(err)))
    console.print(f"[green]ready:[/green] {tag}")


def doctor() -> None:
    """What this machine offers for grading: engine, image, GPUs, sandbox backends, and known-unsafe versions."""
    from harness.doctor import diagnose

    style = {"ok": "green", "warn": "yellow", "missing": "red"}
    table = Table(title="cvgrade doctor", title_justify="left")
    for column in ("component", "status", "detail"):
        table.add_column(column)
    for finding in diagnose():
        table.add_row(finding.name, f"[{style[finding.status]}]{finding.status}[/]", finding.detail)
    console.print(table)


def janitor(
    everything: Annotated[bool, typer.Option("--all", help="Remove every cvgrade container, running or not.")] = False,
) -> None:
    """Remove what graders that crashed left behind: workspaces, judge and worker folders, containers.

    A folder is removed only when the process that made it is no longer running (``--all`` does
    not change that: a running grading keeps its files). Folders are looked for in this user's
    private folder in the temporary folder (``$TMPDIR/cvgrade-<uid>``) and in ``/tmp/cvgrade-ctl-<uid>``.
    """
    from harness.containers import control_root
    from harness.containers import janitor as remove_containers
    from harness.leftovers import remove_leftovers, work_root

    try:
        folders = remove_leftovers([work_root(), control_root()])
    except SandboxUnavailable as err:
        fail(InfrastructureError(str(err)))
    console.print(f"removed {len(folders)} folder(s)" + (f": {', '.join(str(f) for f in folders)}" if folders else ""),
                  highlight=False)
    try:
        removed = remove_containers(everything=everything)
    except SandboxUnavailable as err:
        console.print(f"containers not checked: {err}", highlight=False)
        return
    console.print(f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else ""))
