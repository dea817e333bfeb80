"""Every reusable dependency, each with the Annotated alias that handlers receive."""

import hashlib
import inspect
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, Query, Request, Response, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import OAuth2
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.api.state import AppState, app_state, get_app_state
from app.core.cache import Cache
from app.core.config import settings
from app.core.rate_limit import RateLimiter, RateLimitResult, client_network
from app.core.redis import RedisStore
from app.core.security import (
    SCOPE_USERS_ADMIN,
    SCOPES,
    AccessClaims,
    InvalidTokenError,
    client_gone,
    declare_scope,
    decode_access_token,
    entitled_scopes,
)
from app.crud.base import HasIntId, Repository
from app.crud.pagination import MAX_ID, PageParams, decode_cursor
from app.db.session import ReadSession, get_db, get_read_db, reads_in, session_scope
from app.models import User
from app.schemas.common import normalize_email
from app.services.errors import AppError, UserNotFound

ModelT = TypeVar("ModelT", bound=HasIntId)

# Function scope: the transaction commits or rolls back before the response is sent, so a
# client never sees a success that was not stored.
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
# Public reads of one statement: saves two database round trips per request on PostgreSQL.
ReadSessionDep = Annotated[ReadSession, Depends(get_read_db, scope="function")]

# Dependencies below that do no I/O are still `async def`: FastAPI runs a plain `def` in a
# worker thread, a hop that costs more than the work itself on every request.

AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_cache(request: Request) -> Cache:
    """Redis when REDIS_URL is set (and ITEM_CACHE_SECONDS > 0), else no cache."""
    return app_state(request).cache


CacheDep = Annotated[Cache, Depends(get_cache)]

SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def get_session_factory() -> SessionFactory:
    """Opens a session and its transaction for work that outlives the request, such as a
    background task."""
    return session_scope


SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=f"{settings.API_V1_STR}/auth/login", scopes=SCOPES, auto_error=False
)
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def path_id(noun: str) -> Any:
    """The Path() of a resource's id, as in UserId below."""
    return Path(ge=1, le=MAX_ID, description=f"The {noun}'s id.")


UserId = Annotated[int, path_id("user")]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _claims(token: str | None) -> AccessClaims:
    """The bearer token's claims, or 401."""
    if not token:
        raise _unauthorized("Not authenticated")
    try:
        claims = decode_access_token(token)
    except InvalidTokenError as exc:
        raise _unauthorized("Could not validate credentials") from exc
    if not claims.subject.isdigit() or not 1 <= int(claims.subject) <= MAX_ID:
        raise _unauthorized("Could not validate credentials")
    return claims


def _authorize(security_scopes: SecurityScopes, claims: AccessClaims, user: User | None) -> User:
    """The user the claims name, if still active and entitled to every scope the route declares."""
    # A raised token_version (logout-all, password change or reset) ends older access tokens.
    if user is None or not user.is_active or claims.version != user.token_version:
        raise _unauthorized("Could not validate credentials")
    granted = claims.scopes & entitled_scopes(is_superuser=user.is_superuser)
    if not set(security_scopes.scopes) <= granted:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="Not enough permissions",
            headers={"WWW-Authenticate": f'Bearer scope="{security_scopes.scope_str}"'},
        )
    return user


def token_user_id(token: str | None) -> int:
    """The id of the user a valid bearer token names (401 otherwise), without reading the user:
    for a dependency of a route that checks the user already."""
    return int(_claims(token).subject)


async def get_current_user(
    security_scopes: SecurityScopes, db: SessionDep, token: TokenDep
) -> User:
    """The active user the bearer token names, loaded fresh so a deactivation applies at once.

    The token must carry every scope the route declares, and the user must still be entitled to
    it, so demoting a superuser takes effect at once too.
    """
    claims = _claims(token)
    return _authorize(security_scopes, claims, await crud.user.get(db, int(claims.subject)))


async def get_caller(
    security_scopes: SecurityScopes, reads: ReadSessionDep, token: TokenDep
) -> User:
    """get_current_user's checks, with the user read in one statement outside any transaction
    (see ReadSession): a row to read, not a model to change. For read-only routes that serve
    from ReadSession too, so the request never holds two pooled connections at once; a write
    route checks its user in its own transaction (get_current_user)."""
    claims = _claims(token)
    return _authorize(security_scopes, claims, await crud.user.get(reads, int(claims.subject)))


