"""Single sign-on with OpenID Connect: providers, authorize, callback, code exchange, and the
caller's linked identities."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from app.api.api_v1.endpoints.auth import token_for
from app.api.deps import AuthRateLimit, ClientWatch, CurrentUser, SessionDep
from app.api.responses import errors
from app.clients.oidc import OidcClient, open_oidc_client
from app.core.config import settings
from app.core.sso import PROVIDER_NAME, SsoProvider, sso_settings
from app.crud.pagination import MAX_ID
from app.schemas import Token
from app.schemas.sso import IdentityRead, SsoExchange, SsoProviderRead
from app.services import sso
from app.services.sso import (
    AccountInactive,
    BadIdToken,
    CodeRefused,
    EmailMissing,
    IdentityNotFound,
    InvalidSsoCode,
    InvalidState,
    LastLogin,
    OtherIssuer,
    ProviderError,
    ProviderUnavailable,
    UnknownProvider,
    UnverifiedEmail,
)

PREFIX = "/auth/sso"
FLOW_COOKIE = "sso_flow"
CODE_COOKIE = "sso_code"


@asynccontextmanager
async def _close_client(app: FastAPI) -> AsyncIterator[None]:
    yield
    client: OidcClient | None = getattr(app.state, "oidc", None)
    if client is not None:
        await client.aclose()


router = APIRouter(prefix=PREFIX, tags=["auth"], dependencies=[ClientWatch], lifespan=_close_client)


async def get_oidc_client(request: Request) -> OidcClient:
    """The app's one OpenID Connect client, made on first use, closed with the app."""
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        client = request.app.state.oidc = open_oidc_client()
    return client


OidcClientDep = Annotated[OidcClient, Depends(get_oidc_client)]


async def get_provider(
    provider: Annotated[str, Path(pattern=PROVIDER_NAME, description="The provider's name.")],
) -> SsoProvider:
    return sso.provider_named(provider)


ProviderDep = Annotated[SsoProvider, Depends(get_provider)]
IdentityId = Annotated[int, Path(ge=1, le=MAX_ID, description="The identity's id.")]


def _cookie_path(suffix: str = "") -> str:
    return f"{settings.API_V1_STR}{PREFIX}{suffix}"


def _redirect_uri(request: Request, provider: SsoProvider) -> str:
    if sso_settings.SSO_REDIRECT_BASE_URL:
        base = sso_settings.SSO_REDIRECT_BASE_URL.rstrip("/")
        return f"{base}{_cookie_path(f'/{provider.name}/callback')}"
    return str(request.url_for("sso_callback", provider=provider.name))


@router.get("/providers")
async def read_sso_providers() -> list[SsoProviderRead]:
    """The providers you can log in with; empty when single sign-on is off."""
    return [
        SsoProviderRead(
            name=provider.name,
            title=provider.label,
            authorize_url=_cookie_path(f"/{provider.name}/authorize"),
        )
        for provider in sso_settings.enabled_providers
    ]


@router.get(
    "/{provider}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses=errors(UnknownProvider, ProviderUnavailable, 429),
    dependencies=[AuthRateLimit],
)
async def sso_authorize(
    request: Request, provider: ProviderDep, oidc: OidcClientDep
) -> RedirectResponse:
    """Start logging in: redirects to the provider, with this browser's state in a cookie."""
    url, flow = await sso.start(oidc, provider, redirect_uri=_redirect_uri(request, provider))
    response = RedirectResponse(url, status_code=status.HTTP_302_FOUND)
    response.set_cookie(
        FLOW_COOKIE,
        sso.seal(flow),
        max_age=sso_settings.SSO_STATE_SECONDS,
        path=_cookie_path(),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(
    "/{provider}/callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses=errors(
        InvalidState,
        OtherIssuer,
        ProviderError,
        CodeRefused,
        BadIdToken,
        EmailMissing,
        AccountInactive,
        UnknownProvider,
        UnverifiedEmail,
        ProviderUnavailable,
        429,
    ),
    dependencies=[AuthRateLimit],
)
async def sso_callback(
    request: Request,
    db: SessionDep,
    provider: ProviderDep,
    oidc: OidcClientDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    iss: Annotated[str | None, Query(max_length=512)] = None,
    flow: Annotated[str | None, Cookie(alias=FLOW_COOKIE, max_length=4096)] = None,
) -> RedirectResponse:
    """Where the provider sends the browser back: logs the user in and redirects to
    SSO_FINISH_URL with a single-use code in the fragment (and in an HttpOnly cookie)."""
    exchange_code = await sso.finish(
        db, oidc, provider, sso.unseal(flow), state=state, code=code, error=error, issuer=iss
    )
    response = RedirectResponse(
        f"{sso_settings.SSO_FINISH_URL}#sso_code={exchange_code}",
        status_code=status.HTTP_302_FOUND,
    )
    response.delete_cookie(FLOW_COOKIE, path=_cookie_path(), httponly=True, samesite="lax")
    response.set_cookie(
        CODE_COOKIE,
        exchange_code,
        max_age=sso_settings.SSO_CODE_SECONDS,
        path=_cookie_path("/exchange"),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/exchange", responses=errors(InvalidSsoCode, 413, 429), dependencies=[AuthRateLimit])
async def sso_exchange(
    db: SessionDep,
    response: Response,
    body: SsoExchange | None = None,
    cookie_code: Annotated[str | None, Cookie(alias=CODE_COOKIE, max_length=512)] = None,
) -> Token:
    """Trade the single-use code from the callback (body, else its cookie) for an access and
    refresh token, as a password login gives."""
    code = (body.code if body is not None else None) or cookie_code
    if not code:
        raise InvalidSsoCode
    grant = await sso.exchange(db, code=code)
    response.delete_cookie(
        CODE_COOKIE, path=_cookie_path("/exchange"), httponly=True, samesite="strict"
    )
    return token_for(grant)


@router.get("/identities", responses=errors(401))
async def read_identities(db: SessionDep, user: CurrentUser) -> list[IdentityRead]:
    """The provider identities linked to your account."""
    return [IdentityRead.model_validate(row) for row in await sso.identities(db, user)]


@router.delete(
    "/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(IdentityNotFound, LastLogin, 401),
)
async def delete_identity(db: SessionDep, user: CurrentUser, identity_id: IdentityId) -> None:
    """Unlink one of your identities; refused if it is your only way to log in."""
    await sso.unlink(db, user, identity_id)
