"""The grader's commands of ``cvgrade``: grading, practice, validation (``grade``, ``test``, ``start``,
``validate``, ``calibrate``, ``demo``, ``challenges``).

The ``cvgrade`` app itself is assembled in ``cli.main``. Exit codes: 0 passed, 1 graded but not
passed, 2 bad input or challenge, 3 not gradable because something of ours failed
(``grader.errors.ExitCode``). Each ``CvgradeError`` knows its code; this module only passes
it to the process exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from grader.calibration import forget_calibration
from grader.challenge import Challenge, default_challenges_dir, list_challenge_ids, load_challenge
from grader.errors import BadSubmission, ChallengeError, CvgradeError, ExitCode
from grader.grading import GradeOptions, grade_submission, run_public_checks, warm_up_judges
from grader.html_report import write_report
from grader.judge_process import stop_all_judges
from grader.live_progress import LiveProgress
from grader.practice import practice_challenge_id, practice_submission, start_practice
from grader.report import print_result, print_summary
from grader.results import GradeResult, refusal
from grader.terminal import as_markup, as_text
from grader.validate import ValidationReport, validate_challenge
from grader.validation_cache import validate_reusing_passed
from harness.janitor import clean_up_after_crashed_graders

# Piped output (CI logs, files) gets a wide table rather than rich's default 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True, soft_wrap=True)

BackendOption = Annotated[
    str, typer.Option("--backend", help="Sandbox backend: auto (Docker where ready, else local), docker or local.")
]
IsolationOption = Annotated[
    str,
    typer.Option(
        "--isolation",
        help="Local sandbox isolation: auto (bubblewrap if installed), bwrap, or process (practice only).",
    ),
]
ChallengesDirOption = Annotated[
    Path | None,
    typer.Option("--challenges-dir", help="Folder of challenges (default: $CVGRADE_CHALLENGES_DIR, else the "
                                         "challenges/ folder of this checkout)."),
]


def add_grading_commands(app: typer.Typer) -> None:
    """Add the grader's commands to the main ``cvgrade`` app (``cli.main``)."""
    for command in (grade, challenges, start, test, validate, calibrate, demo):
        app.command()(command)


def _options(backend: str, isolation: str) -> GradeOptions:
    if isolation not in ("auto", "bwrap", "process"):
        raise typer.BadParameter("--isolation must be auto, bwrap or process")
    if backend not in ("auto", "docker", "local"):
        raise typer.BadParameter("--backend must be auto, docker or local")
    return GradeOptions(backend=backend, isolation=isolation)  # type: ignore[arg-type]


def _load(challenge: str, challenges_dir: Path | None) -> Challenge:
    """Load a challenge by id or folder, its paths made absolute first: the judge runs in a folder of its own."""
    if (Path(challenge) / "challenge.toml").is_file():
        challenge = str(Path(challenge).resolve())
    return load_challenge(challenge, (challenges_dir or default_challenges_dir()).resolve())


def fail(err: CvgradeError) -> NoReturn:
    """Print ``err`` as one line on stderr and exit with its code."""
    errors.print(f"[bold red]error:[/bold red] {as_markup(err)}", highlight=False)
    raise typer.Exit(err.exit_code)


def _clean_up_after_crashed_graders(options: GradeOptions) -> None:
    """Remove what graders that died left (the janitor): their folders, and their containers when
    containers may be used."""
    for note in clean_up_after_crashed_graders(containers=options.backend != "local").notes():
        errors.print(note, highlight=False)


def _write_html(result: GradeResult, target: Path, submission: Path, *, several: bool) -> None:
    """One page per submission: ``target`` itself, or ``target/<name>.html`` when grading several."""
    path = target / f"{submission.stem or submission.name}.html" if several else target
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_report(result, path)
    except OSError as err:
        errors.print(f"[bold red]error:[/bold red] cannot write the HTML report {as_markup(path)}: {err.strerror}",
                     highlight=False)
        return
    errors.print(f"report: {as_markup(path)}", highlight=False)


def _worst_exit(codes: list[int]) -> int:
    """3 beats 2 beats 1 beats 0: the exit code says the worst thing that happened."""
    return max(codes, default=ExitCode.PASSED)