async def get_writer(security_scopes: SecurityScopes, db: SessionDep, token: TokenDep) -> User:
    """get_current_user's checks, with the user read as a row on the request's own connection
    (see reads_in): for routes that write a resource, not the user, so they need no model
    object. One connection, as for any write; cheaper than loading a model."""
    claims = _claims(token)
    user = await crud.user.get(reads_in(db), int(claims.subject))
    return _authorize(security_scopes, claims, user)


# Logged in, with any scopes: enough for your own account.
CurrentUser = Annotated[User, Security(get_current_user)]
# The same, read-only (see get_caller): for routes that only need who is calling.
Caller = Annotated[User, Security(get_caller)]


def scoped_user(scope: str, description: str) -> Any:
    """A logged-in user whose token carries a resource's own scope, which every user may hold;
    the resource's router module declares it: `Writer = Annotated[User, scoped_user(...)]`."""
    declare_scope(scope, description)
    # The Authorize dialog's list was copied when the scheme was made.
    model = oauth2_scheme.model
    if isinstance(model, OAuth2) and model.flows.password is not None:
        model.flows.password.scopes[scope] = description
    # Writes read the user in their own transaction: a second connection for it would hold
    # SQLite's write lock (their transactions begin with it) against the write itself.
    return Security(get_writer, scopes=[scope])


async def get_current_superuser(
    user: Annotated[User, Security(get_current_user, scopes=[SCOPE_USERS_ADMIN])],
) -> User:
    # The scope already implies the flag; checked again so a change to scope rules cannot
    # quietly open the admin routes.
    if not user.is_superuser:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Superuser privileges required")
    return user


CurrentSuperuser = Annotated[User, Depends(get_current_superuser)]


@dataclass(frozen=True, slots=True)
class Ownership:
    """What an owned() dependency loads and who owns it; the authorization tests read it."""

    model: type[Any]
    owner_attr: str
    id_param: str


def owned(
    repository: Repository[ModelT],
    *,
    id_param: str,
    id_type: Any,
    caller: Any,
    not_found: type[AppError],
    owner_attr: str,
) -> Any:
    """A resolve-or-404 dependency, declared in the resource's router module: the row the path
    names (404 if none), if the `caller` (a user alias) owns it or is a superuser (403)."""
    noun = repository.model.__name__.lower()

    async def load(db: AsyncSession, user: User, **path: int) -> ModelT:
        row = await repository.get(db, path[id_param])
        if row is None:
            raise not_found
        if getattr(row, owner_attr) != user.id and not user.is_superuser:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"Not the owner of this {noun}")
        return row

    keyword = inspect.Parameter.KEYWORD_ONLY
    load.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("db", keyword, annotation=SessionDep),
            inspect.Parameter("user", keyword, annotation=caller),
            inspect.Parameter(id_param, keyword, annotation=id_type),
        ]
    )
    load.ownership = Ownership(repository.model, owner_attr, id_param)  # type: ignore[attr-defined]
    return Depends(load)


async def get_administered_user(db: SessionDep, _: CurrentSuperuser, user_id: UserId) -> User:
    """The user in the path, for a superuser (403 otherwise); 404 if there is none."""
    user = await crud.user.get(db, user_id)
    if user is None:
        raise UserNotFound
    return user


AdministeredUser = Annotated[User, Depends(get_administered_user)]


async def get_page_params(
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=64, description="The `next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    try:
        before_id = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        # The same 422 shape FastAPI gives for any other bad query parameter.
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "cursor"), "msg": "Invalid cursor"}]
        ) from exc
    return PageParams(limit=limit, before_id=before_id)


PageDep = Annotated[PageParams, Depends(get_page_params)]


async def get_rate_limiter(request: Request) -> RateLimiter:
    """The app's limiter: in Redis when REDIS_URL is set (memory while Redis fails), else memory."""
    return app_state(request).limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


def client_ip(request: Request) -> str:
    """The client's rate-limit identity: its address (behind a proxy, uvicorn sets it from a
    trusted X-Forwarded-For), an IPv4-mapped IPv6 address as its IPv4, and any other IPv6
    address as its network (RATE_LIMIT_IPV6_PREFIX), since one host holds a whole /64."""
    host = request.client.host if request.client else "unknown"
    return client_network(host, settings.RATE_LIMIT_IPV6_PREFIX)


def rate_limit_headers(result: RateLimitResult) -> dict[str, str]:
    """The IETF draft's RateLimit-* fields, so clients can pace themselves."""
    return {
        "RateLimit-Limit": str(result.limit),
        "RateLimit-Remaining": str(max(0, result.remaining)),
        "RateLimit-Reset": str(max(0, math.ceil(result.reset_after))),
    }


