"""Copies between candidates: each submission's fingerprints (``grader.similarity``) stored once,
every new one compared with those of the same challenge, and the pairs worth a look kept.

``refresh`` brings a team's challenge up to date: the submissions without
fingerprints yet are read from the store and fingerprinted (outside any
transaction: that is the slow part), then, in one write transaction that holds
the team's row (so two refreshes never miss each other's submissions), compared
with every stored fingerprint of the challenge (``grader.similarity.shared_counts``), with
the challenge's reference solution, and with the team's known public solutions.
Pages and routes call it before they read, so what they show is never stale;
when nothing is new it is one query.

Kept: pairs from different invitations sharing at least ``KEPT_SHARE`` of the
smaller one's fingerprints, and byte-identical or same-code pairs. Flagged
(shown to the team as "similar to"): identical uploads, the same code once names
and layout are normalised, and pairs over ``grader.similarity.FLAG_SHARE``. A
submission with no code of its own (the untouched starter) is never flagged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.orm import Session, aliased

from api.errors import NotFound
from api.models import Invitation, KnownSolution, SimilarityMatch, Submission, SubmissionFingerprint, Team
from api.schemas import ChallengeSimilarity, ReferenceSimilarity, SimilarityPublic, SimilarToPublic
from api.service import Service
from api.teams import TeamPrincipal
from grader.challenge import Challenge
from grader.similarity import Fingerprint, Overlap, fingerprint, kgram_hashes, overlap, pack, shared_counts, unpack
from grader.sources import SubmissionSources, read_sources

log = logging.getLogger("cvgrade.api.similarity")
KEPT_SHARE = 0.2
MAX_CODE_CHARS = 1024 * 1024  # of one submission's code, fingerprinted


@dataclass(frozen=True)
class _Stored:
    submission_id: int
    invitation_id: int
    sha256: str
    normalised_sha256: str
    hashes: frozenset[int]


# -- what everyone starts from, and the reference -----------------------------------------------

@functools.lru_cache(maxsize=32)
def _starter(challenge_dir: str, version: str) -> frozenset[int]:
    from grader.challenge import load_challenge

    challenge = load_challenge(challenge_dir)
    units: list[tuple[str, str]] = []
    for path in sorted(challenge.starter_dir.iterdir()):
        if path.is_file() and path.suffix in (".py", ".ipynb"):
            units += read_sources(path.read_bytes(), path.name, path.suffix[1:]).code_units()
    return kgram_hashes(units)


@functools.lru_cache(maxsize=32)
def _reference(challenge_dir: str, version: str) -> Fingerprint:
    from grader.challenge import load_challenge

    challenge = load_challenge(challenge_dir)
    path = challenge.reference_dir / "solution.py"
    return fingerprint(read_sources(path.read_bytes(), path.name, "py").code_units(), _starter(challenge_dir, version))


def starter_hashes(challenge: Challenge) -> frozenset[int]:
    """Every k-gram of the challenge's starter code (``.py`` and notebook): taken out of every fingerprint."""
    return _starter(str(challenge.root), challenge.version)


def code_units(sources: SubmissionSources) -> list[tuple[str, str]]:
    """The code to fingerprint, cut at ``MAX_CODE_CHARS`` in all."""
    units, left = [], MAX_CODE_CHARS
    for label, code in sources.code_units():
        if left <= 0:
            break
        units.append((label, code[:left]))
        left -= len(code)
    return units


def submission_fingerprint(content: bytes, filename: str, kind: str, challenge: Challenge) -> Fingerprint:
    return fingerprint(code_units(read_sources(content, filename, kind)), starter_hashes(challenge))


# -- keeping up to date -------------------------------------------------------------------------

