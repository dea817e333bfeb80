"""SQLAlchemy models. Importing this package imports every module in it, so each model is
registered on Base.metadata (and seen by Alembic) with no list to edit; the account models are
re-exported for the many modules that use them."""

import importlib
import pkgutil

from app.models.idempotency_key import IdempotencyKey
from app.models.token import PasswordResetToken, RefreshToken
from app.models.user import User

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["IdempotencyKey", "PasswordResetToken", "RefreshToken", "User"]