class Terminated(BaseException):
    """SIGTERM arrived (timeout(1), systemd, a CI runner's cancel, docker stop): stop as on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread instead of ending the process.

    Ended by the default action, cvgrade would leave its judges (each in a session of its
    own) grading on, with their worker containers, for up to the run limit.
    """
    def terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_gradings(
    pool: ThreadPoolExecutor, started: list[Future[GradeResult | CvgradeError]], *, terminated: bool
) -> int:
    """Stop every judge, and every judge a grading still starts, until no grading is left; the exit code."""
    # First of all: a second Ctrl-C or SIGTERM must not cut the clean-up short.
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        errors.print(f"{'terminated' if terminated else 'interrupted'}: stopping the gradings in progress",
                     highlight=False)
        pool.shutdown(wait=False, cancel_futures=True)
        # A grading may start its judge just after a stop: stop again until none is left running.
        while True:
            stop_all_judges()  # returns once each judge it found is gone
            if not wait(started, timeout=0.5).not_done:
                return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def grade(
    submissions: Annotated[
        list[Path], typer.Argument(help="A .py file, a .ipynb, a folder or a .zip; several allowed.")
    ],
    challenge: Annotated[str, typer.Option("--challenge", "-c", help="Challenge id or folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per submission.")] = False,
    backend: BackendOption = "auto",
    isolation: IsolationOption = "auto",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Grade this many at once.")] = 1,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write the report as a standalone HTML page (a folder when grading several).")] = None,
    challenges_dir: ChallengesDirOption = None,
    judge: Annotated[str, typer.Option(
        "--judge", hidden=True,
        help="warm (default): fork each judge from one process that imported torch once; "
             "cold: a fresh interpreter per grading (the benches' baseline).")] = "warm",
) -> None:
    """Grade submissions against a challenge's hidden checks.

    With --jobs N, N submissions are graded at once; checks marked `timed` still
    never overlap (a machine-wide lock), and results print in the order given.
    """
    if judge not in ("warm", "cold"):
        raise typer.BadParameter("--judge must be warm or cold")
    options = dataclasses.replace(_options(backend, isolation), judge="cold" if judge == "cold" else "warm")
    warm_up_judges(options, gradings=len(submissions))
    try:
        loaded = _load(challenge, challenges_dir)
    except CvgradeError as err:
        if not as_json:
            fail(err)
        for submission in submissions:  # one object per submission, even when none can be graded
            _print_refusal(submission, {"id": challenge}, err)
        raise typer.Exit(err.exit_code) from None
    _clean_up_after_crashed_graders(options)
    codes: list[int] = []
    rows: list[tuple[str, GradeResult | str]] = []
    info = _challenge_info(loaded)

    with LiveProgress(console, enabled=_show_progress(as_json)) as live:

        def attempt(submission: Path) -> GradeResult | CvgradeError:
            label = str(submission)
            try:
                return grade_submission(submission, loaded, options, progress=live.follow(label))
            except CvgradeError as err:
                return err
            finally:
                live.done(label)

        pool = ThreadPoolExecutor(max_workers=jobs)
        started: list[Future[GradeResult | CvgradeError]] = []
        try:
            with _sigterm_raises():
                for submission in submissions:
                    started.append(pool.submit(attempt, submission))
                outcomes = [future.result() for future in started]
        except (KeyboardInterrupt, Terminated) as stop:
            raise typer.Exit(_stop_gradings(pool, started, terminated=isinstance(stop, Terminated))) from None
        pool.shutdown()
    for submission, result in zip(submissions, outcomes, strict=True):
        if isinstance(result, CvgradeError):
            errors.print(f"[bold red]error:[/bold red] {as_markup(submission)}: {as_markup(result)}", highlight=False)
            codes.append(result.exit_code)
            rows.append((str(submission), str(result)))
            if as_json:
                _print_refusal(submission, info, result)
            continue
        codes.append(result.exit_code)
        rows.append((str(submission), result))
        if html is not None:
            _write_html(result, html, submission, several=len(submissions) > 1)
        if as_json:
            sys.stdout.write(result.model_dump_json() + "\n")
        else:
            print_result(console, result)
    if len(submissions) > 1 and not as_json:
        print_summary(console, rows)
    raise typer.Exit(_worst_exit(codes))


def _show_progress(as_json: bool) -> bool:
    """Progress lines only for a person at a terminal: never with --json, never into a pipe or a file."""
    return not as_json and console.is_terminal


