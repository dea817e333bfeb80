"""Single sign-on settings: the OpenID Connect providers, read from SSO_* variables."""

import re
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROVIDER_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class SsoProvider(BaseModel):
    """One OpenID Provider; endpoints and keys come from its discovery document."""

    name: Annotated[str, Field(pattern=PROVIDER_NAME, description="In URLs and identities.")]
    title: str | None = Field(default=None, description="Shown as 'Log in with <title>'.")
    issuer: str = Field(description="Exactly the provider's `iss`, without a trailing slash.")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: list[str] = ["openid", "email", "profile"]
    enabled: bool = True

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _need_openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include openid")
        return value

    @property
    def label(self) -> str:
        return self.title or self.name.capitalize()


class SsoSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    SSO_PROVIDERS: list[SsoProvider] = Field(
        default=[], description="A JSON array of providers; empty turns single sign-on off."
    )
    SSO_FINISH_URL: str = Field(
        default="/?sso=done",
        description="Where the browser lands after the provider, with `#sso_code=<code>` "
        "(default: the HTML page, which offers to finish with the code's cookie).",
    )
    SSO_REDIRECT_BASE_URL: str | None = Field(
        default=None,
        description="This service's public URL, for the callback; default: the request's.",
    )
    SSO_STATE_SECONDS: int = Field(default=600, ge=30, le=3600)
    SSO_CODE_SECONDS: int = Field(default=60, ge=5, le=600)
    SSO_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    SSO_KEYS_CACHE_SECONDS: float = Field(default=3600.0, ge=0)
    SSO_LEEWAY_SECONDS: int = Field(default=60, ge=0, le=300)

    @field_validator("SSO_PROVIDERS")
    @classmethod
    def _unique(cls, value: list[SsoProvider]) -> list[SsoProvider]:
        if len({provider.name for provider in value}) != len(value):
            raise ValueError("provider names must be unique")
        return value

    @field_validator("SSO_REDIRECT_BASE_URL", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def provider(self, name: str) -> SsoProvider | None:
        """The enabled provider of this name, if any."""
        for provider in self.SSO_PROVIDERS:
            if provider.name == name and provider.enabled:
                return provider
        return None

    @property
    def enabled_providers(self) -> list[SsoProvider]:
        return [provider for provider in self.SSO_PROVIDERS if provider.enabled]


sso_settings = SsoSettings()
