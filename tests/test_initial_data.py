"""The seeding entry point, run twice against a fresh migrated database."""

import asyncio

import pytest
from sqlalchemy import func, select

from app import initial_data
from app.crud.crud_recipe import SEED_RECIPES
from app.db.session import make_engine
from app.models import User
from app.models.recipe import Recipe
from tests.utils.db import migrate


async def test_initial_data_main_seeds_once(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Alembic's env.py runs its own event loop, so it cannot run on this one.
    await asyncio.to_thread(migrate, fresh_database_url)
    for _ in range(2):
        engine = make_engine(fresh_database_url)
        monkeypatch.setattr(initial_data, "engine", engine)
        await initial_data.main()

    check = make_engine(fresh_database_url)
    try:
        async with check.connect() as conn:
            recipes = await conn.scalar(select(func.count()).select_from(Recipe))
            users = await conn.scalar(select(func.count()).select_from(User))
    finally:
        await check.dispose()
    assert (users, recipes) == (1, len(SEED_RECIPES))
