"""A stand-in OpenID Provider served over httpx2's MockTransport: discovery, JWKS, token and
userinfo endpoints, signing ID tokens with a key it generates."""

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from app.api.api_v1.endpoints.sso import get_oidc_client
from app.clients.oidc import OidcClient
from app.core.sso import SsoProvider, SsoSettings, sso_settings
from app.main import app
from tests.utils.utils import AuthorizationCall

ISSUER = "https://idp.example.test"
CLIENT_ID = "recipe-service"
CLIENT_SECRET = "a-client-secret-for-tests"


def provider_settings(name: str = "test", *, enabled: bool = True) -> SsoProvider:
    return SsoProvider(
        name=name,
        title="Test IdP",
        issuer=ISSUER,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,  # type: ignore[arg-type]
        enabled=enabled,
    )


@dataclass
class Grant:
    claims: dict[str, Any]
    nonce: str
    challenge: str
    redirect_uri: str


@dataclass
class FakeProvider:
    """Logs anyone in as `claims` say; counts the requests each endpoint gets."""

    key: ECKey = field(
        default_factory=lambda: ECKey.generate_key("P-256", {"kid": "k1"}, private=True)
    )
    grants: dict[str, Grant] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    # Set to make every endpoint fail, or to rewrite each ID token before it is signed.
    down: bool = False
    tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    email_in_id_token: bool = True

    def client(self, config: SsoSettings) -> OidcClient:
        return OidcClient(httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle)), config)

    def login(self, authorize_url: str, **claims: Any) -> str:
        """What the provider does after its login page: the callback query for a new code."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert query["code_challenge_method"] == "S256"
        assert query["client_id"] == CLIENT_ID
        code = secrets.token_urlsafe(16)
        defaults = {
            "sub": secrets.token_hex(8),
            "email": f"sso-{secrets.token_hex(4)}@example.com",
            "email_verified": True,
            "given_name": "Ada",
            "family_name": "Lovelace",
        }
        self.grants[code] = Grant(
            defaults | claims, query["nonce"], query["code_challenge"], query["redirect_uri"]
        )
        return f"code={code}&state={query['state']}"

    def id_token(self, claims: dict[str, Any], nonce: str, **header: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
        } | claims
        if not self.email_in_id_token:
            payload = {k: v for k, v in payload.items() if not k.startswith("email")}
        if self.tamper is not None:
            payload = self.tamper(payload)
        return jwt.encode({"alg": "ES256", "kid": self.key.kid} | header, payload, self.key)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if self.down:
            return httpx2.Response(502, text="bad gateway")
        if path == "/.well-known/openid-configuration":
            return httpx2.Response(200, json=self.discovery())
        if path == "/jwks":
            return httpx2.Response(200, json={"keys": [self.key.as_dict(private=False)]})
        if path == "/token":
            return self._token(request)
        if path == "/userinfo":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.profiles:
                return httpx2.Response(401)
            return httpx2.Response(200, json=self.profiles[token])
        return httpx2.Response(404)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/jwks",
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "id_token_signing_alg_values_supported": ["ES256", "RS256", "HS256", "none"],
        }

    def _token(self, request: httpx2.Request) -> httpx2.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        grant = self.grants.pop(form.get("code", ""), None)  # single use
        if (
            grant is None
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant.redirect_uri
            or _challenge(form.get("code_verifier", "")) != grant.challenge
        ):
            return httpx2.Response(400, json={"error": "invalid_grant"})
        access_token = secrets.token_urlsafe(16)
        self.profiles[access_token] = grant.claims
        return httpx2.Response(
            200,
            json={
                "access_token": access_token,
                "token_type": "Bearer",
                "id_token": self.id_token(grant.claims, grant.nonce),
            },
        )


def _challenge(verifier: str) -> str:
    # The provider side of PKCE, computed independently of the code under test.
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def callback_code(location: str) -> str:
    """The exchange code in a callback's redirect fragment."""
    fragment = urlsplit(location).fragment
    return parse_qs(fragment)["sso_code"][0]


SSO = "/api/v1/auth/sso"
# The authorization matrix runs with no provider configured: every provider is unknown (404), a
# made-up exchange code is refused (400), and an identity id that is nobody's is 404 (ownership
# with real identities: tests/api/api_v1/test_sso.py).
AUTHORIZATION_CALLS: list[AuthorizationCall] = [
    ("GET", f"{SSO}/providers", lambda _: (f"{SSO}/providers", {})),
    ("GET", f"{SSO}/{{provider}}/authorize", lambda _: (f"{SSO}/nope/authorize", {})),
    (
        "GET",
        f"{SSO}/{{provider}}/callback",
        lambda _: (f"{SSO}/nope/callback", {"params": {"code": "c", "state": "s"}}),
    ),
    ("POST", f"{SSO}/exchange", lambda _: (f"{SSO}/exchange", {"json": {"code": "not-a-code"}})),
    ("DELETE", f"{SSO}/identities/{{identity_id}}", lambda _: (f"{SSO}/identities/999999", {})),
]
AUTHORIZATION_EXPECT: list[tuple[str, str, tuple[int, ...]]] = [
    ("GET", f"{SSO}/{{provider}}/authorize", (404,) * 6),
    ("GET", f"{SSO}/{{provider}}/callback", (404,) * 6),
    ("POST", f"{SSO}/exchange", (400,) * 6),
    ("DELETE", f"{SSO}/identities/{{identity_id}}", (401, 404, 404, 404, 404, 404)),
]


@pytest.fixture
def sso_config(monkeypatch: pytest.MonkeyPatch) -> SsoSettings:
    providers = [provider_settings("test"), provider_settings("off", enabled=False)]
    monkeypatch.setattr(sso_settings, "SSO_PROVIDERS", providers)
    return sso_settings


@pytest.fixture
def idp(sso_config: SsoSettings) -> Iterator[FakeProvider]:
    """The stand-in provider, in place of the app's OpenID Connect client."""
    provider = FakeProvider()
    oidc = provider.client(sso_config)
    app.dependency_overrides[get_oidc_client] = lambda: oidc
    yield provider
    app.dependency_overrides.pop(get_oidc_client, None)


async def authorize(client: httpx2.AsyncClient, provider: str = "test") -> str:
    response = await client.get(f"{SSO}/{provider}/authorize")
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def callback(client: httpx2.AsyncClient, idp: FakeProvider, **claims: Any) -> httpx2.Response:
    query = idp.login(await authorize(client), **claims)
    return await client.get(f"{SSO}/test/callback?{query}")
