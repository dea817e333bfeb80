"""User data access: lookup by normalized email, filtered keyset search."""

from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.crud.pagination import PageParams
from tests.utils.user import create_random_user
from tests.utils.utils import random_email


async def test_get_by_email_finds_the_stored_spelling(db: AsyncSession) -> None:
    user = await create_random_user(db)
    found = await crud.user.get_by_email(db, email=user.email)
    assert found is not None
    assert found.id == user.id
    assert await crud.user.get_by_email(db, email=random_email()) is None
    assert await crud.user.get_by_email(db, email="nul\x00@example.com") is None


async def test_paginate_pages_newest_first(db: AsyncSession) -> None:
    users = [await create_random_user(db) for _ in range(3)]
    first = await crud.user.paginate(db, PageParams(limit=2))
    assert [u.id for u in first.items] == [users[2].id, users[1].id]
    rest = await crud.user.paginate(db, PageParams(limit=1, before_id=users[1].id))
    assert [u.id for u in rest.items] == [users[0].id]


async def test_search_filters_by_email_part_and_status(db: AsyncSession) -> None:
    active = await create_random_user(db, email="pat_1@example.com")
    inactive = await create_random_user(db, email="pat_2@example.com", is_active=False)
    await create_random_user(db, email="patx1@example.com")
    found = await crud.user.search(db, PageParams(), email="PAT_")
    assert [u.id for u in found.items] == [inactive.id, active.id]
    found = await crud.user.search(db, PageParams(), email="pat_", is_active=True)
    assert [u.id for u in found.items] == [active.id]
