"""Single sign-on with OpenID Connect: the browser-bound flow, finding or creating the user,
exchange codes, identities. No HTTP framework here.

The flow: `start` makes state, nonce and a PKCE verifier, sealed into a short-lived signed value
the API keeps in an HttpOnly cookie; `finish` checks the callback's state against it, trades the
code (with the verifier) for an ID token, validates it, finds or creates the user and returns a
single-use exchange code; `exchange` trades that code for this service's own tokens.
"""

import logging
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.clients.oidc import InvalidIdToken, OidcClient, ProviderDown, ProviderRefused
from app.core.config import settings
from app.core.security import entitled_scopes, scope_string
from app.core.sso import SsoProvider, sso_settings
from app.crud import crud_identity
from app.models import User
from app.models.identity import Identity
from app.schemas.sso import SsoProfile
from app.services import user as users
from app.services.auth import Grant
from app.services.errors import AppError, BadRequest, Conflict, NotFound

logger = logging.getLogger(__name__)

# Stored in place of a hash for accounts made by single sign-on: no password ever matches it
# (it is no hash format), and a password reset replaces it with a real one.
UNUSABLE_PASSWORD = "!sso"
STATE_AUDIENCE = f"{settings.project_slug}:sso-state"
STATE_ALGORITHM = "HS256"


class UnknownProvider(NotFound):
    message = "Unknown or disabled sign-in provider"


class InvalidState(BadRequest):
    message = "Sign-in state missing, expired or not from this browser: start again"


class ProviderError(BadRequest):
    message = "The provider did not sign you in"


class OtherIssuer(BadRequest):
    message = "The answer came from another issuer than the one asked: start again"


class CodeRefused(BadRequest):
    message = "The provider refused the authorization code (used or expired): start again"


class BadIdToken(BadRequest):
    message = "The provider's ID token is invalid"


class EmailMissing(BadRequest):
    message = "The provider gave no usable email address"


class UnverifiedEmail(Conflict):
    message = (
        "An account with this email exists, and the provider has not verified the email: "
        "log in with your password instead"
    )


class AccountInactive(AppError):
    status_code = 403
    message = "This account is deactivated"


class ProviderUnavailable(AppError):
    status_code = 503
    message = "The sign-in provider is unavailable; try again later"
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "5"}


class InvalidSsoCode(BadRequest):
    message = "Invalid, used or expired sign-in code"


class IdentityNotFound(NotFound):
    message = "Identity not found"


class LastLogin(Conflict):
    message = "This is your only way to log in: set a password before unlinking it"


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in in progress, bound to the browser that started it."""

    provider: str
    state: str
    nonce: str
    verifier: str
    redirect_uri: str


def provider_named(name: str) -> SsoProvider:
    provider = sso_settings.provider(name)
    if provider is None:
        raise UnknownProvider
    return provider


def has_password(user: User) -> bool:
    return user.hashed_password != UNUSABLE_PASSWORD


def seal(flow: Flow) -> str:
    """The flow as a signed, expiring value for the browser's cookie."""
    now = datetime.now(UTC)
    payload = asdict(flow) | {
        "aud": STATE_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=sso_settings.SSO_STATE_SECONDS),
    }
    return jwt.encode(payload, settings.secret_key, algorithm=STATE_ALGORITHM)


def unseal(value: str | None) -> Flow:
    if not value:
        raise InvalidState
    try:
        payload = jwt.decode(
            value, settings.secret_key, algorithms=[STATE_ALGORITHM], audience=STATE_AUDIENCE
        )
        return Flow(**{name: str(payload[name]) for name in Flow.__slots__})
    except (jwt.PyJWTError, KeyError) as exc:
        raise InvalidState from exc


