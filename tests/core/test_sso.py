"""Single sign-on settings: providers from JSON, checked at start-up."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.sso import SsoSettings

PROVIDER = {
    "name": "keycloak",
    "issuer": "https://sso.example.com/realms/recipes/",
    "client_id": "recipe-service",
    "client_secret": "s3cret",
}


def test_providers_are_read_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_PROVIDERS", json.dumps([PROVIDER]))
    config = SsoSettings(_env_file=None)
    [provider] = config.SSO_PROVIDERS
    assert provider.issuer == "https://sso.example.com/realms/recipes"
    assert provider.scopes == ["openid", "email", "profile"]
    assert provider.label == "Keycloak"
    assert config.provider("keycloak") is provider
    assert config.provider("other") is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"issuer": "ftp://sso.example.com"}, "issuer"),
        ({"issuer": "https://sso.example.com/?x=1"}, "issuer"),
        ({"scopes": ["email"]}, "openid"),
    ],
)
def test_bad_provider_stops_start_up(change: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        SsoSettings(_env_file=None, SSO_PROVIDERS=[PROVIDER | change])  # type: ignore[list-item]


def test_provider_names_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        SsoSettings(_env_file=None, SSO_PROVIDERS=[PROVIDER, PROVIDER])  # type: ignore[list-item]


def test_disabled_provider_is_not_offered() -> None:
    disabled = PROVIDER | {"enabled": False}
    config = SsoSettings(_env_file=None, SSO_PROVIDERS=[disabled])  # type: ignore[list-item]
    assert config.enabled_providers == []
    assert config.provider("keycloak") is None


def test_env_example_documents_every_sso_setting() -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    documented = {
        line.lstrip("# ").split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line.lstrip("# ").startswith("SSO_")
    }
    assert set(SsoSettings.model_fields) <= documented
