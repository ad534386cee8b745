"""Dashboard sessions: the login cookie's token, stored as its SHA-256.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_dashboard_sessions_team_id_teams")),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"],
                                name=op.f("fk_dashboard_sessions_api_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_dashboard_sessions_token_sha256")),
    )
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.create_index(batch.f("ix_dashboard_sessions_api_key_id"), ["api_key_id"], unique=False)
        batch.create_index(batch.f("ix_dashboard_sessions_team_id"), ["team_id"], unique=False)


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
