"""add recipe label trigram index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL only, and not in the models: alembic/env.py leaves it out of drift checks.
INDEX = "ix_recipe_label_trgm"


def upgrade() -> None:
    # Serves the search's ILIKE '%keyword%': a B-tree cannot, a trigram GIN index can.
    if op.get_bind().dialect.name != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON recipe USING gin (label gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