def _challenge_info(challenge: Challenge) -> dict[str, str]:
    return {"id": challenge.id, "version": challenge.version, "title": challenge.spec.challenge.title}


def _print_refusal(submission: Path, challenge: dict[str, str], err: CvgradeError) -> None:
    """The one JSON object of a submission that was not graded (see ``grader.results.Refusal``)."""
    refused = isinstance(err, (BadSubmission, ChallengeError))
    sys.stdout.write(refusal(submission.name, challenge, str(err), refused=refused).model_dump_json() + "\n")
    sys.stdout.flush()


def challenges(challenges_dir: ChallengesDirOption = None) -> None:
    """List the challenges: id, level, version, title and the one-line summary, checks, pass mark."""
    table = Table(title="Challenges", title_justify="left", show_lines=True)
    for column in ("id", "level", "version", "title and summary", "checks", "pass mark"):
        table.add_column(column)
    for challenge_id in list_challenge_ids(challenges_dir):
        try:
            loaded = load_challenge(challenge_id, challenges_dir)
        except CvgradeError as err:
            table.add_row(as_text(challenge_id), "", "", as_text(f"invalid: {err}", "red"), "", "")
            continue
        info = loaded.spec.challenge
        described = as_text(info.title, "bold")
        described.append("\n")
        described.append(as_text(info.summary, "dim"))
        table.add_row(info.id, info.level, info.version, described,
                      str(len(loaded.spec.checks)), f"{info.pass_mark:.0%}")
    console.print(table)


