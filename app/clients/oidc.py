"""OpenID Providers over HTTP: discovery, JWKS (cached, refetched on rotation), the token and
userinfo endpoints, and ID-token validation with joserfc. No HTTP framework here."""

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2

from app import __version__
from app.core.config import settings
from app.core.sso import SsoProvider, SsoSettings, sso_settings

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

logger = logging.getLogger(__name__)

USER_AGENT = f"{settings.project_slug}/{__version__} (OpenID Connect)"
# Signatures only a private key can make: `none` and the HMAC family are never accepted, so a
# token "signed" with a provider's public key as an HMAC secret has no algorithm to pass with.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
# Discovery documents and key sets are small; anything far larger is not one.
MAX_BODY_BYTES = 512 * 1024
# An unknown `kid` refetches the key set (the provider rotated), at most this often, so
# tokens with made-up key ids cannot turn this service into a load on the provider.
MIN_REFETCH_SECONDS = 10.0


class ProviderDown(Exception):
    """The provider did not answer usably: unreachable, slow, 5xx or garbled."""


class ProviderRefused(Exception):
    """The provider answered a 4xx: it refused the code (used, expired, not ours)."""


class InvalidIdToken(Exception):
    """The ID token failed validation; the message says which check, fit to show."""


@dataclass(frozen=True, slots=True)
class Metadata:
    """What this service uses of a discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: frozenset[str]


@dataclass(slots=True)
class _Keys:
    keys: "KeySet"
    fetched_at: float


@dataclass(slots=True)
class _Cached:
    metadata: Metadata
    fetched_at: float


@dataclass(slots=True)
class OidcClient:
    """The app's one client for every provider; discovery and keys cached in memory."""

    http: httpx2.AsyncClient
    config: SsoSettings = field(default_factory=lambda: sso_settings)
    _metadata: dict[str, _Cached] = field(default_factory=dict)
    _keys: dict[str, _Keys] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def metadata(self, provider: SsoProvider) -> Metadata:
        cached = self._metadata.get(provider.name)
        if cached is not None and time.monotonic() - cached.fetched_at < self._ttl:
            return cached.metadata
        document = await self._get_json(f"{provider.issuer}/.well-known/openid-configuration")
        metadata = _parse_metadata(document, provider)
        self._metadata[provider.name] = _Cached(metadata, time.monotonic())
        return metadata

    async def exchange_code(
        self, provider: SsoProvider, *, code: str, redirect_uri: str, verifier: str
    ) -> dict[str, Any]:
        """The token endpoint's answer for an authorization code (client_secret_post)."""
        metadata = await self.metadata(provider)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret.get_secret_value(),
        }
        answer = await self._request("POST", metadata.token_endpoint, data=form)
        if not isinstance(answer.get("id_token"), str):
            raise ProviderDown("no id_token in the token response")
        return answer

    async def userinfo(self, provider: SsoProvider, access_token: str) -> dict[str, Any]:
        metadata = await self.metadata(provider)
        if metadata.userinfo_endpoint is None:
            return {}
        headers = {"Authorization": f"Bearer {access_token}"}
        return await self._get_json(metadata.userinfo_endpoint, headers=headers)

    async def verify_id_token(
        self, provider: SsoProvider, id_token: str, *, nonce: str
    ) -> dict[str, Any]:
        """The claims of a valid ID token: signed by one of the provider's keys with one of its
        asymmetric algorithms, from its issuer, for this client, current, with this nonce."""
        # Imported on first use (here and in _parse_keys): most starts see no SSO sign-in.
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError

        metadata = await self.metadata(provider)
        keys = await self._key_set(provider, metadata)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=metadata.algorithms)
            except InvalidKeyIdError:
                keys = await self._key_set(provider, metadata, rotated=True)
                token = jwt.decode(id_token, keys, algorithms=metadata.algorithms)
        except (JoseError, ValueError) as exc:
            raise InvalidIdToken("signature or format") from exc
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=self.config.SSO_LEEWAY_SECONDS,
            iss={"essential": True, "value": metadata.issuer},
            aud={"essential": True, "value": provider.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidIdToken(exc.description or exc.error) from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
            raise InvalidIdToken("Invalid claim: 'azp'")
        if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
            raise InvalidIdToken("Invalid claim: 'sub'")
        return claims

    @property
    def _ttl(self) -> float:
        return self.config.SSO_KEYS_CACHE_SECONDS

    async def _key_set(
        self, provider: SsoProvider, metadata: Metadata, *, rotated: bool = False
    ) -> "KeySet":
        async with self._lock:
            cached = self._keys.get(provider.name)
            now = time.monotonic()
            if cached is not None:
                age = now - cached.fetched_at
                if (not rotated and age < self._ttl) or (rotated and age < MIN_REFETCH_SECONDS):
                    return cached.keys
            document = await self._get_json(metadata.jwks_uri)
            keys = _parse_keys(document)
            self._keys[provider.name] = _Keys(keys, now)
            return keys

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await self._request("GET", url, headers=headers)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self.http.stream(method, url, headers=headers, data=data) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ProviderDown(f"{method} {url}: answer too large")
        except httpx2.HTTPError as exc:
            raise ProviderDown(f"{method} {url}: {type(exc).__name__}") from exc
        if 400 <= response.status_code < 500:
            # The provider's error code only (say, invalid_grant): never the body's other fields.
            logger.info("provider refused %s %s: %d", method, url, response.status_code)
            raise ProviderRefused(f"{method} {url}: {response.status_code}")
        if response.status_code != 200:
            raise ProviderDown(f"{method} {url}: {response.status_code}")
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise ProviderDown(f"{method} {url}: not JSON") from exc
        if not isinstance(answer, dict):
            raise ProviderDown(f"{method} {url}: not a JSON object")
        return answer


def _parse_metadata(document: dict[str, Any], provider: SsoProvider) -> Metadata:
    # The document must name the issuer it was fetched for (OpenID Connect Discovery 4.3).
    if str(document.get("issuer", "")).rstrip("/") != provider.issuer:
        raise ProviderDown("discovery names another issuer")
    try:
        endpoints = {
            name: str(document[name])
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        }
    except KeyError as exc:
        raise ProviderDown(f"discovery lacks {exc}") from exc
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = ASYMMETRIC_ALGORITHMS & {str(name) for name in offered}
    if not algorithms:
        raise ProviderDown("the provider signs ID tokens with no asymmetric algorithm")
    userinfo = document.get("userinfo_endpoint")
    return Metadata(
        issuer=str(document["issuer"]),
        userinfo_endpoint=str(userinfo) if userinfo else None,
        algorithms=frozenset(algorithms),
        **endpoints,
    )


def _parse_keys(document: dict[str, Any]) -> "KeySet":
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    raw = document.get("keys")
    if not isinstance(raw, list):
        raise ProviderDown("the key set has no keys")
    # Public keys of asymmetric types only: a symmetric key in a JWKS is never trusted.
    public = [
        key
        for key in raw
        if isinstance(key, dict)
        and key.get("kty") in ASYMMETRIC_KEY_TYPES
        and key.get("use", "sig") == "sig"
    ]
    try:
        return KeySet.import_key_set({"keys": public})
    except (JoseError, ValueError, TypeError) as exc:
        raise ProviderDown("the key set is not usable") from exc


def open_oidc_client(config: SsoSettings = sso_settings) -> OidcClient:
    """One pooled HTTP client for all providers; the owner closes it with aclose()."""
    http = httpx2.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        timeout=httpx2.Timeout(config.SSO_TIMEOUT_SECONDS),
        follow_redirects=False,
    )
    return OidcClient(http, config)
