"""The metadata with every model registered on it: what Alembic compares the database against."""

from app.db.base_class import Base
from app.models import Identity, PasswordResetToken, Recipe, RefreshToken, SsoCode, User

__all__ = [
    "Base",
    "Identity",
    "PasswordResetToken",
    "Recipe",
    "RefreshToken",
    "SsoCode",
    "User",
]