def refresh(service: Service, team_id: int, challenge: Challenge) -> int:
    """Fingerprint and compare the team's submissions to the challenge that have not been yet; return
    how many were new."""
    with service.db.read() as session:
        missing = session.execute(
            select(Submission.id, Submission.store_key, Submission.filename, Submission.kind)
            .outerjoin(SubmissionFingerprint, SubmissionFingerprint.submission_id == Submission.id)
            .where(Submission.team_id == team_id, Submission.challenge_id == challenge.id,
                   SubmissionFingerprint.submission_id.is_(None))
            .order_by(Submission.id)).all()
    if not missing:
        return 0
    computed: dict[int, Fingerprint] = {}
    for row in missing:
        with service.store.local_path(row.store_key) as path:
            computed[row.id] = submission_fingerprint(path.read_bytes(), row.filename, row.kind, challenge)
    return _store(service, team_id, challenge, computed)


def refreshed(session: Session, service: Service, team_id: int, challenge: Challenge) -> None:
    """``refresh``, then end ``session``'s transaction so that its next read sees what was stored (a read
    transaction on SQLite sees the database as it was at its first read)."""
    if refresh(service, team_id, challenge):
        session.commit()


def _store(service: Service, team_id: int, challenge: Challenge, computed: dict[int, Fingerprint]) -> int:
    now = service.clock()
    reference = _reference(str(challenge.root), challenge.version)
    with service.db.write() as session:
        session.scalars(select(Team.id).where(Team.id == team_id).with_for_update()).one()  # one refresher per team
        existing = _stored(session, team_id, challenge.id)
        done = {item.submission_id for item in existing}
        fresh = {submission_id: found for submission_id, found in computed.items() if submission_id not in done}
        if not fresh:
            return 0
        meta = {row.id: row for row in session.execute(
            select(Submission.id, Submission.invitation_id, Submission.sha256)
            .where(Submission.id.in_(list(fresh))))}
        new = [_Stored(submission_id, meta[submission_id].invitation_id, meta[submission_id].sha256, found.digest,
                       found.hashes) for submission_id, found in fresh.items()]
        rows = []
        for item, found in zip(new, fresh.values(), strict=True):
            with_reference = overlap(found, reference)
            rows.append({
                "submission_id": item.submission_id, "team_id": team_id, "challenge_id": challenge.id,
                "invitation_id": item.invitation_id, "hashes": pack(found.hashes), "fingerprints": len(found),
                "tokens": found.tokens, "normalised_sha256": found.digest,
                "reference_shared": with_reference.shared, "reference_share": with_reference.share_a,
                "created_at": now})
        session.execute(insert(SubmissionFingerprint), rows)
        matches = _match_pairs(team_id, challenge.id, existing, new, now)
        matches += _match_known(team_id, challenge.id, new, _known(session, team_id, challenge.id), now)
        if matches:
            session.execute(insert(SimilarityMatch), matches)
        session.commit()
    log.info("similarity: %d submission(s) of team %s to %s fingerprinted and compared", len(new), team_id,
             challenge.id)
    return len(new)


def _stored(session: Session, team_id: int, challenge_id: str) -> list[_Stored]:
    return [
        _Stored(row.submission_id, row.invitation_id, row.sha256, row.normalised_sha256, unpack(row.hashes))
        for row in session.execute(
            select(SubmissionFingerprint.submission_id, SubmissionFingerprint.invitation_id, Submission.sha256,
                   SubmissionFingerprint.normalised_sha256, SubmissionFingerprint.hashes)
            .join(Submission, Submission.id == SubmissionFingerprint.submission_id)
            .where(SubmissionFingerprint.team_id == team_id, SubmissionFingerprint.challenge_id == challenge_id)
            .order_by(SubmissionFingerprint.submission_id))
    ]


