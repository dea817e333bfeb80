"""Recipes: anyone reads and searches; logged-in users submit; submitters (or superusers) edit."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AfterValidator

from app.api.cache_policy import public_cache
from app.api.deps import (
    CacheDep,
    Caller,
    PageDep,
    ReadSessionDep,
    SessionDep,
    owned,
    path_id,
    scoped_user,
)
from app.api.idempotency import idempotent
from app.api.responses import errors
from app.core.config import settings
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import MAX_ID, Page, PageParams
from app.db.session import commit_early
from app.models.recipe import Recipe
from app.models.user import User
from app.schemas.common import storable
from app.schemas.recipe import (
    RecipeCreate,
    RecipePage,
    RecipeRead,
    RecipeSearchResults,
    RecipeUpdate,
)
from app.services.errors import IdempotencyKeyInFlight, NotFound


class RecipeNotFound(NotFound):
    message = "Recipe not found"


RecipeId = Annotated[int, path_id("recipe")]
# Logged in with a token that may write recipes.
RecipeWriter = Annotated[
    User, scoped_user("recipes:write", "Submit, edit and delete your recipes.")
]
OwnedRecipe = Annotated[
    Recipe,
    owned(
        recipes,
        id_param="recipe_id",
        id_type=RecipeId,
        caller=RecipeWriter,
        not_found=RecipeNotFound,
        owner_attr="submitter_id",
    ),
]

recipes_router = APIRouter(prefix="/recipes", tags=["recipes"])
# Anonymous reads are the same for everyone, so shared caches may keep them.
public = public_cache(lambda: settings.PUBLIC_CACHE_SECONDS)


def _cache_key(recipe_id: int) -> str:
    return f"recipe:{recipe_id}"


@recipes_router.get("", response_model=RecipePage)
@public
async def read_recipes(
    db: ReadSessionDep,
    page: PageDep,
    submitter_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this user's recipes.")
    ] = None,
) -> Page[Recipe]:
    """Recipes, newest first, one cursor page at a time."""
    if submitter_id is None:
        return await recipes.paginate(db, page)
    return await recipes.paginate_by_submitter(db, page, submitter_id=submitter_id)


@recipes_router.get("/search")
@public
async def search_recipes(
    db: ReadSessionDep,
    keyword: Annotated[
        str,
        Query(min_length=1, max_length=100, description="Case-insensitive, in the label."),
        AfterValidator(storable),
    ],
    max_results: Annotated[int, Query(ge=1, le=100)] = 10,
) -> RecipeSearchResults:
    """Recipes whose label contains the keyword, newest first."""
    found = await recipes.search(db, PageParams(limit=max_results), keyword=keyword)
    return RecipeSearchResults(results=[RecipeRead.model_validate(r) for r in found.items])


@recipes_router.get("/{recipe_id}", response_model=RecipeRead, responses=errors(RecipeNotFound))
@public
async def read_recipe(
    db: ReadSessionDep, cache: CacheDep, recipe_id: RecipeId, response: Response
) -> Response:
    """One recipe by id."""
    key = _cache_key(recipe_id)
    # The cache keeps the answer's body as sent, so a hit is sent as it is: no parsing and
    # validating it again, and the same bytes (and ETag) as the read that stored it.
    body = await cache.get(key)
    if body is None:
        recipe = await recipes.get(db, recipe_id)
        if recipe is None:
            raise RecipeNotFound
        body = RecipeRead.model_validate(recipe).model_dump_json().encode()
        await cache.set(key, body, settings.ITEM_CACHE_SECONDS)
    answer = Response(body, media_type="application/json")
    # Headers the dependencies set (RateLimit-*), which FastAPI adds only to answers it makes.
    answer.headers.raw.extend(response.headers.raw)
    return answer


@recipes_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=errors(401, 403, IdempotencyKeyInFlight, 413),
)
@idempotent
async def create_recipe(db: SessionDep, user: RecipeWriter, recipe_in: RecipeCreate) -> RecipeRead:
    """Submit a recipe; the caller is its submitter. With an Idempotency-Key, a retry gets the
    first answer instead of a second recipe."""
    recipe = await recipes.insert(db, {**recipe_in.model_dump(), "submitter_id": user.id})
    return RecipeRead.model_validate(recipe)


# recipe_id is read by the OwnedRecipe dependency, which ruff's FAST003 cannot see.
@recipes_router.patch(
    "/{recipe_id}",  # noqa: FAST003
    responses=errors(401, 403, RecipeNotFound, 413),
)
async def update_recipe(
    db: SessionDep, cache: CacheDep, recipe: OwnedRecipe, recipe_in: RecipeUpdate
) -> RecipeRead:
    """Change some fields of a recipe you submitted."""
    updated = await recipes.update(db, recipe, recipe_in.model_dump(exclude_unset=True))
    if updated is None:
        raise RecipeNotFound  # deleted meanwhile
    # Commit first: a read between the delete and a later commit would cache the old row again.
    await commit_early(db)
    await cache.delete(_cache_key(updated.id))
    return RecipeRead.model_validate(updated)


@recipes_router.delete(
    "/{recipe_id}",  # noqa: FAST003
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, RecipeNotFound),
)
async def delete_recipe(db: SessionDep, cache: CacheDep, recipe: OwnedRecipe) -> None:
    """Delete a recipe you submitted."""
    if not await recipes.remove(db, recipe):
        raise RecipeNotFound  # a concurrent delete won
    await commit_early(db)
    await cache.delete(_cache_key(recipe.id))


my_router = APIRouter(prefix="/users/me", tags=["users"])


@my_router.get("/recipes", responses=errors(401), response_model=RecipePage)
async def read_my_recipes(db: ReadSessionDep, user: Caller, page: PageDep) -> Page[Recipe]:
    """The recipes you submitted, newest first."""
    # Two reads in turn, each on a pooled connection only for its statement: no transaction,
    # and never two connections held at once.
    return await recipes.paginate_by_submitter(db, page, submitter_id=user.id)


router = APIRouter()
router.include_router(recipes_router)
router.include_router(my_router)
