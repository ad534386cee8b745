"""``cvgrade submit``: a candidate uploads a solution to the service, watches it being graded and reads
the feedback, printed as ``cvgrade grade`` prints a result (what the candidate may see of it).

The upload carries an ``Idempotency-Key`` made once per invocation: when the
connection fails or the answer is lost, the same request is sent again (up to
``--retries`` times, with back-off) and the service answers with the first
upload's submission instead of making a second one.

``--status ID`` uploads nothing: it shows where an earlier submission stands
(the way back to the feedback after ``--no-wait``), and follows it to the end
unless ``--no-wait`` is given too.

Exit codes, as ``cvgrade grade``: 0 passed (or graded, when the team does not
share verdicts), 1 graded but not passed, 2 bad input (the file, the token, the
deadline, the attempt budget, a submission the grader refuses), 3 not gradable
or not reachable (our side failed, the service could not be reached, or the
wait ran out).

Whatever the service relays (its messages, the feedback, which quotes the
submission) is printed as text with its control characters made visible
(``grader.terminal``), never as markup or raw escape sequences.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from api.jobs.state import FINISHED, JobState
from grader.errors import ExitCode
from grader.report import print_feedback
from grader.terminal import as_markup, as_text

if TYPE_CHECKING:
    import httpx

_RETRY_STATUSES = (502, 503, 504)
_KINDS = (".py", ".ipynb", ".zip")
_PROGRESS: dict[str, str] = {JobState.QUEUED: "waiting for a grader", JobState.RUNNING: "being graded"}

console = Console(width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


class SubmitError(Exception):
    """Stops the command with one sentence and an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def submit(
    server: Annotated[str, typer.Option("--server", envvar="CVGRADE_SERVER",
                                        help="The service, e.g. https://grader.example.com.")],
    token: Annotated[str, typer.Option("--token", envvar="CVGRADE_TOKEN",
                                       help="Your invitation token (cvgi_...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the submission and its feedback as JSON.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the grading (default) or stop after "
                                                                "the upload.")] = True,
    timeout_s: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for the grading.")] = 3600,
    retries: Annotated[int, typer.Option("--retries", min=0, max=10,
                                         help="Times to send the upload again when the connection fails.")] = 3,
    status_of: Annotated[int | None, typer.Option(
        "--status", metavar="ID", min=1, help="Upload nothing: show where submission ID stands and its feedback "
                                              "(after --no-wait), waiting for its grading unless --no-wait.")] = None,
    submission: Annotated[Path | None, typer.Argument(
        help="A .py file, a .ipynb, a .zip or a folder (sent zipped).", show_default=False)] = None,
) -> None:
    """Upload a solution to a cvgrade service, follow its grading and print your feedback; or, with
    --status ID, come back to a submission's feedback."""
    try:
        if (submission is None) == (status_of is None):
            raise SubmitError("give the file or folder to upload, or --status ID to see an earlier submission "
                              "(not both)", ExitCode.BAD_INPUT)
        if status_of is not None:
            view = _status(status_of, server, token, wait=wait, timeout_s=timeout_s)
        else:
            assert submission is not None
            view = _run(submission, server, token, wait=wait, timeout_s=timeout_s, retries=retries,
                        as_json=as_json)
    except SubmitError as err:
        errors.print(f"[bold red]error:[/bold red] {as_markup(err)}")
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        errors.print("interrupted: the grading goes on on the server; `cvgrade submit --status ID` shows it "
                     "(the same file again would make a new submission)")
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(view) + "\n")
    else:
        print_feedback(console, view)
    finished = view["state"] in FINISHED
    if not finished and not as_json:
        errors.print(f"submission {view['id']} is {view['state']}; see its feedback later with "
                     f"`cvgrade submit --status {view['id']}`")
    raise typer.Exit(exit_code(view) if finished else 0)


def exit_code(view: dict[str, Any]) -> int:
    """0 passed (or graded with the verdict not shared), 1 not passed, 2 refused, 3 our failure."""
    state = view["state"]
    if state == JobState.DONE:
        return ExitCode.NOT_PASSED if (view.get("feedback") or {}).get("passed") is False else ExitCode.PASSED
    if state == JobState.FAILED:
        # charged: the grader refused the file; else the service died
        return ExitCode.BAD_INPUT if view.get("charged") else ExitCode.OUR_FAILURE
    return ExitCode.OUR_FAILURE


def _api(server: str, token: str) -> tuple[str, dict[str, str]]:
    """The API's base URL and the request headers, or a ``SubmitError`` for a server that is not a URL."""
    base = server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SubmitError(f"--server must be an http:// or https:// URL, not {server!r}", ExitCode.BAD_INPUT)
    base = base if base.endswith("/api/v1") else base + "/api/v1"
    return base, {"Authorization": f"Bearer {token.strip()}", "User-Agent": "cvgrade-submit"}


def _status(submission_id: int, server: str, token: str, *, wait: bool, timeout_s: float) -> dict[str, Any]:
    """An earlier submission's view; followed until its grading ends when ``wait``."""
    import httpx

    base, headers = _api(server, token)
    with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(30, connect=10)) as client:
        try:
            view = _answer(client.get(f"/candidate/submissions/{submission_id}"))
        except httpx.TransportError as err:
            raise SubmitError(f"the service at {base} could not be reached: {_reason(err)}",
                              ExitCode.OUR_FAILURE) from None
        if not wait or view["state"] in FINISHED:
            return view
        return _follow(client, view, timeout_s=timeout_s)


