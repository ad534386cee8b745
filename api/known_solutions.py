"""A team's corpus of known public solutions to a challenge (a blog post, a GitHub repository a
candidate might copy): each is fingerprinted like a submission and compared with every submission, so
a copy is flagged with its source.

A known solution is checked by the grader's own upload checks (a ``.py``, a
notebook or a zip, nothing unsafe), stored in the upload store like a
submission, and never graded. Removing one removes its matches; the file and
the record stay, marked removed, for the audit log.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import audit
from api.errors import ApiError, NotFound
from api.models import KnownSolution
from api.round_schemas import KnownSolutionPublic
from api.service import Service
from api.similarity import forget_known_solution, match_known_solution, submission_fingerprint
from api.teams import TeamPrincipal
from api.uploads import ReceivedFile
from grader.challenge import Challenge
from grader.similarity import pack
from grader.workspace import prepare_workspace


def add_known_solution(service: Service, team: TeamPrincipal, challenge: Challenge, received: ReceivedFile,
                       label: str, source_url: str) -> KnownSolutionPublic:
    """Check, store and fingerprint a known solution, and compare it with the challenge's submissions."""
    label, source_url = label.strip(), source_url.strip()
    if not label:
        raise ApiError("give the known solution a label (where it comes from), such as 'blog post, 2024'")
    if len(label) > 200 or len(source_url) > 2000:
        raise ApiError("the label may be 200 characters and the source URL 2,000 at most")
    if source_url and not source_url.lower().startswith(("https://", "http://")):
        raise ApiError("the source URL must start with https:// or http://")
    workspace = prepare_workspace(received.path, work_root=received.folder)  # BadSubmission (422) if refused
    kind = workspace.kind
    workspace.cleanup()
    content = received.path.read_bytes()
    found = submission_fingerprint(content, received.filename, kind, challenge)
    if not found.hashes:
        raise ApiError(f"{received.filename} holds no Python code of its own beyond the challenge's starter; "
                       "there is nothing to compare with")
    store_key = service.store.put(received.path, received.sha256)
    now = service.clock()
    with service.db.write() as session:
        solution = KnownSolution(
            team_id=team.team_id, challenge_id=challenge.id, label=label, source_url=source_url,
            filename=received.filename, kind=kind, sha256=received.sha256, size_bytes=received.size_bytes,
            store_key=store_key, hashes=pack(found.hashes), fingerprints=len(found),
            normalised_sha256=found.digest, created_at=now, deleted_at=None)
        session.add(solution)
        session.flush()
        match_known_solution(session, solution, now)
        audit.record(session, team_id=team.team_id, actor=team.actor, action="known_solution.added",
                     subject=f"known solution {solution.id}", now=now, challenge=challenge.id, label=label,
                     sha256=received.sha256)
        session.commit()
        return to_public(solution)


def known_solutions(session: Session, team: TeamPrincipal, challenge_id: str) -> list[KnownSolutionPublic]:
    return [to_public(row) for row in session.scalars(
        select(KnownSolution).where(KnownSolution.team_id == team.team_id, KnownSolution.challenge_id == challenge_id,
                                    KnownSolution.deleted_at.is_(None)).order_by(KnownSolution.id))]


def remove_known_solution(session: Session, team: TeamPrincipal, challenge_id: str, solution_id: int,
                          now: datetime) -> None:
    solution = session.scalar(select(KnownSolution).where(
        KnownSolution.id == solution_id, KnownSolution.team_id == team.team_id,
        KnownSolution.challenge_id == challenge_id, KnownSolution.deleted_at.is_(None)))
    if solution is None:
        raise NotFound(f"your team has no known solution {solution_id} for {challenge_id}")
    solution.deleted_at = now
    forget_known_solution(session, solution)
    audit.record(session, team_id=team.team_id, actor=team.actor, action="known_solution.removed",
                 subject=f"known solution {solution.id}", now=now, label=solution.label)


def known_solution_file(service: Service, session: Session, team: TeamPrincipal, solution_id: int
                        ) -> tuple[KnownSolution, bytes]:
    solution = session.scalar(select(KnownSolution).where(KnownSolution.id == solution_id,
                                                          KnownSolution.team_id == team.team_id))
    if solution is None:
        raise NotFound(f"your team has no known solution {solution_id}")
    with service.store.local_path(solution.store_key) as path:
        return solution, Path(path).read_bytes()


def to_public(row: KnownSolution) -> KnownSolutionPublic:
    return KnownSolutionPublic(id=row.id, challenge_id=row.challenge_id, label=row.label, source_url=row.source_url,
                               filename=row.filename, sha256=row.sha256, size_bytes=row.size_bytes,
                               fingerprints=row.fingerprints, created_at=row.created_at)