def _match_pairs(team_id: int, challenge_id: str, existing: list[_Stored], new: list[_Stored],
                 now: datetime) -> list[dict[str, object]]:
    """The rows to store for the pairs of ``new`` with each other and with ``existing``."""
    items = existing + new
    counts = shared_counts([(item.invitation_id, item.hashes) for item in items], new_from=len(existing))
    # Copies that share no fingerprint still count: two uploads of the same bytes or the same normalised code.
    by_digest: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        if item.hashes:
            by_digest.setdefault(item.sha256, []).append(position)
            by_digest.setdefault(item.normalised_sha256, []).append(position)
    for positions in by_digest.values():
        for later in positions:
            if later < len(existing):
                continue
            for earlier in positions:
                if earlier < later and items[earlier].invitation_id != items[later].invitation_id:
                    counts.setdefault((earlier, later), 0)
    rows: list[dict[str, object]] = []
    for (first, second), shared in counts.items():
        a, b = sorted((items[first], items[second]), key=lambda item: item.submission_id)
        found = _overlap(shared, a.hashes, b.hashes)
        identical, same_code = a.sha256 == b.sha256, a.normalised_sha256 == b.normalised_sha256
        if found.share < KEPT_SHARE and not identical and not same_code:
            continue
        rows.append({"team_id": team_id, "challenge_id": challenge_id, "submission_id": a.submission_id,
                     "other_submission_id": b.submission_id, "known_solution_id": None, "shared": shared,
                     "share": round(found.share, 4), "identical": identical, "same_code": same_code,
                     "flagged": identical or same_code or found.flagged, "created_at": now})
    return rows


def _match_known(team_id: int, challenge_id: str, submissions: Sequence[_Stored], known: Sequence[KnownSolution],
                 now: datetime) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for item in submissions:
        for solution in known:
            hashes = unpack(solution.hashes)
            found = overlap(item.hashes, hashes)
            identical, same_code = item.sha256 == solution.sha256, item.normalised_sha256 == solution.normalised_sha256
            if not item.hashes or (found.share < KEPT_SHARE and not identical and not same_code):
                continue
            rows.append({"team_id": team_id, "challenge_id": challenge_id, "submission_id": item.submission_id,
                         "other_submission_id": None, "known_solution_id": solution.id, "shared": found.shared,
                         "share": round(found.share, 4), "identical": identical, "same_code": same_code,
                         "flagged": identical or same_code or found.flagged, "created_at": now})
    return rows


def _overlap(shared: int, a: frozenset[int], b: frozenset[int]) -> Overlap:
    return Overlap(shared, shared / len(a) if a else 0.0, shared / len(b) if b else 0.0)


def _known(session: Session, team_id: int, challenge_id: str) -> list[KnownSolution]:
    return list(session.scalars(select(KnownSolution).where(
        KnownSolution.team_id == team_id, KnownSolution.challenge_id == challenge_id,
        KnownSolution.deleted_at.is_(None)).order_by(KnownSolution.id)))


def match_known_solution(session: Session, solution: KnownSolution, now: datetime) -> None:
    """Compare a newly added known solution with every stored submission of its challenge."""
    rows = _match_known(solution.team_id, solution.challenge_id,
                        _stored(session, solution.team_id, solution.challenge_id), [solution], now)
    if rows:
        session.execute(insert(SimilarityMatch), rows)


def forget_known_solution(session: Session, solution: KnownSolution) -> None:
    session.execute(delete(SimilarityMatch).where(SimilarityMatch.known_solution_id == solution.id))


# -- reading ------------------------------------------------------------------------------------

def _public(match: SimilarityMatch, candidates: dict[int, tuple[int, str]], known: dict[int, str],
            viewpoint: int | None = None) -> SimilarityPublic:
    """A stored match; from ``viewpoint``'s side when it is the pair's second submission."""
    first, second = match.submission_id, match.other_submission_id
    if viewpoint is not None and second == viewpoint:
        first, second = second, first
    return SimilarityPublic(
        submission_id=first, candidate=candidates[first][1],
        other_submission_id=second, other_candidate=candidates[second][1] if second is not None else None,
        known_solution_id=match.known_solution_id,
        known_solution=known.get(match.known_solution_id) if match.known_solution_id is not None else None,
        shared=match.shared, share=match.share, identical=match.identical, same_code=match.same_code,
        flagged=match.flagged)


