"""SQLAlchemy models, all re-exported here so relationships resolve without import cycles."""

from app.models.idempotency_key import IdempotencyKey
from app.models.identity import Identity, SsoCode
from app.models.recipe import Recipe
from app.models.token import PasswordResetToken, RefreshToken
from app.models.user import User

__all__ = [
    "IdempotencyKey",
    "Identity",
    "PasswordResetToken",
    "Recipe",
    "RefreshToken",
    "SsoCode",
    "User",
]
