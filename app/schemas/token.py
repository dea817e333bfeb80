"""Token, session and password-recovery bodies."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from app.schemas.common import WriteModel
from app.schemas.user import Email, Password

# Opaque tokens are 43 URL-safe characters; anything else is simply unknown (400/401), not 422.
# The bound leaves room for an access token sent in the wrong field, which is then a 401 too.
OpaqueToken = Annotated[
    str,
    StringConstraints(min_length=1, max_length=512),
    Field(examples=["3q2-7wF1cC0m4nD3dN8T5xW9vZ6yU1iO0pA7sK4lJ2h"]),
]


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])
    refresh_token: str = Field(description="Single use: POST it to /auth/refresh for a new pair.")
    scope: str = Field(description="The granted scopes, space-separated.", examples=["users:admin"])


class TokenRefresh(WriteModel):
    """A refresh token, to rotate (/auth/refresh) or to end its session (/auth/logout)."""

    refresh_token: OpaqueToken


class PasswordRecovery(WriteModel):
    email: Email


class PasswordReset(WriteModel):
    token: OpaqueToken
    new_password: Password


class Message(BaseModel):
    message: str
