"""The round's review: result versions (re-grades), fingerprints and similarity matches, a team's
known public solutions, notes and decisions, and invitations' normalised candidate (to spot the same
person invited twice).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _candidate_key(candidate: str) -> str:
    """``api.invitations.candidate_key`` as it was when this migration was written."""
    text = unicodedata.normalize("NFKC", candidate).strip().casefold()
    local, at, domain = text.rpartition("@")
    if not (at and local and domain):
        return " ".join(text.split())
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def upgrade() -> None:
    op.create_table(
        "result_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("challenge_version", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("max_score", sa.Double(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(), nullable=False),
        sa.Column("superseded_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_result_versions_submission_id_submissions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_versions")),
        sa.UniqueConstraint("submission_id", "version", name=op.f("uq_result_versions_submission_id_version")),
    )
    with op.batch_alter_table("result_versions") as batch:
        batch.create_index(batch.f("ix_result_versions_submission_id"), ["submission_id"], unique=False)

    op.create_table(
        "known_solutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("source_url", sa.String(length=2000), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("store_key", sa.String(length=200), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprints", sa.Integer(), nullable=False),
        sa.Column("normalised_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_known_solutions_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_solutions")),
    )
    with op.batch_alter_table("known_solutions") as batch:
        batch.create_index(batch.f("ix_known_solutions_team_id_challenge_id"), ["team_id", "challenge_id"],
                           unique=False)

    op.create_table(
        "submission_fingerprints",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.String(length=100), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprints", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("normalised_sha256", sa.String(length=64), nullable=False),
        sa.Column("reference_shared", sa.Integer(), nullable=False),
        sa.Column("reference_share", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name=op.f("fk_submission_fingerprints_invitation_id_invitations")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_submission_fingerprints_submission_id_submissions")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_submission_fingerprints_team_id_teams")),
        sa.PrimaryKeyConstraint("submission_id", name=op.f("pk_submission_fingerprints")),
    )
    with op.batch_alter_table("submission_fingerprints") as batch:
        batch.create_index(batch.f("ix_submission_fingerprints_team_id_challenge_id"), ["team_id", "challenge_id"],
                           unique=False)

    op.create_table(
        "similarity_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.String(length=100), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("other_invitation_id", sa.Integer(), nullable=True),
        sa.Column("other_submission_id", sa.Integer(), nullable=True),
        sa.Column("known_solution_id", sa.Integer(), nullable=True),
        sa.Column("shared", sa.Integer(), nullable=False),
        sa.Column("share", sa.Double(), nullable=False),
        sa.Column("identical", sa.Boolean(), nullable=False),
        sa.Column("same_code", sa.Boolean(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name=op.f("fk_similarity_matches_invitation_id_invitations")),
        sa.ForeignKeyConstraint(["known_solution_id"], ["known_solutions.id"],
                                name=op.f("fk_similarity_matches_known_solution_id_known_solutions")),
        sa.ForeignKeyConstraint(["other_invitation_id"], ["invitations.id"],
                                name=op.f("fk_similarity_matches_other_invitation_id_invitations")),
        sa.ForeignKeyConstraint(["other_submission_id"], ["submissions.id"],
                                name=op.f("fk_similarity_matches_other_submission_id_submissions")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_similarity_matches_submission_id_submissions")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_similarity_matches_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_similarity_matches")),
        sa.UniqueConstraint("invitation_id", "known_solution_id",
                            name=op.f("uq_similarity_matches_invitation_id_known_solution_id")),
        sa.UniqueConstraint("invitation_id", "other_invitation_id",
                            name=op.f("uq_similarity_matches_invitation_id_other_invitation_id")),
    )
    with op.batch_alter_table("similarity_matches") as batch:
        batch.create_index(batch.f("ix_similarity_matches_known_solution_id"), ["known_solution_id"], unique=False)
        batch.create_index(batch.f("ix_similarity_matches_other_invitation_id"), ["other_invitation_id"],
                           unique=False)
        batch.create_index(batch.f("ix_similarity_matches_other_submission_id"), ["other_submission_id"],
                           unique=False)
        batch.create_index(batch.f("ix_similarity_matches_submission_id"), ["submission_id"], unique=False)
        batch.create_index(batch.f("ix_similarity_matches_team_id_challenge_id"), ["team_id", "challenge_id"],
                           unique=False)

    op.create_table(
        "review_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name=op.f("fk_review_notes_invitation_id_invitations")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_review_notes_submission_id_submissions")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_review_notes_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_notes")),
    )
    with op.batch_alter_table("review_notes") as batch:
        batch.create_index(batch.f("ix_review_notes_invitation_id"), ["invitation_id"], unique=False)
        batch.create_index(batch.f("ix_review_notes_submission_id"), ["submission_id"], unique=False)

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("decision IN ('advance', 'hold', 'reject')", name=op.f("ck_review_decisions_decision")),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name=op.f("fk_review_decisions_invitation_id_invitations")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_review_decisions_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    with op.batch_alter_table("review_decisions") as batch:
        batch.create_index(batch.f("ix_review_decisions_invitation_id"), ["invitation_id"], unique=False)

    with op.batch_alter_table("invitations") as batch:
        batch.add_column(sa.Column("candidate_key", sa.String(length=320), nullable=False, server_default=""))
    invitations = sa.table("invitations", sa.column("id", sa.Integer()), sa.column("candidate", sa.String()),
                           sa.column("candidate_key", sa.String()))
    connection = op.get_bind()
    for row in connection.execute(sa.select(invitations.c.id, invitations.c.candidate)).all():
        connection.execute(invitations.update().where(invitations.c.id == row.id)
                           .values(candidate_key=_candidate_key(row.candidate)))
    with op.batch_alter_table("invitations") as batch:
        batch.alter_column("candidate_key", server_default=None)
        batch.create_index(batch.f("ix_invitations_team_id_candidate_key"), ["team_id", "candidate_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invitations") as batch:
        batch.drop_index(batch.f("ix_invitations_team_id_candidate_key"))
        batch.drop_column("candidate_key")
    for table in ("review_decisions", "review_notes", "similarity_matches", "submission_fingerprints",
                  "known_solutions", "result_versions"):
        op.drop_table(table)
