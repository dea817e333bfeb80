"""Single sign-on bodies: providers, the exchange code, identities, and a provider's profile."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from app.schemas.common import ReadModel, Text100, WriteModel
from app.schemas.token import OpaqueToken
from app.schemas.user import Email

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
_NAME: TypeAdapter[str] = TypeAdapter(Text100)


class SsoProviderRead(BaseModel):
    name: str = Field(examples=["keycloak"])
    title: str = Field(examples=["Keycloak"])
    authorize_url: str = Field(
        description="Send the browser here to log in.",
        examples=["/api/v1/auth/sso/keycloak/authorize"],
    )


class SsoExchange(WriteModel):
    """The code from `#sso_code=` after the provider; without it, the sso_code cookie's."""

    code: OpaqueToken | None = None


class IdentityRead(ReadModel):
    id: int
    provider: str = Field(examples=["keycloak"])
    email: str | None = Field(description="As the provider gave it when linked.")
    created_at: datetime


class SsoProfile(BaseModel):
    """The account facts a provider's claims give: an unusable value is simply absent."""

    subject: str
    email: str | None
    email_verified: bool
    first_name: str
    surname: str

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> "SsoProfile":
        first, _, last = str(claims.get("name") or "").partition(" ")
        return cls(
            subject=claims["sub"],
            email=_valid(_EMAIL, claims.get("email")),
            # Some providers send the string "true".
            email_verified=claims.get("email_verified") in (True, "true"),
            first_name=_valid(_NAME, claims.get("given_name") or first) or "-",
            surname=_valid(_NAME, claims.get("family_name") or last) or "-",
        )


def _valid(adapter: TypeAdapter[str], value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None
