"""The dashboard's pages for running a round: a submission's code, copies (a challenge's flagged pairs,
one pair side by side, known public solutions), the comparison as CSV, and the forms that change
things: invite (one, or many from a CSV), change or revoke an invitation, re-grade, notes, decisions.

Forms post to the same origin only (``_same_origin``; the session cookie is SameSite=Strict too) and
answer with a redirect back to the page they came from, which says what was done (``?done=``), except
creating invitations, whose page shows the new tokens once. A refused form shows the reason and a link
back. Like every page, these read and write through the same functions as the API, filtered by team.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from api.bulk_invitations import parse_invitations
from api.comparison import RankBy, compare, comparison_csv
from api.copies import challenge_similarity, pair
from api.deps import Id, ReadSession, ServiceDep, service_of
from api.errors import ApiError
from api.invitations import revoke_invitation, team_invitation, update_invitation
from api.known_solutions import add_known_solution, known_solution_file, known_solutions, remove_known_solution
from api.regrade import regrade
from api.review import add_note, decide
from api.round_schemas import DecisionCreate, NoteCreate
from api.routes.dashboard import DONE, PREFIX, PageRoute, _same_origin, page_team, render
from api.routes.review import create_many
from api.routes.submissions import csv_response
from api.schemas import InvitationCreate, InvitationCreated, InvitationUpdate
from api.service import Service
from api.similarity import Side, reference_side, refresh, refreshed, side
from api.sources import (
    download,
    highlighted_lines,
    lexer_for,
    stored_submission,
    submission_sources,
)
from api.teams import TeamPrincipal
from api.uploads import ReceivedFile, safe_filename
from grader.errors import CvgradeError
from grader.similarity import Region, overlap, regions
from grader.sources import SubmissionSources

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False, default_response_class=HTMLResponse)


# -- reading code -------------------------------------------------------------------------------

@dataclass
class Block:
    """Lines of code to show: highlighted HTML per line, and the lines that match another submission
    (line number -> region number)."""

    anchor: str
    lines: list[Markup]
    marks: dict[int, int] = field(default_factory=dict)


def _blocks(sources: SubmissionSources) -> list[dict[str, Any]]:
    """Each file as the code page shows it: a block of lines, or a notebook's cells with their outputs."""
    shown = []
    for index, source in enumerate(sources.files):
        entry: dict[str, Any] = {"index": index, "file": source, "block": None, "cells": []}
        if source.cells is not None:
            for cell in source.cells:
                lexer = lexer_for("cell.py") if cell.kind == "code" else lexer_for("cell.txt")
                entry["cells"].append({"cell": cell, "block": Block(f"f{index}-c{cell.number}",
                                                                     highlighted_lines(cell.source, lexer))})
        elif source.text is not None:
            entry["block"] = Block(f"f{index}", highlighted_lines(source.text, lexer_for(source.path)))
        shown.append(entry)
    return shown


@router.get("/submissions/{submission_id}/code")
def code_page(submission_id: Id, request: Request, service: ServiceDep, session: ReadSession) -> Response:
    team = page_team(request, service)
    stored = stored_submission(session, team, submission_id)
    sources = submission_sources(service, stored)
    candidate = team_invitation(session, team, stored.invitation_id).candidate
    return render(request, "code.html.j2", team=team, title=f"Code of submission {stored.id}", wide=True,
                  stored=stored, candidate=candidate, sources=sources, files=_blocks(sources))


@router.get("/submissions/{submission_id}/upload")
def upload_file(submission_id: Id, request: Request, service: ServiceDep, session: ReadSession) -> Response:
    team = page_team(request, service)
    return download(service, stored_submission(session, team, submission_id))


def _side_blocks(one: Side, found: list[Region], first: bool, anchors: str) -> list[Block]:
    blocks = [Block(f"{anchors}{unit}", highlighted_lines(code, lexer_for("x.py")))
              for unit, (_label, code) in enumerate(one.units)]
    for region in found:
        span = region.a if first else region.b
        for line in range(span.first, span.last + 1):
            blocks[span.unit].marks.setdefault(line, region.number)
    return blocks


