"""Copies between candidates, kept up to date: each submission's fingerprints (``grader.similarity``)
stored once, every new one compared with those of the same challenge, and for each pair of candidates
their closest pair of submissions kept when it is worth a look. Reading them: ``api.copies``.

``refresh`` brings a team's challenge up to date: the submissions without
fingerprints yet are read from the store and fingerprinted (outside any
transaction: that is the slow part), then, in one write transaction that holds
the team's row (so two refreshes never miss each other's submissions), compared
with every stored fingerprint of the challenge (``grader.similarity.shared_counts``),
with the challenge's reference solution, and with the team's known public
solutions. Pages and routes call it before they read, so what they show is
never stale; when nothing is new it is one query. A keeper thread in the
service (``SimilarityKeeper``) does the same in the background after uploads,
so the first page after a round of uploads seldom has to.

Kept, one row per pair of candidates (``similarity_matches``): their closest
pair of submissions, when it shares at least ``KEPT_SHARE`` of the smaller one's
fingerprints, or is byte-identical, or the same code. Flagged (shown to the team
as "similar to"): identical uploads, the same code once names and layout are
normalised, and pairs over ``grader.similarity.FLAG_SHARE``. A submission with no
code of its own (the untouched starter) is never flagged.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.models import KnownSolution, SimilarityMatch, Submission, SubmissionFingerprint, Team
from api.service import Service
from grader.challenge import Challenge
from grader.similarity import Fingerprint, Overlap, fingerprint, kgram_hashes, overlap, pack, shared_counts, unpack
from grader.sources import SubmissionSources, read_sources

log = logging.getLogger("cvgrade.api.similarity")
KEPT_SHARE = 0.2
KEEPER_POLL_S = 2.0
MAX_CODE_CHARS = 1024 * 1024  # of one submission's code, fingerprinted


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
    """``refresh`` for a page or route about to read, then end ``session``'s transaction so that its next
    read sees what was stored (by this refresh or the keeper's: a read transaction on SQLite sees the
    database as it was at its first read). A failure is logged, and the page shows what is stored."""
    try:
        refresh(service, team_id, challenge)
    except Exception:
        log.exception("comparing the submissions of team %s to %s failed; showing what is stored", team_id,
                      challenge.id)
    session.commit()


def _store(service: Service, team_id: int, challenge: Challenge, computed: dict[int, Fingerprint]) -> int:
    now = service.clock()
    reference = _reference(str(challenge.root), challenge.version)
    with service.db.write() as session:
        session.scalars(select(Team.id).where(Team.id == team_id).with_for_update()).one()  # one refresher per team
        existing = stored_fingerprints(session, team_id, challenge.id)
        done = {item.submission_id for item in existing}
        fresh = {submission_id: found for submission_id, found in computed.items() if submission_id not in done}
        if not fresh:
            return 0
        meta = {row.id: row for row in session.execute(
            select(Submission.id, Submission.invitation_id, Submission.sha256)
            .where(Submission.id.in_(list(fresh))))}
        new = [Stored(submission_id, meta[submission_id].invitation_id, meta[submission_id].sha256, found.digest,
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
        best = _closest_pairs(existing, new)
        best.update(_closest_known(new, _known(session, team_id, challenge.id)))
        _keep(session, team_id, challenge.id, best, new, now)
        session.commit()
    log.info("similarity: %d submission(s) of team %s to %s fingerprinted and compared", len(new), team_id,
             challenge.id)
    return len(new)


@dataclass(frozen=True)
class Stored:
    """A stored fingerprint, with what comparing needs."""

    submission_id: int
    invitation_id: int
    sha256: str
    normalised_sha256: str
    hashes: frozenset[int]


def stored_fingerprints(session: Session, team_id: int, challenge_id: str) -> list[Stored]:
    return [
        Stored(row.submission_id, row.invitation_id, row.sha256, row.normalised_sha256, unpack(row.hashes))
        for row in session.execute(
            select(SubmissionFingerprint.submission_id, SubmissionFingerprint.invitation_id, Submission.sha256,
                   SubmissionFingerprint.normalised_sha256, SubmissionFingerprint.hashes)
            .join(Submission, Submission.id == SubmissionFingerprint.submission_id)
            .where(SubmissionFingerprint.team_id == team_id, SubmissionFingerprint.challenge_id == challenge_id)
            .order_by(SubmissionFingerprint.submission_id))
    ]


@dataclass(frozen=True)
class Match:
    """Two submissions compared: ``a`` is of the lower invitation (or the submission, against a known one)."""

    a: Stored
    b: Stored | None
    known_solution_id: int | None
    found: Overlap
    identical: bool
    same_code: bool

    @property
    def flagged(self) -> bool:
        return bool(self.a.hashes) and (self.identical or self.same_code or self.found.flagged)

    @property
    def closeness(self) -> tuple[bool, bool, float, int]:
        return (self.flagged and self.identical, self.flagged and self.same_code, self.found.share, self.found.shared)

    @property
    def kept(self) -> bool:
        return self.flagged or self.found.share >= KEPT_SHARE


def compare_two(a: Stored, b: Stored, shared: int | None = None) -> Match:
    """Two submissions compared (``shared``: their shared fingerprints, when already counted)."""
    first, second = (a, b) if (a.invitation_id, a.submission_id) < (b.invitation_id, b.submission_id) else (b, a)
    if shared is None:
        shared = len(a.hashes & b.hashes)
    return Match(first, second, None, _overlap(shared, first.hashes, second.hashes), first.sha256 == second.sha256,
                 first.normalised_sha256 == second.normalised_sha256)


def _closest_pairs(existing: list[Stored], new: list[Stored]) -> dict[tuple[int, int | None, int | None], Match]:
    """For each pair of candidates with a new submission, their closest pair of submissions (if kept)."""
    items = existing + new
    counts = shared_counts([(item.invitation_id, item.hashes) for item in items], new_from=len(existing))
    # Copies that share no fingerprint still count: the same bytes, or the same normalised code.
    by_digest: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        if item.hashes:
            by_digest.setdefault(item.sha256, []).append(position)
            by_digest.setdefault(item.normalised_sha256, []).append(position)
    for positions in by_digest.values():
        for later in (p for p in positions if p >= len(existing)):
            for earlier in (p for p in positions if p < later):
                if items[earlier].invitation_id != items[later].invitation_id:
                    counts.setdefault((earlier, later), 0)
    best: dict[tuple[int, int | None, int | None], Match] = {}
    sizes = [len(item.hashes) for item in items]
    for (earlier, later), shared in counts.items():
        one, other = items[earlier], items[later]
        if (shared < KEPT_SHARE * min(sizes[earlier], sizes[later]) and one.sha256 != other.sha256
                and one.normalised_sha256 != other.normalised_sha256):
            continue  # most pairs share a line or two: decided without making a Match
        match = compare_two(one, other, shared)
        assert match.b is not None
        key = (match.a.invitation_id, match.b.invitation_id, None)
        if match.kept and (key not in best or match.closeness > best[key].closeness):
            best[key] = match
    return best


def _closest_known(new: Sequence[Stored], known: Sequence[KnownSolution]
                   ) -> dict[tuple[int, int | None, int | None], Match]:
    best: dict[tuple[int, int | None, int | None], Match] = {}
    for solution in known:
        hashes = unpack(solution.hashes)
        for item in new:
            found = overlap(item.hashes, hashes)
            match = Match(item, None, solution.id, found, item.sha256 == solution.sha256,
                          item.normalised_sha256 == solution.normalised_sha256)
            key = (item.invitation_id, None, solution.id)
            if match.kept and (key not in best or match.closeness > best[key].closeness):
                best[key] = match
    return best


def _keep(session: Session, team_id: int, challenge_id: str, best: dict[tuple[int, int | None, int | None], Match],
          new: Sequence[Stored], now: datetime) -> None:
    """Store each candidate pair's closest match, replacing the stored one only when the new is closer
    (every match has a submission of ``new`` on one side: only their candidates' rows are read)."""
    if not best:
        return
    new_ids = {item.submission_id for item in new}
    touched = {match.a.invitation_id if match.b is None or match.a.submission_id in new_ids else match.b.invitation_id
               for match in best.values()}
    stored = {(row.invitation_id, row.other_invitation_id, row.known_solution_id): row for row in session.scalars(
        select(SimilarityMatch).where(SimilarityMatch.team_id == team_id, SimilarityMatch.challenge_id == challenge_id,
                                      SimilarityMatch.invitation_id.in_(touched)
                                      | SimilarityMatch.other_invitation_id.in_(touched)))}
    inserts = []
    for key, match in best.items():
        values = {"submission_id": match.a.submission_id,
                  "other_submission_id": match.b.submission_id if match.b else None, "shared": match.found.shared,
                  "share": round(match.found.share, 4), "identical": match.identical, "same_code": match.same_code,
                  "flagged": match.flagged}
        row = stored.get(key)
        if row is None:
            inserts.append({"team_id": team_id, "challenge_id": challenge_id, "invitation_id": key[0],
                            "other_invitation_id": key[1], "known_solution_id": key[2], "created_at": now, **values})
        elif match.closeness > (row.flagged and row.identical, row.flagged and row.same_code, row.share, row.shared):
            for name, value in values.items():
                setattr(row, name, value)
    if inserts:
        session.execute(insert(SimilarityMatch), inserts)


def _overlap(shared: int, a: frozenset[int], b: frozenset[int]) -> Overlap:
    return Overlap(shared, shared / len(a) if a else 0.0, shared / len(b) if b else 0.0)


def _known(session: Session, team_id: int, challenge_id: str) -> list[KnownSolution]:
    return list(session.scalars(select(KnownSolution).where(
        KnownSolution.team_id == team_id, KnownSolution.challenge_id == challenge_id,
        KnownSolution.deleted_at.is_(None)).order_by(KnownSolution.id)))


def match_known_solution(session: Session, solution: KnownSolution, now: datetime) -> None:
    """Compare a newly added known solution with every stored submission of its challenge."""
    submissions = stored_fingerprints(session, solution.team_id, solution.challenge_id)
    _keep(session, solution.team_id, solution.challenge_id, _closest_known(submissions, [solution]), submissions, now)


def forget_known_solution(session: Session, solution: KnownSolution) -> None:
    session.execute(delete(SimilarityMatch).where(SimilarityMatch.known_solution_id == solution.id))


# -- in the background ---------------------------------------------------------------------------

class SimilarityKeeper:
    """A thread that fingerprints and compares new submissions shortly after they arrive (every
    ``KEEPER_POLL_S``), so the first page after a round of uploads does not have to. Pages still refresh
    before they read: the keeper only saves them the wait. Several services on one database may each
    run one; the team's row lock keeps their work from overlapping."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = 0  # the newest submission id already looked at

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="similarity-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stopping.wait(KEEPER_POLL_S):
            try:
                self.catch_up()
            except Exception:
                log.exception("the similarity keeper failed; trying again shortly")

    def catch_up(self) -> int:
        """Refresh every team's challenge with new submissions; return how many were fingerprinted."""
        with self.service.db.read() as session:
            pending = session.execute(
                select(Submission.team_id, Submission.challenge_id, func.max(Submission.id))
                .outerjoin(SubmissionFingerprint, SubmissionFingerprint.submission_id == Submission.id)
                .where(Submission.id > self._seen, SubmissionFingerprint.submission_id.is_(None))
                .group_by(Submission.team_id, Submission.challenge_id)).all()
        done = 0
        for team_id, challenge_id, newest in pending:
            if self._stopping.is_set():
                break
            try:
                done += refresh(self.service, team_id, self.service.challenge(challenge_id))
            except NotFound:
                pass  # a challenge that is gone: nothing to compare with
            except Exception:  # the next page to need it will try again, and say what is wrong
                log.exception("comparing the submissions of team %s to %s failed", team_id, challenge_id)
            self._seen = max(self._seen, newest)
        return done


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