def _candidates(session: Session, submission_ids: set[int]) -> dict[int, tuple[int, str]]:
    if not submission_ids:
        return {}
    return {row.id: (row.invitation_id, row.candidate) for row in session.execute(
        select(Submission.id, Submission.invitation_id, Invitation.candidate)
        .join(Invitation, Invitation.id == Submission.invitation_id).where(Submission.id.in_(submission_ids)))}


def _labels(session: Session, team_id: int) -> dict[int, str]:
    return dict(session.execute(select(KnownSolution.id, KnownSolution.label)
                                .where(KnownSolution.team_id == team_id)).all())


def _ids(matches: Sequence[SimilarityMatch]) -> set[int]:
    return {i for match in matches for i in (match.submission_id, match.other_submission_id) if i is not None}


def challenge_similarity(session: Session, team: TeamPrincipal, challenge_id: str) -> ChallengeSimilarity:
    """Every kept pair of the challenge, most similar first, and the submissions close to the reference."""
    matches = list(session.scalars(
        select(SimilarityMatch).where(SimilarityMatch.team_id == team.team_id,
                                      SimilarityMatch.challenge_id == challenge_id)
        .order_by(SimilarityMatch.flagged.desc(), SimilarityMatch.identical.desc(), SimilarityMatch.share.desc(),
                  SimilarityMatch.id)))
    candidates = _candidates(session, _ids(matches))
    known = _labels(session, team.team_id)
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
                               pairs=[_public(match, candidates, known) for match in matches], reference=reference)


def submission_similarity(session: Session, team: TeamPrincipal, submission_id: int) -> list[SimilarityPublic]:
    """The kept matches of one submission, from its side, most similar first."""
    matches = list(session.scalars(
        select(SimilarityMatch).where(SimilarityMatch.team_id == team.team_id,
                                      (SimilarityMatch.submission_id == submission_id)
                                      | (SimilarityMatch.other_submission_id == submission_id))
        .order_by(SimilarityMatch.flagged.desc(), SimilarityMatch.share.desc(), SimilarityMatch.id)))
    candidates = _candidates(session, _ids(matches) | {submission_id})
    known = _labels(session, team.team_id)
    return [_public(match, candidates, known, viewpoint=submission_id) for match in matches]


def reference_share(session: Session, team: TeamPrincipal, submission_id: int) -> Overlap | None:
    row = session.execute(select(SubmissionFingerprint.reference_shared, SubmissionFingerprint.reference_share)
                          .where(SubmissionFingerprint.submission_id == submission_id,
                                 SubmissionFingerprint.team_id == team.team_id)).first()
    return Overlap(row.reference_shared, row.reference_share, 0.0) if row is not None else None


def pair(session: Session, team: TeamPrincipal, submission_id: int, other_id: int) -> SimilarityPublic:
    """The stored match of two of the team's submissions (from the first one's side), or 404."""
    first, second = sorted((submission_id, other_id))
    match = session.scalar(select(SimilarityMatch).where(
        SimilarityMatch.team_id == team.team_id, SimilarityMatch.submission_id == first,
        SimilarityMatch.other_submission_id == second))
    if match is None:
        owned = session.scalars(select(Submission.id).where(Submission.id.in_([submission_id, other_id]),
                                                           Submission.team_id == team.team_id)).all()
        missing = next((i for i in (submission_id, other_id) if i not in owned), None)
        if missing is not None:
            raise NotFound(f"your team has no submission {missing}")
        raise NotFound(f"submissions {submission_id} and {other_id} share little or no code (less than "
                       f"{KEPT_SHARE:.0%} of the smaller one), or are the same candidate's")
    return _public(match, _candidates(session, {first, second}), {}, viewpoint=submission_id)