@router.get("/similarity/{submission_id}/{other_id}")
def pair_page(submission_id: Id, other_id: Id, request: Request, service: ServiceDep, session: ReadSession
              ) -> Response:
    team = page_team(request, service)
    first = stored_submission(session, team, submission_id)
    second = stored_submission(session, team, other_id)
    challenge = service.challenge(first.challenge_id)
    refreshed(session, service, team.team_id, challenge)
    similarity = pair(session, team, submission_id, other_id)
    with service.store.local_path(first.store_key) as a, service.store.local_path(second.store_key) as b:
        left = side(a.read_bytes(), first.filename, first.kind, challenge)
        right = side(b.read_bytes(), second.filename, second.kind, challenge)
    found = regions(left.fingerprint, right.fingerprint)
    return render(request, "pair.html.j2", team=team, title=f"Submissions {first.id} and {second.id}", wide=True,
                  similarity=similarity, first=first, second=second, regions=found, left=left, right=right,
                  left_blocks=_side_blocks(left, found, True, "a"), right_blocks=_side_blocks(right, found, False, "b"),
                  first_label=similarity.candidate, other_label=similarity.other_candidate,
                  other_url=f"{PREFIX}/submissions/{second.id}")


@router.get("/submissions/{submission_id}/known/{solution_id}")
def known_pair_page(submission_id: Id, solution_id: Id, request: Request, service: ServiceDep,
                    session: ReadSession) -> Response:
    team = page_team(request, service)
    first = stored_submission(session, team, submission_id)
    challenge = service.challenge(first.challenge_id)
    solution, content = known_solution_file(service, session, team, solution_id)
    with service.store.local_path(first.store_key) as a:
        left = side(a.read_bytes(), first.filename, first.kind, challenge)
    right = side(content, solution.filename, solution.kind, challenge)
    found = regions(left.fingerprint, right.fingerprint)
    shared = overlap(left.fingerprint, right.fingerprint)
    return render(request, "pair.html.j2", team=team, title=f"Submission {first.id} and {solution.label}", wide=True,
                  similarity=None, shared=shared, first=first, second=None, regions=found, left=left, right=right,
                  left_blocks=_side_blocks(left, found, True, "a"), right_blocks=_side_blocks(right, found, False, "b"),
                  first_label=team_invitation(session, team, first.invitation_id).candidate,
                  other_label=f"known solution: {solution.label}", other_url=solution.source_url or None)


@router.get("/submissions/{submission_id}/reference")
def reference_page(submission_id: Id, request: Request, service: ServiceDep, session: ReadSession) -> Response:
    """The submission's lines that the challenge's reference solution also holds (the reference is not shown)."""
    team = page_team(request, service)
    first = stored_submission(session, team, submission_id)
    challenge = service.challenge(first.challenge_id)
    with service.store.local_path(first.store_key) as a:
        left = side(a.read_bytes(), first.filename, first.kind, challenge)
    found = regions(left.fingerprint, reference_side(challenge))
    return render(request, "pair.html.j2", team=team, title=f"Submission {first.id} and the reference", wide=True,
                  similarity=None, shared=overlap(left.fingerprint, reference_side(challenge)), first=first,
                  second=None, regions=found, left=left, right=None, left_blocks=_side_blocks(left, found, True, "a"),
                  right_blocks=[], first_label=team_invitation(session, team, first.invitation_id).candidate,
                  other_label="the challenge's reference solution (not shown)", other_url=None)


@router.get("/challenges/{challenge_id}/similarity")
def similarity_page(challenge_id: str, request: Request, service: ServiceDep, session: ReadSession,
                    done: str | None = None) -> Response:
    team = page_team(request, service)
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    return render(request, "similarity.html.j2", team=team, title=f"Copies: {challenge.id}", challenge=challenge,
                  similarity=challenge_similarity(session, team, challenge.id),
                  known=known_solutions(session, team, challenge.id), done=DONE.get(done or ""))


@router.get("/challenges/{challenge_id}/comparison.csv")
def comparison_csv_file(challenge_id: str, request: Request, service: ServiceDep, session: ReadSession,
                        rank_by: RankBy = "best") -> Response:
    team = page_team(request, service)
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    return csv_response(comparison_csv(compare(session, team, challenge, rank_by)), f"{challenge.id}-comparison.csv")


