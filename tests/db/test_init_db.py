"""First-data seeding: the superuser and the classic recipes, once."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.config import settings
from app.crud.crud_recipe import SEED_RECIPES
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import PageParams
from app.db.init_db import init_db
from app.models import User
from app.models.recipe import Recipe
from app.services import user as user_service


async def _count(db: AsyncSession, model: type[User] | type[Recipe]) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_init_db_creates_superuser_and_recipes_once(db: AsyncSession) -> None:
    superuser = await init_db(db)
    assert superuser.is_superuser is True
    assert superuser.email == settings.FIRST_SUPERUSER_EMAIL
    password = settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()
    assert await user_service.authenticate(db, email=superuser.email, password=password) is not None
    seeded = await recipes.paginate_by_submitter(
        db, PageParams(limit=100), submitter_id=superuser.id
    )
    labels = {r.label for r in seeded.items}
    assert {"Chicken Vesuvio", "Chicken Paprikash", "Cauliflower and Tofu Curry Recipe"} <= labels
    assert len(labels) == len(SEED_RECIPES)

    users, rows = await _count(db, User), await _count(db, Recipe)
    again = await init_db(db)
    assert again.id == superuser.id
    assert (await _count(db, User), await _count(db, Recipe)) == (users, rows)


async def test_init_db_takes_the_account_that_won_the_race(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await init_db(db)
    real_lookup = crud.user.get_by_email
    misses = [None]

    async def lookup_missed_once(session: AsyncSession, *, email: str) -> User | None:
        # The first look finds nothing, as if another process created the account just after.
        if misses:
            return misses.pop()
        return await real_lookup(session, email=email)

    monkeypatch.setattr(crud.user, "get_by_email", lookup_missed_once)
    again = await init_db(db)
    assert again.id == first.id
    assert await _count(db, User) == 1


async def test_init_db_reraises_a_clash_it_cannot_explain(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await init_db(db)

    async def never_found(_session: AsyncSession, *, email: str) -> User | None:  # noqa: ARG001
        return None

    monkeypatch.setattr(crud.user, "get_by_email", never_found)
    with pytest.raises(IntegrityError):
        await init_db(db)
