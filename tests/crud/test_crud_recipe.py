"""Recipe data access, and through it the repository base: add, get, update, remove, keyset
pages and search."""

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import PageParams, decode_cursor
from app.models.recipe import Recipe
from tests.utils.recipe import create_random_recipe
from tests.utils.user import create_random_user


async def test_create_and_get_recipe(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await recipes.add(
        db,
        Recipe(label="Soup", source="Gran", url="https://example.com/soup", submitter_id=user.id),
    )
    assert recipe.id is not None  # flushed: the row exists in the transaction
    stored = await recipes.get(db, recipe.id)
    assert stored is not None
    assert (stored.label, stored.source, stored.url) == ("Soup", "Gran", "https://example.com/soup")
    assert stored.submitter_id == user.id
    assert stored.created_at.tzinfo is not None


async def test_insert_gives_the_stored_row_with_its_defaults(db: AsyncSession) -> None:
    user = await create_random_user(db)
    values = {"label": "Stew", "source": "Gran", "url": "https://example.com/stew"}
    row: Any = await recipes.insert(db, {**values, "submitter_id": user.id})
    assert not isinstance(row, Recipe)  # a row to read; nothing for the session to track
    assert row.created_at.tzinfo is not None
    assert row.updated_at >= row.created_at
    stored = await db.get(Recipe, row.id)  # in the request's transaction, not yet committed
    assert stored is not None
    assert (stored.label, stored.url, stored.submitter_id) == (
        "Stew",
        "https://example.com/stew",
        user.id,
    )
    assert stored.created_at == row.created_at


async def test_update_recipe_applies_only_set_fields(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    url = recipe.url
    updated = await recipes.update(db, recipe, {"label": "New"})
    assert updated is not None
    assert updated.label == "New"
    assert updated.url == url


async def test_update_of_a_row_deleted_meanwhile_is_none(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    # Another request's delete, which this session's loaded object does not know about.
    await db.execute(
        delete(Recipe).where(Recipe.id == recipe.id).execution_options(synchronize_session=False)
    )
    assert await recipes.update(db, recipe, {"label": "New"}) is None


async def test_remove_recipe_once(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    assert await recipes.remove(db, recipe) is True
    assert await recipes.get(db, recipe.id) is None
    # A second delete of the same row, as a racing request's, matches nothing.
    assert await recipes.remove(db, recipe) is False


async def test_deleting_a_user_cascades_to_their_recipes(db: AsyncSession) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    await crud.user.remove(db, user)
    db.expunge_all()
    assert await db.scalar(select(Recipe).where(Recipe.id == recipe.id)) is None


async def test_paginate_by_submitter_is_keyset_paged(db: AsyncSession) -> None:
    user = await create_random_user(db)
    other = await create_random_user(db)
    mine = [await create_random_recipe(db, submitter_id=user.id) for _ in range(4)]
    await create_random_recipe(db, submitter_id=other.id)
    page = await recipes.paginate_by_submitter(db, PageParams(limit=2), submitter_id=user.id)
    assert [r.id for r in page.items] == [mine[3].id, mine[2].id]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == mine[2].id
    rest = await recipes.paginate_by_submitter(
        db, PageParams(limit=2, before_id=mine[2].id), submitter_id=user.id
    )
    assert [r.id for r in rest.items] == [mine[1].id, mine[0].id]
    # Exactly a page left: no cursor to an empty one.
    assert rest.next_cursor is None


async def test_search_matches_substring_ignoring_case(db: AsyncSession) -> None:
    user = await create_random_user(db)
    hit = await create_random_recipe(db, submitter_id=user.id, label="Spicy Paneer_Tikka")
    await create_random_recipe(db, submitter_id=user.id, label="Paneer Tikka")
    found = await recipes.search(db, PageParams(), keyword="paneer_")
    assert [r.id for r in found.items] == [hit.id]
    backslash = await create_random_recipe(db, submitter_id=user.id, label="Odd \\ label")
    found = await recipes.search(db, PageParams(), keyword="\\")
    assert [r.id for r in found.items] == [backslash.id]


async def test_search_ignores_case_beyond_ascii(db: AsyncSession) -> None:
    user = await create_random_user(db)
    creme = await create_random_recipe(db, submitter_id=user.id, label="Crème brûlée")
    borsch = await create_random_recipe(db, submitter_id=user.id, label="Украинский борщ")
    await create_random_recipe(db, submitter_id=user.id, label="Creme of nothing")
    for keyword, expected in [("CRÈME", creme), ("BRÛLÉE", creme), ("борщ", borsch)]:
        found = await recipes.search(db, PageParams(), keyword=keyword)
        assert [r.id for r in found.items] == [expected.id], keyword
    # A LIKE wildcard among the folded characters is still a literal.
    assert (await recipes.search(db, PageParams(), keyword="CR_ME")).items == []


async def test_get_by_url_is_per_submitter(db: AsyncSession) -> None:
    user = await create_random_user(db)
    other = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    found = await recipes.get_by_url(db, submitter_id=user.id, url=recipe.url)
    assert found is not None
    assert found.id == recipe.id
    assert await recipes.get_by_url(db, submitter_id=other.id, url=recipe.url) is None


async def test_search_is_keyset_paged(db: AsyncSession) -> None:
    user = await create_random_user(db)
    hits = [
        await create_random_recipe(db, submitter_id=user.id, label=f"Gnocchi {n}") for n in range(3)
    ]
    await create_random_recipe(db, submitter_id=user.id, label="Risotto")
    first = await recipes.search(db, PageParams(limit=2), keyword="gnocchi")
    assert [r.id for r in first.items] == [hits[2].id, hits[1].id]
    rest = await recipes.search(db, PageParams(limit=2, before_id=hits[1].id), keyword="gnocchi")
    assert [r.id for r in rest.items] == [hits[0].id]