async def start(oidc: OidcClient, provider: SsoProvider, *, redirect_uri: str) -> tuple[str, Flow]:
    """The provider's authorization URL, and the flow to keep in the browser until it returns."""
    flow = Flow(
        provider=provider.name,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        # RFC 7636: 43 to 128 characters; 64 random bytes make 86.
        verifier=secrets.token_urlsafe(64),
        redirect_uri=redirect_uri,
    )
    try:
        metadata = await oidc.metadata(provider)
    except (ProviderDown, ProviderRefused) as exc:
        logger.warning("provider %s: discovery failed: %s", provider.name, exc)
        raise ProviderUnavailable from exc
    # Imported on first use: authlib's OAuth 2 package loads for a while, and most starts
    # never see an SSO sign-in.
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    query = urlencode(
        {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(provider.scopes),
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": create_s256_code_challenge(flow.verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in metadata.authorization_endpoint else "?"
    return f"{metadata.authorization_endpoint}{separator}{query}", flow


async def _claims(oidc: OidcClient, provider: SsoProvider, flow: Flow, code: str) -> dict[str, Any]:
    """The validated ID token's claims, completed from userinfo when it lacks the email."""
    try:
        tokens = await oidc.exchange_code(
            provider, code=code, redirect_uri=flow.redirect_uri, verifier=flow.verifier
        )
        claims = await oidc.verify_id_token(provider, tokens["id_token"], nonce=flow.nonce)
        access_token = tokens.get("access_token")
        if "email" not in claims and isinstance(access_token, str):
            info = await oidc.userinfo(provider, access_token)
            # Userinfo about another subject is ignored (OpenID Connect Core 5.3.2).
            if info.get("sub") == claims["sub"]:
                claims = info | claims
    except ProviderRefused as exc:
        logger.info("provider %s refused a code: %s", provider.name, exc)
        raise CodeRefused from exc
    except ProviderDown as exc:
        logger.warning("provider %s unavailable: %s", provider.name, exc)
        raise ProviderUnavailable from exc
    except InvalidIdToken as exc:
        logger.info("provider %s: invalid ID token: %s", provider.name, exc)
        raise BadIdToken(f"{BadIdToken.message}: {exc}") from exc
    return claims


async def finish(
    db: AsyncSession,
    oidc: OidcClient,
    provider: SsoProvider,
    flow: Flow,
    *,
    state: str | None,
    code: str | None,
    error: str | None = None,
    issuer: str | None = None,
) -> str:
    """Check the callback against the browser's flow, log the user in, and return a
    single-use exchange code. Every provider call comes before the first query, so no
    connection is held while the provider answers."""
    if (
        flow.provider != provider.name
        or state is None
        or not secrets.compare_digest(state.encode(), flow.state.encode())
    ):
        raise InvalidState
    # RFC 9207: a provider that names itself must be the one this flow went to (mix-up defence).
    if issuer is not None and issuer.rstrip("/") != provider.issuer:
        raise OtherIssuer
    if error is not None or not code:
        # The provider's error code (access_denied, ...) is a short token: safe to echo.
        reason = (error or "no code")[:64]
        raise ProviderError(f"{ProviderError.message}: {reason}")
    claims = await _claims(oidc, provider, flow, code)
    user = await _find_or_create(db, provider, SsoProfile.from_claims(claims))
    return await crud_identity.sso_code.create_for_user(
        db, user_id=user.id, seconds=sso_settings.SSO_CODE_SECONDS
    )


async def _find_or_create(db: AsyncSession, provider: SsoProvider, profile: SsoProfile) -> User:
    """The user this identity belongs to; a new identity links to the account with the same
    email only when the provider verified the email, else a new account is made."""
    identity = await crud_identity.identity.get_by_subject(
        db, provider=provider.name, subject=profile.subject
    )
    if identity is not None:
        linked = await crud.user.get(db, identity.user_id)
        if linked is None or not linked.is_active:
            raise AccountInactive
        return linked
    if profile.email is None:
        raise EmailMissing
    user = await crud.user.get_by_email(db, email=profile.email)
    if user is not None:
        if not profile.email_verified:
            raise UnverifiedEmail
        if not user.is_active:
            raise AccountInactive
    else:
        user = await crud.user.add(
            db,
            User(
                email=profile.email,
                first_name=profile.first_name,
                surname=profile.surname,
                hashed_password=UNUSABLE_PASSWORD,
            ),
        )
    await crud_identity.identity.add(
        db,
        Identity(
            user_id=user.id, provider=provider.name, subject=profile.subject, email=profile.email
        ),
    )
    logger.info("user %d linked to an identity at %s", user.id, provider.name)
    return user


async def exchange(db: AsyncSession, *, code: str) -> Grant:
    """Spend an exchange code for a login with every scope the account holds; 400 if the code
    is unknown, used, expired or its account deactivated meanwhile."""
    user_id = await crud_identity.sso_code.claim(db, code=code)
    if user_id is None:
        raise InvalidSsoCode
    # Locked until the commit, as password login does: a logout-all racing this waits.
    user = await crud.user.lock(db, user_id)
    if user is None or not user.is_active:
        raise InvalidSsoCode
    scope = scope_string(entitled_scopes(is_superuser=user.is_superuser))
    await crud.refresh_token.purge(db, user_id=user.id)
    raw, _ = await crud.refresh_token.create_for_user(db, user_id=user.id, scope=scope)
    return Grant(user.id, scope, raw, user.token_version)


async def identities(db: AsyncSession, user: User) -> Sequence[Identity]:
    return await crud_identity.identity.get_multi_by_user(db, user_id=user.id)


async def unlink(db: AsyncSession, user: User, identity_id: int) -> None:
    """Remove one of the user's identities; 409 if it is their only way to log in."""
    locked = await users.lock(db, user)
    linked = await crud_identity.identity.get_multi_by_user(db, user_id=locked.id)
    target = next((identity for identity in linked if identity.id == identity_id), None)
    if target is None:
        raise IdentityNotFound
    if len(linked) == 1 and not has_password(locked):
        raise LastLogin
    await crud_identity.identity.remove(db, target)
