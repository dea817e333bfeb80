"""Every query as a named method on a repository; repositories flush, never commit. No HTTP here."""

from app.crud.crud_idempotency_key import idempotency_key
from app.crud.crud_identity import identity, sso_code
from app.crud.crud_recipe import recipe
from app.crud.crud_token import password_reset_token, refresh_token
from app.crud.crud_user import user

__all__ = [
    "idempotency_key",
    "identity",
    "password_reset_token",
    "recipe",
    "refresh_token",
    "sso_code",
    "user",
]
