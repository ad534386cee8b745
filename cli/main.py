"""``cvgrade``: the console script, assembled from the commands of each package.

- ``grader.cli``: ``grade``, ``test``, ``start``, ``validate``, ``calibrate``, ``demo``, ``challenges``;
- ``cli.machine`` (``harness``): ``doctor``, ``janitor``, ``image build``;
- ``api.cli`` and ``api.fleet_cli``: ``serve``, ``admin ...``, ``submit``, ``worker``, ``fleet``. They
  need the ``service`` extra (``cli.service_extra``), except ``submit``, the candidate's client.

Exit codes (``grader.errors.ExitCode``): 0 passed, 1 graded but not passed, 2 bad input or
challenge, 3 not gradable because something of ours failed (a missing ``service`` extra too);
128 + the signal when interrupted (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import itertools
import signal
import sys
from types import FrameType

from grader.judge.forkserver import shared_fork_server


def _grades(argv: list[str]) -> bool:
    """Whether this run grades (``grade``, ``test``) with forked judges (not ``--judge cold``)."""
    if argv[1:2] not in (["grade"], ["test"]):
        return False
    return "--judge=cold" not in argv and not any(
        first == "--judge" and second == "cold" for first, second in itertools.pairwise(argv))


# A grading's judge server starts before the rest of the CLI is imported (0.4 s), so that its own
# start overlaps with ours. It starts light; `grade` of several submissions makes it warm once the
# arguments are read (grader.grading.warm_up_judges).
if _grades(sys.argv):
    shared_fork_server().start(warm=False)

import typer  # noqa: E402

from api.cli import add_service_commands  # noqa: E402
from api.fleet_cli import add_fleet_commands  # noqa: E402
from cli.machine import add_machine_commands  # noqa: E402
from cli.service_extra import SERVICE_COMMANDS, require_service_extra  # noqa: E402
from grader.cli import Terminated, add_grading_commands, errors, fail  # noqa: E402
from grader.errors import CvgradeError  # noqa: E402

app = typer.Typer(
    name="cvgrade",
    help="Grade computer-vision coding challenges against hidden checks, in a sandbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _before_any_command(ctx: typer.Context) -> None:
    # The service's commands, on an install without the `service` extra, say what to install.
    if ctx.invoked_subcommand in SERVICE_COMMANDS:
        try:
            require_service_extra(ctx.invoked_subcommand)
        except CvgradeError as err:
            fail(err)


add_grading_commands(app)  # grade, challenges, start, test, validate, calibrate, demo
add_machine_commands(app)  # image, doctor, janitor
add_service_commands(app)  # serve, admin, submit: the hiring-team service (api/)
add_fleet_commands(app)  # worker, fleet: grading on many hosts through a broker (api/jobs/fleet_grader.py)


def main() -> None:
    """Every command stops on SIGTERM as on Ctrl-C: the grading in progress takes its judge down with it."""

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)  # `grade` (several at once) and `serve`/`worker` set their own
    try:
        app(prog_name="cvgrade")
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up above has run; do not cut it short now
        errors.print("terminated: the grading in progress was stopped", highlight=False)
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    main()