def _flagged(session: Session, team: TeamPrincipal, challenge_id: str) -> list[tuple[int, SimilarToPublic]]:
    """Each flagged pair of submissions, once from each side: (the side's invitation, what it is similar to)."""
    first, second = aliased(Submission), aliased(Submission)
    first_invitation, second_invitation = aliased(Invitation), aliased(Invitation)
    rows = session.execute(
        select(SimilarityMatch.submission_id, SimilarityMatch.other_submission_id, SimilarityMatch.share,
               SimilarityMatch.identical, SimilarityMatch.same_code,
               first.invitation_id.label("first_invitation"), second.invitation_id.label("second_invitation"),
               first_invitation.candidate.label("first_candidate"),
               second_invitation.candidate.label("second_candidate"))
        .join(first, first.id == SimilarityMatch.submission_id)
        .join(second, second.id == SimilarityMatch.other_submission_id)
        .join(first_invitation, first_invitation.id == first.invitation_id)
        .join(second_invitation, second_invitation.id == second.invitation_id)
        .where(and_(SimilarityMatch.team_id == team.team_id, SimilarityMatch.challenge_id == challenge_id,
                    SimilarityMatch.flagged.is_(True)))).all()
    sides = []
    for row in rows:
        sides.append((row.first_invitation, SimilarToPublic(
            candidate=row.second_candidate, invitation_id=row.second_invitation, submission_id=row.submission_id,
            other_submission_id=row.other_submission_id, share=row.share, identical=row.identical,
            same_code=row.same_code)))
        sides.append((row.second_invitation, SimilarToPublic(
            candidate=row.first_candidate, invitation_id=row.first_invitation, submission_id=row.other_submission_id,
            other_submission_id=row.submission_id, share=row.share, identical=row.identical,
            same_code=row.same_code)))
    return sides


def similar_candidates(session: Session, team: TeamPrincipal, challenge_id: str) -> dict[int, list[SimilarToPublic]]:
    """For each invitation, the other candidates whose code is flagged as similar to any of theirs (the
    closest pair with each), closest first."""
    best: dict[tuple[int, int], SimilarToPublic] = {}
    for mine, found in _flagged(session, team, challenge_id):
        key = (mine, found.invitation_id)
        if key not in best or _closeness(found) > _closeness(best[key]):
            best[key] = found
    grouped: dict[int, list[SimilarToPublic]] = {}
    for (mine, _theirs), found in best.items():
        grouped.setdefault(mine, []).append(found)
    return {mine: sorted(found, key=_closeness, reverse=True) for mine, found in grouped.items()}


def similar_submissions(session: Session, team: TeamPrincipal, challenge_id: str) -> dict[int, list[SimilarToPublic]]:
    """For each submission, the flagged matches with other candidates' submissions, closest first."""
    grouped: dict[int, list[SimilarToPublic]] = {}
    for _mine, found in _flagged(session, team, challenge_id):
        grouped.setdefault(found.submission_id, []).append(found)
    return {submission: sorted(found, key=_closeness, reverse=True) for submission, found in grouped.items()}


def _closeness(found: SimilarToPublic) -> tuple[bool, bool, float]:
    return (found.identical, found.same_code, found.share)


# -- a pair, side by side -----------------------------------------------------------------------

@dataclass(frozen=True)
class Side:
    """One side of a pair view: its code units (as fingerprinted) and its fingerprint."""

    units: list[tuple[str, str]]
    fingerprint: Fingerprint


def side(content: bytes, filename: str, kind: str, challenge: Challenge) -> Side:
    units = code_units(read_sources(content, filename, kind))
    return Side(units, fingerprint(units, starter_hashes(challenge)))


def reference_side(challenge: Challenge) -> Fingerprint:
    """The reference's fingerprint, to show which of a submission's lines it holds (never its code)."""
    return _reference(str(challenge.root), challenge.version)