def start(
    challenge: Annotated[str, typer.Argument(help="Challenge id.")],
    folder: Annotated[Path, typer.Argument(help="Where to put the statement, starter and public tests.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
    challenges_dir: ChallengesDirOption = None,
) -> None:
    """Start practising: copy the statement, the starter and the public tests to FOLDER."""
    try:
        loaded = load_challenge(challenge, challenges_dir)
        written = start_practice(loaded, folder, force=force)
    except CvgradeError as err:
        fail(err)
    for path in written:
        console.print(f"  wrote {as_markup(path)}", highlight=False)
    console.print(
        as_text(f"Read {folder / 'README.md'}, edit {folder / 'solution.py'}, then run: cvgrade test {folder}"),
    )


def test(
    folder: Annotated[Path, typer.Argument(help="A folder made by `cvgrade start`.")],
    challenge: Annotated[str | None, typer.Option("--challenge", "-c")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    backend: BackendOption = "auto",
    isolation: IsolationOption = "auto",
    challenges_dir: ChallengesDirOption = None,
) -> None:
    """Run the public checks on your solution, through the same judge and sandbox as grading."""
    warm_up_judges(gradings=1)
    try:
        challenge_id = challenge or practice_challenge_id(folder)
        if challenge_id is None:
            raise typer.BadParameter(f"{folder} was not made by `cvgrade start`; pass --challenge")
        loaded = _load(challenge_id, challenges_dir)
        with LiveProgress(console, enabled=_show_progress(as_json)) as live:
            result = run_public_checks(practice_submission(folder), loaded, _options(backend, isolation),
                                       progress=live.follow(str(folder)))
    except CvgradeError as err:
        if as_json:
            _print_refusal(folder, {"id": challenge or ""}, err)
            raise typer.Exit(err.exit_code) from None
        fail(err)
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        print_result(console, result)
    raise typer.Exit(result.exit_code)


def validate(
    challenge_ids: Annotated[list[str] | None, typer.Argument(help="Challenge ids (default: all).")] = None,
    backend: BackendOption = "auto",
    isolation: IsolationOption = "auto",
    challenges_dir: ChallengesDirOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=16,
                                      help="Grade this many solutions at once (after the reference's first "
                                           "grading; timed checks still take turns).")] = 1,
    reuse_passed: Annotated[bool, typer.Option(
        "--reuse-passed",
        help="Reuse this machine's passing validation of the very same challenge files, grader and harness "
             "sources, packages, sandbox and calibration ($CVGRADE_CACHE/validations); anything changed "
             "validates for real, and a failure always runs again.")] = False,
) -> None:
    """Check that challenges tell right from wrong: reference, starter and known-bad solutions."""
    ids = challenge_ids or list_challenge_ids(challenges_dir)
    ok = True
    for challenge_id in ids:
        try:
            loaded = _load(challenge_id, challenges_dir)
        except CvgradeError as err:
            fail(err)
        console.print(f"[bold]validating {loaded.id} v{loaded.version}[/bold]")
        with LiveProgress(console, enabled=_show_progress(False)) as live:
            if reuse_passed:
                report = _validate_reusing_passed(loaded, _options(backend, isolation), live, jobs)
            else:
                report = validate_challenge(loaded, _options(backend, isolation),
                                            progress=lambda line: console.print(as_text(f"  {line}")),
                                            follow=live.following, jobs=jobs)
        ok = ok and report.ok
        console.print("[green]  valid[/green]" if report.ok else f"[red]  {len(report.problems)} problem(s)[/red]")
    raise typer.Exit(ExitCode.PASSED if ok else ExitCode.NOT_PASSED)


def _validate_reusing_passed(challenge: Challenge, options: GradeOptions, live: LiveProgress,
                             jobs: int) -> ValidationReport:
    try:
        validation = validate_reusing_passed(challenge, options, progress=lambda line: console.print(
            as_text(f"  {line}")), follow=live.following, jobs=jobs)
    except CvgradeError as err:
        fail(err)
    return validation.report


def calibrate(
    challenge_ids: Annotated[list[str] | None, typer.Argument(help="Challenge ids (default: all).")] = None,
    backend: BackendOption = "auto",
    isolation: IsolationOption = "auto",
    challenges_dir: ChallengesDirOption = None,
) -> None:
    """Measure the hardware-dependent figures of challenges on this machine, afresh, by grading their references."""
    ids = challenge_ids or list_challenge_ids(challenges_dir)
    worst: int = ExitCode.PASSED
    for challenge_id in ids:
        try:
            loaded = _load(challenge_id, challenges_dir)
            forgotten = forget_calibration(loaded.id, loaded.version)
            with LiveProgress(console, enabled=_show_progress(False)) as live:
                label = f"calibrating {loaded.id}"
                result = grade_submission(loaded.reference_dir / "solution.py", loaded, _options(backend, isolation),
                                          progress=live.follow(label))
        except CvgradeError as err:
            fail(err)
        figures = result.environment.get("calibration", {}).get("stored", {})
        console.print(f"[bold]{loaded.id} v{loaded.version}[/bold]: "
                      f"{'replaced' if forgotten else 'no'} earlier figures; reference {result.status}, "
                      f"score {'-' if result.score is None else f'{result.score:g}'}/{result.max_score:g}, "
                      f"graded in {result.duration_s:.0f} s")
        for key, value in sorted(figures.items()):
            console.print(f"  {key} = {value:.4g}", highlight=False)
        if not figures:
            console.print("  (no figures stored)")
        if result.status != "graded" or not result.passed:
            console.print("[red]  the reference did not pass: figures not trustworthy[/red]")
            worst = max(worst, ExitCode.NOT_PASSED)
    raise typer.Exit(worst)


def demo(
    backend: BackendOption = "auto",
    isolation: IsolationOption = "auto",
    challenges_dir: ChallengesDirOption = None,
) -> None:
    """Grade each challenge's sample submissions (reference, starter .py and .ipynb) and print verdicts."""
    options = _options(backend, isolation)
    rows: list[tuple[str, GradeResult | str]] = []
    for challenge_id in list_challenge_ids(challenges_dir):
        loaded = _load(challenge_id, challenges_dir)
        for sample in _samples(loaded):
            label = f"{loaded.id}: {sample.relative_to(loaded.root)}"
            console.print(f"grading {as_markup(label)} ...", highlight=False)
            try:
                with LiveProgress(console, enabled=_show_progress(False)) as live:
                    rows.append((label, grade_submission(sample, loaded, options, progress=live.follow(label))))
            except CvgradeError as err:
                rows.append((label, str(err)))
    print_summary(console, rows)
    errors_seen = [r for _, r in rows if isinstance(r, str) or r.status == "error"]
    raise typer.Exit(ExitCode.OUR_FAILURE if errors_seen else ExitCode.PASSED)


def _samples(challenge: Challenge) -> list[Path]:
    candidates = [
        challenge.reference_dir / "solution.py",
        challenge.starter_dir / "solution.py",
        challenge.starter_dir / "solution.ipynb",
    ]
    return [path for path in candidates if path.exists()]
