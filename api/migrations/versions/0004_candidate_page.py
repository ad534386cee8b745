"""The candidate's page: sessions (the cookie's token, as its SHA-256), time boxes, links, and whether the
candidate sees scores, fixed per invitation (the team's setting when it was made).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invitations") as batch:
        batch.add_column(sa.Column("token_salt", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("time_limit_minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("candidates_see_scores", sa.Boolean(), nullable=True))
    # Invitations made before keep what their candidates saw until now: the team's setting.
    op.execute("UPDATE invitations SET candidates_see_scores = "
               "(SELECT teams.candidates_see_scores FROM teams WHERE teams.id = invitations.team_id)")
    with op.batch_alter_table("invitations") as batch:
        batch.alter_column("candidates_see_scores", existing_type=sa.Boolean(), nullable=False)
    op.create_table(
        "candidate_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name=op.f("fk_candidate_sessions_invitation_id_invitations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidate_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_candidate_sessions_token_sha256")),
    )
    with op.batch_alter_table("candidate_sessions") as batch:
        batch.create_index(batch.f("ix_candidate_sessions_invitation_id"), ["invitation_id"], unique=False)


def downgrade() -> None:
    op.drop_table("candidate_sessions")
    with op.batch_alter_table("invitations") as batch:
        for column in ("candidates_see_scores", "started_at", "time_limit_minutes", "token_salt"):
            batch.drop_column(column)
