"""What a team reads about copies (kept up to date by ``api.similarity``): a challenge's flagged pairs of
candidates, what one submission resembles, two submissions side by side, and the "similar to" of the
comparison and the listings. Every query filters by the caller's team.

A challenge's pairs and the comparison read the stored closest pair of each two candidates. One
submission's matches, and a pair asked for by its ids, are computed from the stored fingerprints as
they are asked for (a set intersection per other submission: milliseconds for a thousand).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from api.errors import NotFound
from api.models import Invitation, KnownSolution, SimilarityMatch, Submission, SubmissionFingerprint
from api.round_schemas import ChallengeSimilarity, ReferenceSimilarity, SimilarityPublic
from api.schemas import SimilarToPublic
from api.similarity import Match, Stored, compare_two, stored_fingerprints
from api.teams import TeamPrincipal
from grader.similarity import Overlap, overlap, unpack

SHOWN_UNFLAGGED = 100


def _names(session: Session, invitation_ids: set[int]) -> dict[int, str]:
    if not invitation_ids:
        return {}
    return dict(session.execute(select(Invitation.id, Invitation.candidate)
                                .where(Invitation.id.in_(invitation_ids))).all())


def _labels(session: Session, team_id: int) -> dict[int, str]:
    return dict(session.execute(select(KnownSolution.id, KnownSolution.label)
                                .where(KnownSolution.team_id == team_id)).all())


def _stored_public(row: SimilarityMatch, names: dict[int, str], labels: dict[int, str]) -> SimilarityPublic:
    return SimilarityPublic(
        submission_id=row.submission_id, candidate=names[row.invitation_id],
        other_submission_id=row.other_submission_id,
        other_candidate=names[row.other_invitation_id] if row.other_invitation_id is not None else None,
        known_solution_id=row.known_solution_id,
        known_solution=labels.get(row.known_solution_id) if row.known_solution_id is not None else None,
        shared=row.shared, share=row.share, identical=row.identical, same_code=row.same_code, flagged=row.flagged)


def challenge_similarity(session: Session, team: TeamPrincipal, challenge_id: str) -> ChallengeSimilarity:
    """Every flagged pair of candidates and the ``SHOWN_UNFLAGGED`` closest others, most similar first,
    and the submissions close to the challenge's reference solution."""
    ours = (SimilarityMatch.team_id == team.team_id) & (SimilarityMatch.challenge_id == challenge_id)
    order = (SimilarityMatch.identical.desc(), SimilarityMatch.same_code.desc(), SimilarityMatch.share.desc(),
             SimilarityMatch.id)
    rows = list(session.scalars(select(SimilarityMatch).where(ours, SimilarityMatch.flagged.is_(True))
                                .order_by(*order)))
    rows += session.scalars(select(SimilarityMatch).where(ours, SimilarityMatch.flagged.is_(False))
                            .order_by(*order).limit(SHOWN_UNFLAGGED))
    names = _names(session, {i for row in rows for i in (row.invitation_id, row.other_invitation_id) if i})
    labels = _labels(session, team.team_id)
    fingerprints = session.execute(
        select(SubmissionFingerprint.submission_id, SubmissionFingerprint.reference_shared,
               SubmissionFingerprint.reference_share, Invitation.candidate)
        .join(Invitation, Invitation.id == SubmissionFingerprint.invitation_id)
        .where(SubmissionFingerprint.team_id == team.team_id, SubmissionFingerprint.challenge_id == challenge_id)
        .order_by(SubmissionFingerprint.reference_share.desc())).all()
    reference = [
        ReferenceSimilarity(submission_id=row.submission_id, candidate=row.candidate, shared=row.reference_shared,
                            share=row.reference_share, flagged=True)
        for row in fingerprints if Overlap(row.reference_shared, row.reference_share, 0.0).flagged
    ]
    return ChallengeSimilarity(challenge_id=challenge_id, submissions=len(fingerprints),
                               pairs=[_stored_public(row, names, labels) for row in rows], reference=reference)