# -- forms --------------------------------------------------------------------------------------

async def _form(request: Request) -> tuple[Service, TeamPrincipal, FormData]:
    _same_origin(request)
    service = service_of(request)
    team = await run_in_threadpool(page_team, request, service)
    return service, team, await request.form()


def _refused(request: Request, err: ApiError | ValidationError, back: str, team: TeamPrincipal) -> Response:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the form"
        message, status = f"{where}: {first.get('msg', 'is not valid')}", 422
    else:
        message, status = err.message, err.status
    return render(request, "error.html.j2", status=status, team=team, title="Not done", message=message, back=back)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _moment(text: str) -> datetime | None:
    """A time from a form: ISO 8601 with a zone, or a datetime-local input's value, read as UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(f"{text[:40]!r} is not a date and time; use the form's picker or 2030-06-01T17:00") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _created(request: Request, team: TeamPrincipal, created: list[InvitationCreated]) -> Response:
    return render(request, "invited.html.j2", team=team, title="Invited", created=created,
                  origin=f"{request.url.scheme}://{request.url.netloc}")


@router.post("/invitations")
async def invite(request: Request) -> Response:
    service, team, form = await _form(request)
    try:
        moment = _moment(_text(form, "deadline"))
        box = _text(form, "time_limit_minutes").strip()
        body = InvitationCreate.model_validate({
            "challenge_id": _text(form, "challenge_id"), "candidate": _text(form, "candidate"),
            "deadline": moment.isoformat() if moment else None,
            "max_attempts": int(_text(form, "max_attempts") or 3), "time_limit_minutes": int(box) if box else None})
        created = await run_in_threadpool(create_many, service, team, [body], str(request.base_url))
    except (ApiError, ValidationError) as err:
        return _refused(request, err, PREFIX, team)
    except ValueError:
        return _refused(request, ApiError("the number of attempts must be a whole number"), PREFIX, team)
    return _created(request, team, created)


@router.post("/invitations/bulk")
async def invite_many(request: Request) -> Response:
    service, team, form = await _form(request)
    try:
        upload = form.get("file")
        text = _text(form, "csv")
        if isinstance(upload, UploadFile) and upload.filename:
            try:
                text = (await upload.read()).decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError("the CSV is not UTF-8 text; save it as 'CSV UTF-8'") from None
        moment = _moment(_text(form, "deadline"))
        bodies = parse_invitations(text, {
            "challenge_id": _text(form, "challenge_id") or None, "deadline": moment.isoformat() if moment else None,
            "max_attempts": int(_text(form, "max_attempts")) if _text(form, "max_attempts").isdigit() else None})
        created = await run_in_threadpool(create_many, service, team, bodies, str(request.base_url))
    except ApiError as err:
        return _refused(request, err, PREFIX, team)
    return _created(request, team, created)


@router.post("/invitations/{invitation_id}/change")
async def change_invitation(invitation_id: Id, request: Request) -> Response:
    service, team, form = await _form(request)
    back = f"{PREFIX}/invitations/{invitation_id}"
    try:
        moment = _moment(_text(form, "deadline"))
        attempts = _text(form, "max_attempts").strip()
        body = InvitationUpdate.model_validate({"deadline": moment.isoformat() if moment else None,
                                                "max_attempts": int(attempts) if attempts else None})
        await run_in_threadpool(_write, service, lambda session: update_invitation(
            session, team, invitation_id, body, service.clock()))
    except (ApiError, ValidationError) as err:
        return _refused(request, err, back, team)
    except ValueError:
        return _refused(request, ApiError("the number of attempts must be a whole number"), back, team)
    return RedirectResponse(f"{back}?done=changed", status_code=303)


@router.post("/invitations/{invitation_id}/revoke")
async def revoke(invitation_id: Id, request: Request) -> Response:
    service, team, _ = await _form(request)
    back = f"{PREFIX}/invitations/{invitation_id}"
    try:
        await run_in_threadpool(_write, service, lambda session: revoke_invitation(
            session, team, invitation_id, service.clock()))
    except ApiError as err:
        return _refused(request, err, back, team)
    return RedirectResponse(f"{back}?done=revoked", status_code=303)


@router.post("/invitations/{invitation_id}/decision")
async def make_decision(invitation_id: Id, request: Request) -> Response:
    service, team, form = await _form(request)
    back = f"{PREFIX}/invitations/{invitation_id}"
    try:
        body = DecisionCreate.model_validate({"decision": _text(form, "decision"), "reason": _text(form, "reason")})
        await run_in_threadpool(_write, service, lambda session: decide(
            session, team, invitation_id, body, service.clock()))
    except (ApiError, ValidationError) as err:
        return _refused(request, err, back, team)
    return RedirectResponse(f"{_text(form, 'back') if _back_ok(_text(form, 'back')) else back}?done=decision",
                            status_code=303)


@router.post("/submissions/{submission_id}/notes")
async def write_note(submission_id: Id, request: Request) -> Response:
    service, team, form = await _form(request)
    back = f"{PREFIX}/submissions/{submission_id}"
    try:
        body = NoteCreate.model_validate({"body": _text(form, "body")})
        await run_in_threadpool(_write, service, lambda session: add_note(
            session, team, submission_id, body, service.clock()))
    except (ApiError, ValidationError) as err:
        return _refused(request, err, back, team)
    return RedirectResponse(f"{back}?done=note#notes", status_code=303)


@router.post("/submissions/{submission_id}/regrade")
async def regrade_submission(submission_id: Id, request: Request) -> Response:
    service, team, _ = await _form(request)
    back = f"{PREFIX}/submissions/{submission_id}"

    def queue_again(session: Any) -> None:
        challenge = service.challenge(stored_submission(session, team, submission_id).challenge_id)
        regrade(session, team, submission_id, challenge, service.clock())

    try:
        await run_in_threadpool(_write, service, queue_again)
    except ApiError as err:
        return _refused(request, err, back, team)
    service.notify_runner()
    return RedirectResponse(f"{back}?done=regrade", status_code=303)


@router.post("/challenges/{challenge_id}/known-solutions")
async def add_known(challenge_id: str, request: Request) -> Response:
    service, team, form = await _form(request)
    back = f"{PREFIX}/challenges/{challenge_id}/similarity"
    upload = form.get("file")
    try:
        challenge = service.challenge(challenge_id)
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ApiError("choose the file of the known solution (.py, .ipynb or .zip)")
        received = await _staged(service, upload)
        try:
            await run_in_threadpool(refresh, service, team.team_id, challenge)
            await run_in_threadpool(add_known_solution, service, team, challenge, received, _text(form, "label"),
                                    _text(form, "source_url"))
        finally:
            received.discard()
    except ApiError as err:
        return _refused(request, err, back, team)
    except CvgradeError as err:  # the grader's refusal of the file says what is wrong with it
        return _refused(request, ApiError(str(err)), back, team)
    return RedirectResponse(f"{back}?done=known", status_code=303)


@router.post("/challenges/{challenge_id}/known-solutions/{solution_id}/remove")
async def remove_known(challenge_id: str, solution_id: Id, request: Request) -> Response:
    service, team, _ = await _form(request)
    back = f"{PREFIX}/challenges/{challenge_id}/similarity"
    try:
        await run_in_threadpool(_write, service, lambda session: remove_known_solution(
            session, team, challenge_id, solution_id, service.clock()))
    except ApiError as err:
        return _refused(request, err, back, team)
    return RedirectResponse(f"{back}?done=removed", status_code=303)


def _write(service: Service, change: Any) -> None:
    with service.db.write() as session:
        change(session)
        session.commit()


def _back_ok(target: str) -> bool:
    return target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target and "?" not in target


async def _staged(service: Service, upload: UploadFile) -> ReceivedFile:
    service.settings.staging_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="known-", dir=service.settings.staging_dir))
    name = safe_filename(upload.filename or "solution.py")
    content = await upload.read()
    (folder / name).write_bytes(content)
    return ReceivedFile(folder, folder / name, name, hashlib.sha256(content).hexdigest(), len(content))
