"""Recipe data access: create, read, update, remove, keyset pages and search."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.models import Recipe
from app.schemas import RecipeCreate, RecipeUpdate
from tests.utils.recipe import create_random_recipe
from tests.utils.user import create_random_user


async def test_create_and_get_recipe(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe_in = RecipeCreate.model_validate(
        {"label": "Soup", "source": "Gran", "url": "https://example.com/soup"}
    )
    recipe = await crud.recipe.create_with_submitter(db, obj_in=recipe_in, submitter_id=user.id)
    stored = await crud.recipe.get(db, recipe.id)
    assert stored is not None
    assert (stored.label, stored.source, stored.url) == ("Soup", "Gran", "https://example.com/soup")
    assert stored.submitter_id == user.id
    assert stored.created_at.tzinfo is not None


async def test_update_recipe_applies_only_set_fields(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    url = recipe.url
    updated = await crud.recipe.update(db, db_obj=recipe, obj_in=RecipeUpdate(label="New"))
    assert updated.label == "New"
    assert updated.url == url


async def test_remove_recipe(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    await crud.recipe.remove(db, db_obj=recipe)
    assert await crud.recipe.get(db, recipe.id) is None


async def test_deleting_a_user_cascades_to_their_recipes(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    await crud.user.remove(db, db_obj=user)
    db.expunge_all()
    assert await db.scalar(select(Recipe).where(Recipe.id == recipe.id)) is None


async def test_get_multi_by_submitter_is_keyset_paged(db: AsyncSession) -> None:
    user = await create_random_user(db)
    other = await create_random_user(db)
    mine = [await create_random_recipe(db, submitter_id=user.id) for _ in range(4)]
    await create_random_recipe(db, submitter_id=other.id)
    page = await crud.recipe.get_multi_by_submitter(db, submitter_id=user.id, limit=2)
    assert [r.id for r in page] == [mine[3].id, mine[2].id]
    rest = await crud.recipe.get_multi_by_submitter(
        db, submitter_id=user.id, before_id=mine[2].id, limit=10
    )
    assert [r.id for r in rest] == [mine[1].id, mine[0].id]


async def test_search_matches_substring_ignoring_case(db: AsyncSession) -> None:
    user = await create_random_user(db)
    hit = await create_random_recipe(db, submitter_id=user.id, label="Spicy Paneer_Tikka")
    await create_random_recipe(db, submitter_id=user.id, label="Paneer Tikka")
    found = await crud.recipe.search(db, keyword="paneer_", limit=10)
    assert [r.id for r in found] == [hit.id]
    backslash = await create_random_recipe(db, submitter_id=user.id, label="Odd \\ label")
    assert [r.id for r in await crud.recipe.search(db, keyword="\\", limit=10)] == [backslash.id]


async def test_get_by_url_is_per_submitter(db: AsyncSession) -> None:
    user = await create_random_user(db)
    other = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    found = await crud.recipe.get_by_url(db, submitter_id=user.id, url=recipe.url)
    assert found is not None
    assert found.id == recipe.id
    assert await crud.recipe.get_by_url(db, submitter_id=other.id, url=recipe.url) is None


async def test_search_is_keyset_paged(db: AsyncSession) -> None:
    user = await create_random_user(db)
    hits = [
        await create_random_recipe(db, submitter_id=user.id, label=f"Gnocchi {n}") for n in range(3)
    ]
    await create_random_recipe(db, submitter_id=user.id, label="Risotto")
    first = await crud.recipe.search(db, keyword="gnocchi", limit=2)
    assert [r.id for r in first] == [hits[2].id, hits[1].id]
    rest = await crud.recipe.search(db, keyword="gnocchi", before_id=hits[1].id, limit=2)
    assert [r.id for r in rest] == [hits[0].id]