def _run(submission: Path, server: str, token: str, *, wait: bool, timeout_s: float, retries: int,
         as_json: bool) -> dict[str, Any]:
    import httpx  # here, not at the top: every cvgrade command imports this module

    base, headers = _api(server, token)
    with _upload_file(submission) as (path, name), httpx.Client(base_url=base, headers=headers,
                                                               timeout=httpx.Timeout(60, connect=10)) as client:
        view = _upload(client, path, name, retries=retries, quiet=as_json)
    if not wait or view["state"] in FINISHED:
        return view
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        return _follow(client, view, timeout_s=timeout_s)


@contextlib.contextmanager
def _upload_file(submission: Path) -> Iterator[tuple[Path, str]]:
    """The file to send and its name: the file itself, or a folder zipped (regular files only)."""
    if submission.is_dir():
        with tempfile.TemporaryDirectory(prefix="cvgrade-submit-") as folder:
            archive = Path(folder) / f"{submission.resolve().name or 'submission'}.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
                for path in sorted(submission.rglob("*")):
                    relative = path.relative_to(submission)
                    if path.is_symlink() or not path.is_file() or "__pycache__" in relative.parts:
                        continue
                    bundle.write(path, relative.as_posix())
            yield archive, archive.name
        return
    if not submission.is_file():
        raise SubmitError(f"{submission} does not exist", ExitCode.BAD_INPUT)
    if submission.suffix.lower() not in _KINDS:
        raise SubmitError(f"{submission.name}: cvgrade submit takes a .py, .ipynb or .zip file, or a folder",
                          ExitCode.BAD_INPUT)
    yield submission, submission.name


def _upload(client: httpx.Client, path: Path, name: str, *, retries: int, quiet: bool) -> dict[str, Any]:
    import httpx

    key = str(uuid.uuid4())  # the same for every try: the service makes one submission of them
    size_kib = path.stat().st_size / 1024
    if not quiet:
        errors.print(as_text(f"uploading {name} ({size_kib:,.1f} KiB)"))
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            with path.open("rb") as stream:
                response = client.post("/candidate/submissions", headers={"Idempotency-Key": key},
                                       files={"file": (name, stream, "application/octet-stream")})
        except httpx.TransportError as err:
            if last:
                raise SubmitError(f"the service at {client.base_url} could not be reached: {_reason(err)}",
                                  ExitCode.OUR_FAILURE) from None
            _pause(attempt, f"the upload failed ({_reason(err)}); sending it again", quiet)
            continue
        if response.status_code in _RETRY_STATUSES and not last:
            _pause(attempt, f"the service answered {response.status_code}; sending the upload again", quiet)
            continue
        view = _answer(response)
        if not quiet:
            again = " (the service already had it: the same submission)" if response.status_code == 200 else ""
            errors.print(as_text(f"submission {view['id']} accepted{again}; {view['attempts_left']} attempt(s) left"))
        return view
    raise AssertionError("unreachable")


def _follow(client: httpx.Client, view: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
    """Poll the submission until its grading ends, showing where it stands."""
    import httpx

    started, state, delay_s = time.monotonic(), view["state"], 0.5
    progress = errors.status(as_text(_progress_line(state, 0.0))) if errors.is_terminal else contextlib.nullcontext()
    if not errors.is_terminal:
        errors.print(as_text(_progress_line(state, 0.0)))
    with progress as status:
        while True:
            time.sleep(delay_s)
            delay_s = min(delay_s * 1.5, 5.0)
            elapsed = time.monotonic() - started
            try:
                view = _answer(client.get(f"/candidate/submissions/{view['id']}"))
            except httpx.TransportError as err:
                if elapsed > timeout_s:
                    raise SubmitError(f"the service stopped answering: {_reason(err)}", ExitCode.OUR_FAILURE) from None
                continue
            if view["state"] in FINISHED:
                return view
            if elapsed > timeout_s:
                raise SubmitError(f"submission {view['id']} is still {view['state']} after {timeout_s:g} s; it goes "
                                  "on on the server", ExitCode.OUR_FAILURE)
            if status is not None:
                status.update(as_text(_progress_line(view["state"], elapsed)))
            elif view["state"] != state:
                errors.print(as_text(_progress_line(view["state"], elapsed)))
            state = view["state"]


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 2xx answer; a ``SubmitError`` with the service's own sentence for anything else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    message = body.get("error") if isinstance(body, dict) else None
    message = message or f"the service answered {response.status_code} {response.reason_phrase}"
    raise SubmitError(str(message), ExitCode.OUR_FAILURE if response.status_code >= 500 or response.is_success
                      else ExitCode.BAD_INPUT)


def _pause(attempt: int, message: str, quiet: bool) -> None:
    wait_s = 2.0**attempt
    if not quiet:
        errors.print(as_text(f"{message} in {wait_s:g} s"))
    time.sleep(wait_s)


def _progress_line(state: str, elapsed_s: float) -> str:
    return f"{state}: {_PROGRESS.get(state, state)} ({elapsed_s:.0f} s)"


def _reason(err: httpx.HTTPError) -> str:
    return str(err) or type(err).__name__
