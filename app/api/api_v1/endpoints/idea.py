"""Recipe ideas from other services, and importing one as a recipe.

An optional slice: its client, settings group, schemas and tests go with it (see the README's
"Trim what you don't need").
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status

from app import crud
from app.api.api_v1.endpoints.recipe import RecipeWriter
from app.api.deps import CurrentUser, SessionDep
from app.api.responses import errors
from app.api.state import AppState
from app.clients.ideas import IdeasClient, IdeasError, open_ideas_client
from app.core.cache import RedisCache
from app.core.config import settings
from app.crud.crud_recipe import recipe as recipes
from app.db.session import commit_early
from app.schemas.idea import IdeaFeed, IdeaImport
from app.schemas.recipe import RecipeCreate, RecipeRead


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Opens the ideas client for the app's life. FastAPI runs a router's lifespan inside the
    app's, so the app's Redis client (for the shared cache) is already open."""
    state: AppState = app.state.services
    cache = RedisCache(state.redis, "ideas:") if state.redis is not None else None
    async with open_ideas_client(settings, cache=cache) as ideas:
        app.state.ideas = ideas
        try:
            yield
        finally:
            del app.state.ideas


async def get_ideas_client(request: Request) -> IdeasClient:
    """The client the lifespan opened. Tests and users swap it with app.dependency_overrides."""
    ideas: IdeasClient | None = getattr(request.app.state, "ideas", None)
    if ideas is None:
        raise RuntimeError("the ideas client is opened by the app's lifespan")
    return ideas


IdeasClientDep = Annotated[IdeasClient, Depends(get_ideas_client)]

router = APIRouter(prefix="/recipes/ideas", tags=["ideas"], lifespan=lifespan)

LABEL_MAX_LENGTH = 256
UNAVAILABLE = "Recipe ideas are unavailable: no source answered; retry later"
DUPLICATE = "You already have a recipe with this url"


@router.get("", responses=errors(401, 502))
async def read_ideas(
    db: SessionDep,
    _: CurrentUser,
    ideas: IdeasClientDep,
    limit: Annotated[
        int, Query(ge=1, le=settings.IDEAS_LIMIT_MAX, description="Ideas per source.")
    ] = 5,
) -> IdeaFeed:
    """Top recipe ideas per source, fetched concurrently; sources that fail are in `errors`."""
    # The caller's row is loaded; the upstream may take its whole budget: hold no connection.
    await commit_early(db)
    feed = await ideas.get_ideas(limit)
    if not feed.ideas:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=UNAVAILABLE)
    return feed


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    responses=errors(401, 403, 404, 409, 502),
)
async def import_idea(
    db: SessionDep, user: RecipeWriter, ideas: IdeasClientDep, idea_in: IdeaImport
) -> RecipeRead:
    """Save one of the current ideas as your recipe: its title is the label, its subreddit the
    source."""
    url = str(idea_in.url)
    if await recipes.get_by_url(db, submitter_id=user.id, url=url) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=DUPLICATE)
    # A write request's transaction holds SQLite's write lock (and on PostgreSQL a pooled
    # connection) from its first query; none is held across the upstream's budget.
    await commit_early(db)
    try:
        found = await ideas.find(url)
    except IdeasError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=UNAVAILABLE) from exc
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No current idea has this url")
    subreddit, idea = found
    # Checked again under the caller's row lock (SQLite: the write lock): a concurrent import
    # of this url may have added it while this one waited on the upstream.
    await crud.user.lock(db, user.id)
    if await recipes.get_by_url(db, submitter_id=user.id, url=url) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=DUPLICATE)
    recipe_in = RecipeCreate.model_validate(
        {"label": idea.title[:LABEL_MAX_LENGTH], "source": f"r/{subreddit}", "url": url}
    )
    recipe = await recipes.insert(db, {**recipe_in.model_dump(), "submitter_id": user.id})
    return RecipeRead.model_validate(recipe)
