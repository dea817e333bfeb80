"""Account rules: hashing on create, authentication, updates that end sessions, conflicts."""

import bcrypt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import verify_password
from app.models import RefreshToken, User
from app.services import user as users
from app.services.errors import EmailTaken, SelfDeletion, SelfDemotion, UserNotFound
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import random_email


def _fields(**extra: object) -> dict[str, object]:
    return {
        "email": random_email(),
        "password": "plain-password",
        "first_name": "A",
        "surname": "B",
        **extra,
    }


async def test_create_hashes_the_password(db: AsyncSession) -> None:
    user = await users.create(db, _fields())
    assert user.id is not None
    assert user.hashed_password.startswith("$argon2id$")
    assert user.is_superuser is False
    assert user.created_at.tzinfo is not None


async def test_create_can_make_a_superuser_for_trusted_callers(db: AsyncSession) -> None:
    assert (await users.create(db, _fields(is_superuser=True))).is_superuser is True


async def test_create_with_a_taken_email_is_email_taken(db: AsyncSession) -> None:
    existing = await create_random_user(db)
    with pytest.raises(EmailTaken):
        await users.create(db, _fields(email=existing.email))


async def test_authenticate_accepts_only_the_right_password(db: AsyncSession) -> None:
    user = await create_random_user(db)
    assert await users.authenticate(db, email=user.email, password=DEFAULT_PASSWORD) is user
    assert await users.authenticate(db, email=user.email, password="wrong-password") is None
    assert await users.authenticate(db, email=random_email(), password=DEFAULT_PASSWORD) is None


async def test_authenticate_refuses_inactive_user(db: AsyncSession) -> None:
    user = await create_random_user(db, is_active=False)
    assert await users.authenticate(db, email=user.email, password=DEFAULT_PASSWORD) is None


async def test_authenticate_upgrades_a_legacy_bcrypt_hash(db: AsyncSession) -> None:
    user = await create_random_user(db)
    legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode()
    await crud.user.update(db, user, {"hashed_password": legacy})
    assert await users.authenticate(db, email=user.email, password="legacy-password") is user
    await db.refresh(user)
    assert user.hashed_password.startswith("$argon2id$")
    assert await users.authenticate(db, email=user.email, password="legacy-password") is user


async def _revoked(db: AsyncSession, token: RefreshToken) -> bool:
    await db.refresh(token)
    return token.revoked_at is not None


async def test_update_with_password_or_deactivation_ends_sessions(db: AsyncSession) -> None:
    user = await create_random_user(db)
    _, first = await crud.refresh_token.create_for_user(db, user_id=user.id, scope="")
    await users.update(db, user, {"first_name": "Renamed"})
    assert await _revoked(db, first) is False

    await users.update(db, user, {"password": "another-password"})
    assert await _revoked(db, first) is True
    assert user.hashed_password.startswith("$argon2id$")
    assert (await verify_password("another-password", user.hashed_password))[0] is True

    _, second = await crud.refresh_token.create_for_user(db, user_id=user.id, scope="")
    await users.update(db, user, {"is_active": False})
    assert await _revoked(db, second) is True


async def test_update_to_a_taken_email_is_email_taken(db: AsyncSession) -> None:
    user, other = await create_random_user(db), await create_random_user(db)
    with pytest.raises(EmailTaken):
        await users.update(db, user, {"email": other.email})


async def test_self_demotion_and_self_deletion_are_refused(db: AsyncSession) -> None:
    admin = await create_random_user(db, is_superuser=True)
    for change in ({"is_superuser": False}, {"is_active": False}):
        with pytest.raises(SelfDemotion):
            await users.administer(db, admin, admin, change)
    with pytest.raises(SelfDeletion):
        await users.remove(db, admin, admin)


async def test_remove_of_an_account_deleted_meanwhile_is_user_not_found(db: AsyncSession) -> None:
    user = await create_random_user(db)
    await users.remove(db, user, user)
    with pytest.raises(UserNotFound):
        await users.remove(db, user, user)
    assert await db.get(User, user.id) is None
