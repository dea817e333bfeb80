"""The metadata with every model registered on it: what Alembic compares the database against."""

from app.db.base_class import Base
from app.models import (
    IdempotencyKey,
    Identity,
    PasswordResetToken,
    Recipe,
    RefreshToken,
    SsoCode,
    User,
)

__all__ = [
    "Base",
    "IdempotencyKey",
    "Identity",
    "PasswordResetToken",
    "Recipe",
    "RefreshToken",
    "SsoCode",
    "User",
]
