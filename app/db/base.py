"""The metadata with every model registered on it: what Alembic compares the database against."""

import app.models  # noqa: F401 - registers every model module on Base.metadata
from app.db.base_class import Base

__all__ = ["Base"]
