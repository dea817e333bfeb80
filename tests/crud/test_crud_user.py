"""User data access: hashing on create, lookup by email, authentication."""

import bcrypt
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.schemas import UserCreate, UserRegister
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import random_email


async def test_create_user_hashes_the_password(db: AsyncSession) -> None:
    email = random_email()
    user_in = UserRegister(email=email, password="plain-password", first_name="A", surname="B")
    user = await crud.user.create(db, obj_in=user_in)
    assert user.id is not None
    assert user.hashed_password != "plain-password"
    assert user.hashed_password.startswith("$argon2id$")
    assert user.is_superuser is False
    assert user.created_at.tzinfo is not None


async def test_create_user_can_make_superuser_from_trusted_code(db: AsyncSession) -> None:
    user_in = UserCreate(
        email=random_email(),
        password="plain-password",
        first_name="A",
        surname="B",
        is_superuser=True,
    )
    assert (await crud.user.create(db, obj_in=user_in)).is_superuser is True


async def test_get_by_email_ignores_case(db: AsyncSession) -> None:
    user = await create_random_user(db)
    found = await crud.user.get_by_email(db, email=user.email.upper())
    assert found is not None
    assert found.id == user.id
    assert await crud.user.get_by_email(db, email=random_email()) is None


async def test_authenticate_accepts_only_the_right_password(db: AsyncSession) -> None:
    user = await create_random_user(db)
    assert await crud.user.authenticate(db, email=user.email, password=DEFAULT_PASSWORD) is user
    assert await crud.user.authenticate(db, email=user.email, password="wrong-password") is None
    assert await crud.user.authenticate(db, email=random_email(), password=DEFAULT_PASSWORD) is None


async def test_authenticate_refuses_inactive_user(db: AsyncSession) -> None:
    user = await create_random_user(db, is_active=False)
    assert await crud.user.authenticate(db, email=user.email, password=DEFAULT_PASSWORD) is None


async def test_authenticate_upgrades_a_legacy_bcrypt_hash(db: AsyncSession) -> None:
    user = await create_random_user(db)
    legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode()
    await crud.user.update(db, db_obj=user, obj_in={"hashed_password": legacy})
    assert await crud.user.authenticate(db, email=user.email, password="legacy-password") is user
    await db.refresh(user)
    assert user.hashed_password.startswith("$argon2id$")
    assert await crud.user.authenticate(db, email=user.email, password="legacy-password") is user


async def test_get_multi_pages_newest_first(db: AsyncSession) -> None:
    users = [await create_random_user(db) for _ in range(3)]
    first = await crud.user.get_multi(db, limit=2)
    assert [u.id for u in first][:2] == [users[2].id, users[1].id]
    rest = await crud.user.get_multi(db, before_id=users[1].id, limit=1)
    assert [u.id for u in rest] == [users[0].id]
