"""Every reusable dependency, each with the Annotated alias that handlers receive."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.api.pagination import MAX_ID, decode_cursor
from app.clients.ideas import IdeasClient
from app.core.cache import Cache, NoCache
from app.core.config import settings
from app.core.security import InvalidTokenError, decode_access_token
from app.db.session import get_db
from app.models import Recipe, User

SessionDep = Annotated[AsyncSession, Depends(get_db)]

_NO_CACHE = NoCache()


def get_redis(request: Request) -> Redis | None:
    """The app's Redis client, made in the lifespan when REDIS_URL is set."""
    return getattr(request.app.state, "redis", None)


def get_cache(request: Request) -> Cache:
    cache: Cache = getattr(request.app.state, "cache", _NO_CACHE)
    return cache


RedisDep = Annotated[Redis | None, Depends(get_redis)]
CacheDep = Annotated[Cache, Depends(get_cache)]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{settings.API_V1_STR}/auth/login", auto_error=False)
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]

RecipeId = Annotated[int, Path(ge=1, le=MAX_ID, description="The recipe's id.")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_current_user(db: SessionDep, token: TokenDep) -> User:
    """The active user the bearer token names, loaded fresh so a deactivation applies at once."""
    if not token:
        raise _unauthorized("Not authenticated")
    try:
        subject = decode_access_token(token)
    except InvalidTokenError as exc:
        raise _unauthorized("Could not validate credentials") from exc
    if not subject.isdigit() or not 1 <= int(subject) <= MAX_ID:
        raise _unauthorized("Could not validate credentials")
    user = await crud.user.get(db, int(subject))
    if user is None or not user.is_active:
        raise _unauthorized("Could not validate credentials")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Superuser privileges required")
    return user


CurrentSuperuser = Annotated[User, Depends(get_current_superuser)]


async def get_owned_recipe(db: SessionDep, user: CurrentUser, recipe_id: RecipeId) -> Recipe:
    """The recipe in the path, if it exists (404) and the caller owns it or is a superuser (403)."""
    recipe = await crud.recipe.get(db, recipe_id)
    if recipe is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Recipe not found")
    if recipe.submitter_id != user.id and not user.is_superuser:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Not the owner of this recipe")
    return recipe


OwnedRecipe = Annotated[Recipe, Depends(get_owned_recipe)]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    before_id: int | None


def get_page_params(
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


def get_ideas_client(request: Request) -> IdeasClient:
    """The client the lifespan opened. Tests and users swap it with app.dependency_overrides."""
    client: IdeasClient = request.app.state.ideas_client
    return client


IdeasClientDep = Annotated[IdeasClient, Depends(get_ideas_client)]
