"""Recipes: public reads, writes by their submitter (or a superuser)."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AfterValidator

from app import crud
from app.api.cache_policy import public_cache
from app.api.deps import (
    CacheDep,
    OwnedRecipe,
    PageDep,
    ReadSessionDep,
    RecipeId,
    RecipeWriter,
    SessionDep,
)
from app.api.responses import errors
from app.core.config import settings
from app.crud.pagination import MAX_ID, Page, PageParams
from app.db.session import commit_early
from app.models import Recipe
from app.schemas import RecipeCreate, RecipePage, RecipeRead, RecipeSearchResults, RecipeUpdate
from app.schemas.common import storable
from app.services.errors import RecipeNotFound

router = APIRouter(prefix="/recipes", tags=["recipes"])
# Anonymous reads are the same for everyone, so shared caches may keep them.
public = public_cache(lambda: settings.PUBLIC_CACHE_SECONDS)


def _cache_key(recipe_id: int) -> str:
    return f"recipe:{recipe_id}"


@router.get("", response_model=RecipePage)
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
        return await crud.recipe.paginate(db, page)
    return await crud.recipe.paginate_by_submitter(db, page, submitter_id=submitter_id)


@router.get("/search")
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
    found = await crud.recipe.search(db, PageParams(limit=max_results), keyword=keyword)
    return RecipeSearchResults(results=[RecipeRead.model_validate(r) for r in found.items])


@router.get("/{recipe_id}", responses=errors(RecipeNotFound))
@public
async def read_recipe(db: ReadSessionDep, cache: CacheDep, recipe_id: RecipeId) -> RecipeRead:
    """One recipe by id."""
    key = _cache_key(recipe_id)
    if (cached := await cache.get(key)) is not None:
        return RecipeRead.model_validate_json(cached)
    recipe = await crud.recipe.get(db, recipe_id)
    if recipe is None:
        raise RecipeNotFound
    recipe_out = RecipeRead.model_validate(recipe)
    await cache.set(key, recipe_out.model_dump_json().encode(), settings.RECIPE_CACHE_SECONDS)
    return recipe_out


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(401, 403, 413))
async def create_recipe(db: SessionDep, user: RecipeWriter, recipe_in: RecipeCreate) -> RecipeRead:
    """Submit a recipe; the caller is its submitter."""
    recipe = await crud.recipe.add(db, Recipe(**recipe_in.model_dump(), submitter_id=user.id))
    return RecipeRead.model_validate(recipe)


# recipe_id is read by the OwnedRecipe dependency, which ruff's FAST003 cannot see.
@router.patch(
    "/{recipe_id}",  # noqa: FAST003
    responses=errors(401, 403, RecipeNotFound, 413),
)
async def update_recipe(
    db: SessionDep, cache: CacheDep, recipe: OwnedRecipe, recipe_in: RecipeUpdate
) -> RecipeRead:
    """Change some fields of a recipe you submitted."""
    updated = await crud.recipe.update(db, recipe, recipe_in.model_dump(exclude_unset=True))
    if updated is None:
        raise RecipeNotFound  # deleted meanwhile
    # Commit first: a read between the delete and a later commit would cache the old row again.
    await commit_early(db)
    await cache.delete(_cache_key(updated.id))
    return RecipeRead.model_validate(updated)


@router.delete(
    "/{recipe_id}",  # noqa: FAST003
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, RecipeNotFound),
)
async def delete_recipe(db: SessionDep, cache: CacheDep, recipe: OwnedRecipe) -> None:
    """Delete a recipe you submitted."""
    if not await crud.recipe.remove(db, recipe):
        raise RecipeNotFound  # a concurrent delete won
    await commit_early(db)
    await cache.delete(_cache_key(recipe.id))