def _fingerprint(session: Session, team: TeamPrincipal, submission_id: int) -> tuple[Stored, str]:
    """One of the team's submissions' stored fingerprint and its challenge (404 if not the team's; a
    submission not fingerprinted yet has none: the caller refreshes first)."""
    row = session.execute(
        select(SubmissionFingerprint.submission_id, SubmissionFingerprint.invitation_id, Submission.sha256,
               SubmissionFingerprint.normalised_sha256, SubmissionFingerprint.hashes, Submission.challenge_id)
        .join(Submission, Submission.id == SubmissionFingerprint.submission_id)
        .where(Submission.id == submission_id, Submission.team_id == team.team_id)).first()
    if row is None:
        raise NotFound(f"your team has no submission {submission_id}")
    return Stored(row.submission_id, row.invitation_id, row.sha256, row.normalised_sha256,
                  unpack(row.hashes)), row.challenge_id


def _match_public(match: Match, viewpoint: int, names: dict[int, str], label: str | None = None) -> SimilarityPublic:
    mine, theirs = (match.a, match.b) if match.a.submission_id == viewpoint else (match.b, match.a)
    assert mine is not None
    return SimilarityPublic(
        submission_id=mine.submission_id, candidate=names[mine.invitation_id],
        other_submission_id=theirs.submission_id if theirs else None,
        other_candidate=names[theirs.invitation_id] if theirs else None, known_solution_id=match.known_solution_id,
        known_solution=label, shared=match.found.shared, share=round(match.found.share, 4),
        identical=match.identical, same_code=match.same_code, flagged=match.flagged)


def submission_similarity(session: Session, team: TeamPrincipal, submission_id: int) -> list[SimilarityPublic]:
    """What this submission resembles: each other candidate's closest submission, and each known public
    solution, that share at least ``KEPT_SHARE`` (or are flagged); closest first."""
    mine, challenge_id = _fingerprint(session, team, submission_id)
    best: dict[int, Match] = {}
    for other in stored_fingerprints(session, team.team_id, challenge_id):
        if other.invitation_id == mine.invitation_id:
            continue
        match = compare_two(mine, other)
        if match.kept and (other.invitation_id not in best or match.closeness > best[other.invitation_id].closeness):
            best[other.invitation_id] = match
    names = _names(session, {mine.invitation_id, *best})
    found = [_match_public(match, mine.submission_id, names) for match in best.values()]
    for solution in session.scalars(select(KnownSolution).where(
            KnownSolution.team_id == team.team_id, KnownSolution.challenge_id == challenge_id,
            KnownSolution.deleted_at.is_(None))):
        match = Match(mine, None, solution.id, overlap(mine.hashes, unpack(solution.hashes)),
                      mine.sha256 == solution.sha256, mine.normalised_sha256 == solution.normalised_sha256)
        if match.kept:
            found.append(_match_public(match, mine.submission_id, names, solution.label))
    return sorted(found, key=lambda one: (one.flagged, one.identical, one.same_code, one.share), reverse=True)


def candidate_similarity(session: Session, team: TeamPrincipal, invitation_id: int) -> list[SimilarityPublic]:
    """The stored matches of one candidate (any of their submissions), from their side, closest first: what
    a submission's page shows (reading, never computing)."""
    rows = list(session.scalars(select(SimilarityMatch).where(
        SimilarityMatch.team_id == team.team_id,
        (SimilarityMatch.invitation_id == invitation_id) | (SimilarityMatch.other_invitation_id == invitation_id))))
    names = _names(session, {i for row in rows for i in (row.invitation_id, row.other_invitation_id) if i})
    labels = _labels(session, team.team_id)
    found = []
    for row in rows:
        public = _stored_public(row, names, labels)
        if row.other_invitation_id == invitation_id:  # seen from the other side
            public = public.model_copy(update={
                "submission_id": row.other_submission_id, "candidate": names[invitation_id],
                "other_submission_id": row.submission_id, "other_candidate": names[row.invitation_id]})
        found.append(public)
    return sorted(found, key=lambda one: (one.flagged, one.identical, one.same_code, one.share), reverse=True)