def too_many_requests(
    result: RateLimitResult, headers: dict[str, str] | None = None
) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail="Too many requests; try again later",
        headers={**(headers or {}), "Retry-After": str(result.retry_after)},
    )


def limit_per_ip(scope: str) -> Any:
    """A per-IP budget (RATE_LIMIT_DEFAULT) for routes outside the API, counted per scope, so
    a busy page or API client cannot fail a readiness probe from the same address."""

    async def limit(request: Request, limiter: RateLimiterDep) -> None:
        if settings.RATE_LIMIT_DEFAULT is None:
            return
        result = await limiter.hit(f"{scope}-ip:{client_ip(request)}", settings.RATE_LIMIT_DEFAULT)
        if not result.allowed:
            raise too_many_requests(result)

    return Depends(limit)


ProbeRateLimit = limit_per_ip("probe")


async def limit_auth_per_ip(request: Request, limiter: RateLimiterDep) -> None:
    """One budget per client IP shared by the auth routes (RATE_LIMIT_AUTH_PER_IP)."""
    if settings.RATE_LIMIT_AUTH_PER_IP is None:
        return
    result = await limiter.hit(f"auth-ip:{client_ip(request)}", settings.RATE_LIMIT_AUTH_PER_IP)
    if not result.allowed:
        raise too_many_requests(result)


AuthRateLimit = Depends(limit_auth_per_ip)


async def limit_api_per_ip(request: Request, response: Response) -> None:
    """The global budget per client IP for the whole API (RATE_LIMIT_DEFAULT). It runs on every
    API request, so it takes the app's limiter itself: a dependency for it would cost each
    request a solve (FastAPI solves even a cached dependency afresh)."""
    if settings.RATE_LIMIT_DEFAULT is None:
        return
    result = await app_state(request).limiter.hit(
        f"api-ip:{client_ip(request)}", settings.RATE_LIMIT_DEFAULT
    )
    headers = rate_limit_headers(result)
    if not result.allowed:
        raise too_many_requests(result, headers)
    response.headers.update(headers)


ApiRateLimit = Depends(limit_api_per_ip)


def email_digest(email: str) -> str:
    """What per-account limits count under: a hash of the normalized email, so the store holds
    no email addresses."""
    digest = hashlib.sha256(normalize_email(email).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """Password checks per account, known or not: a tight budget per (account, client network)
    (RATE_LIMIT_LOGIN_FAILURES) and a much higher one per account across all networks
    (RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT). An attacker exhausting the first locks out only
    their own network, not the owner; a distributed attack still meets the second.

    `attempt` counts before the password is checked, so parallel guesses cannot overrun the
    budgets; `succeeded` forgets the network's count, so in effect only failures add up there.
    """

    limiter: RateLimiter
    limit: str | None
    ceiling: str | None
    network: str

    @staticmethod
    def _key(email: str) -> str:
        return f"login-failures:{email_digest(email)}"

    def _network_key(self, email: str) -> str:
        return f"{self._key(email)}:{self.network}"

    async def attempt(self, email: str) -> None:
        """Raise 429 when the account has used a budget of password checks; a check refused
        for this network is not counted against the account's ceiling."""
        for key, limit in (
            (self._network_key(email), self.limit),
            (self._key(email), self.ceiling),
        ):
            if limit is not None:
                result = await self.limiter.hit(key, limit)
                if not result.allowed:
                    raise too_many_requests(result)

    async def succeeded(self, email: str) -> None:
        if self.limit is not None:
            # After a password hash, which may outlast the request's Redis budget: a fresh one.
            async with RedisStore.budget():
                await self.limiter.reset(self._network_key(email), self.limit)


async def get_login_throttle(request: Request, limiter: RateLimiterDep) -> LoginThrottle:
    host = request.client.host if request.client else "unknown"
    network = client_network(
        host, settings.RATE_LIMIT_IPV6_PREFIX, settings.RATE_LIMIT_LOGIN_IPV4_PREFIX
    )
    return LoginThrottle(
        limiter,
        settings.RATE_LIMIT_LOGIN_FAILURES,
        settings.RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT,
        network,
    )


LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]


async def watch_client(request: Request) -> AsyncIterator[None]:
    """Lets a password hash waiting its turn be skipped once its client has gone."""
    token = client_gone.set(request.is_disconnected)
    try:
        yield
    finally:
        client_gone.reset(token)


ClientWatch = Depends(watch_client)
