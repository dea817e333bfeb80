"""add sso identities and codes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 19:52:39
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_identity_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_identity_provider_subject")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("identity") as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sso_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_sso_code_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_sso_code_code_hash")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("sso_code") as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_code_user_id"), ["user_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("sso_code") as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_code_user_id"))

    op.drop_table("sso_code")
    with op.batch_alter_table("identity") as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_user_id"))

    op.drop_table("identity")