def pair(session: Session, team: TeamPrincipal, submission_id: int, other_id: int) -> SimilarityPublic:
    """Two of the team's submissions compared (from the first one's side); 404 for another team's, or for
    two of one candidate's (never compared)."""
    first, challenge_id = _fingerprint(session, team, submission_id)
    second, other_challenge = _fingerprint(session, team, other_id)
    if first.invitation_id == second.invitation_id or challenge_id != other_challenge:
        raise NotFound(f"submissions {submission_id} and {other_id} are not compared: they are one candidate's, "
                       "or answer different challenges")
    return _match_public(compare_two(first, second), submission_id,
                         _names(session, {first.invitation_id, second.invitation_id}))


def reference_share(session: Session, team: TeamPrincipal, submission_id: int) -> Overlap | None:
    row = session.execute(select(SubmissionFingerprint.reference_shared, SubmissionFingerprint.reference_share)
                          .where(SubmissionFingerprint.submission_id == submission_id,
                                 SubmissionFingerprint.team_id == team.team_id)).first()
    return Overlap(row.reference_shared, row.reference_share, 0.0) if row is not None else None


def _flagged(session: Session, team: TeamPrincipal, challenge_id: str) -> list[tuple[int, SimilarToPublic]]:
    """Each flagged pair of candidates, once from each side: (the side's invitation, what it is similar to)."""
    first, second = aliased(Invitation), aliased(Invitation)
    rows = session.execute(
        select(SimilarityMatch.invitation_id, SimilarityMatch.other_invitation_id, SimilarityMatch.submission_id,
               SimilarityMatch.other_submission_id, SimilarityMatch.share, SimilarityMatch.identical,
               SimilarityMatch.same_code, first.candidate.label("first_candidate"),
               second.candidate.label("second_candidate"))
        .join(first, first.id == SimilarityMatch.invitation_id)
        .join(second, second.id == SimilarityMatch.other_invitation_id)
        .where(and_(SimilarityMatch.team_id == team.team_id, SimilarityMatch.challenge_id == challenge_id,
                    SimilarityMatch.flagged.is_(True)))).all()
    sides = []
    for row in rows:
        common = {"share": row.share, "identical": row.identical, "same_code": row.same_code}
        sides.append((row.invitation_id, SimilarToPublic(
            candidate=row.second_candidate, invitation_id=row.other_invitation_id, submission_id=row.submission_id,
            other_submission_id=row.other_submission_id, **common)))
        sides.append((row.other_invitation_id, SimilarToPublic(
            candidate=row.first_candidate, invitation_id=row.invitation_id, submission_id=row.other_submission_id,
            other_submission_id=row.submission_id, **common)))
    return sides


def similar_candidates(session: Session, team: TeamPrincipal, challenge_id: str) -> dict[int, list[SimilarToPublic]]:
    """For each invitation, the other candidates whose code is flagged as similar to theirs, closest first."""
    grouped: dict[int, list[SimilarToPublic]] = {}
    for mine, found in _flagged(session, team, challenge_id):
        grouped.setdefault(mine, []).append(found)
    return {mine: _closest_first(found) for mine, found in grouped.items()}


def similar_submissions(session: Session, team: TeamPrincipal, challenge_id: str) -> dict[int, list[SimilarToPublic]]:
    """For each submission that is one side of a flagged pair of candidates, what it is similar to."""
    grouped: dict[int, list[SimilarToPublic]] = {}
    for _mine, found in _flagged(session, team, challenge_id):
        grouped.setdefault(found.submission_id, []).append(found)
    return {submission: _closest_first(found) for submission, found in grouped.items()}


def _closest_first(found: Sequence[SimilarToPublic]) -> list[SimilarToPublic]:
    return sorted(found, key=lambda one: (one.identical, one.same_code, one.share), reverse=True)

