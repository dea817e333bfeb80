"""The metadata with every model registered on it: what Alembic compares the database against."""

from app.db.base_class import Base
from app.models import IdempotencyKey, PasswordResetToken, Recipe, RefreshToken, User

__all__ = ["Base", "IdempotencyKey", "PasswordResetToken", "Recipe", "RefreshToken", "User"]
