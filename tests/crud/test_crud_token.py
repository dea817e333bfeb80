"""Token data access: hashed storage, rotation, revocation, single-use password resets."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import hash_token, verify_password
from app.models import PasswordResetToken, RefreshToken, User
from tests.utils.user import create_random_user


async def _family(db: AsyncSession, family_id: str) -> list[RefreshToken]:
    rows = await db.scalars(
        select(RefreshToken).where(RefreshToken.family_id == family_id).order_by(RefreshToken.id)
    )
    return list(rows.all())


async def test_create_refresh_token_stores_only_its_hash(
    db: AsyncSession, normal_user: User
) -> None:
    raw, row = await crud.refresh_token.create_for_user(
        db, user_id=normal_user.id, scope="recipes:write"
    )
    assert row.token_hash == hash_token(raw) != raw
    assert len(raw) >= 43
    assert row.expires_at > datetime.now(UTC) + timedelta(days=13)
    assert row.revoked_at is None
    found = await crud.refresh_token.get_by_token(db, token=raw)
    assert found is not None
    assert found.id == row.id
    assert await crud.refresh_token.get_by_token(db, token=row.token_hash) is None


async def test_rotate_links_the_successor_and_works_once(
    db: AsyncSession, normal_user: User
) -> None:
    _, first = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    new_raw = await crud.refresh_token.rotate(db, db_obj=first, scope="recipes:write")
    assert new_raw is not None
    successor = await crud.refresh_token.get_by_token(db, token=new_raw)
    assert successor is not None
    assert successor.family_id == first.family_id
    assert successor.scope == "recipes:write"
    await db.refresh(first)
    assert first.replaced_by_id == successor.id
    assert first.revoked_at is not None
    # A second rotation of the same token finds it already claimed.
    assert await crud.refresh_token.rotate(db, db_obj=first, scope="") is None


async def test_revoke_family_leaves_other_logins(db: AsyncSession, normal_user: User) -> None:
    _, one = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    _, other = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    await crud.refresh_token.revoke_family(db, family_id=one.family_id)
    assert all(t.revoked_at is not None for t in await _family(db, one.family_id))
    assert all(t.revoked_at is None for t in await _family(db, other.family_id))


async def test_revoke_all_for_user_leaves_other_users(db: AsyncSession, normal_user: User) -> None:
    someone = await create_random_user(db)
    _, mine = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    _, theirs = await crud.refresh_token.create_for_user(db, user_id=someone.id, scope="")
    await crud.refresh_token.revoke_all_for_user(db, user_id=normal_user.id)
    await db.refresh(mine)
    await db.refresh(theirs)
    assert mine.revoked_at is not None
    assert theirs.revoked_at is None


async def test_remove_expired_keeps_live_tokens(db: AsyncSession, normal_user: User) -> None:
    _, old = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    raw_live, _ = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    old.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db.commit()
    old_family = old.family_id
    await crud.refresh_token.remove_expired(db, user_id=normal_user.id)
    db.expunge_all()
    assert await _family(db, old_family) == []
    assert await crud.refresh_token.get_by_token(db, token=raw_live) is not None


async def redeem(db: AsyncSession, token: str, new_password: str) -> User | None:
    return await crud.password_reset_token.redeem(db, token=token, new_password=new_password)


async def _reset_tokens(db: AsyncSession, user_id: int) -> list[PasswordResetToken]:
    rows = await db.scalars(select(PasswordResetToken).where(PasswordResetToken.user_id == user_id))
    return list(rows.all())


async def test_redeem_sets_the_password_once_and_ends_sessions(
    db: AsyncSession, normal_user: User
) -> None:
    _, session = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    token = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    spare = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    [stored, _] = await _reset_tokens(db, normal_user.id)
    assert stored.token_hash == hash_token(token)

    user = await crud.password_reset_token.redeem(db, token=token, new_password="brand-new-pw")
    assert user is not None
    assert user.id == normal_user.id
    assert (await verify_password("brand-new-pw", user.hashed_password))[0] is True
    await db.refresh(session)
    assert session.revoked_at is not None
    assert await redeem(db, token, "again-pw-1") is None
    # Tokens asked for earlier die with the one that was used.
    assert await redeem(db, spare, "again-pw-1") is None


async def test_redeem_refuses_expired_unknown_and_inactive(db: AsyncSession) -> None:
    user = await create_random_user(db)
    expired = await crud.password_reset_token.create_for_user(db, user_id=user.id)
    [row] = await _reset_tokens(db, user.id)
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db.commit()
    assert await redeem(db, expired, "pw-pw-pw-1") is None
    assert await redeem(db, "nope", "pw-pw-pw-1") is None

    inactive = await create_random_user(db, is_active=False)
    token = await crud.password_reset_token.create_for_user(db, user_id=inactive.id)
    assert await redeem(db, token, "pw-pw-pw-1") is None


async def _revoked(db: AsyncSession, token: RefreshToken) -> bool:
    await db.refresh(token)
    return token.revoked_at is not None


async def test_user_update_with_password_or_deactivation_ends_sessions(db: AsyncSession) -> None:
    user = await create_random_user(db)
    _, first = await crud.refresh_token.create_for_user(db, user_id=user.id, scope="")
    await crud.user.update(db, db_obj=user, obj_in={"first_name": "Renamed"})
    assert await _revoked(db, first) is False

    await crud.user.update(db, db_obj=user, obj_in={"password": "another-password"})
    assert await _revoked(db, first) is True
    assert user.hashed_password.startswith("$argon2id$")
    assert (await verify_password("another-password", user.hashed_password))[0] is True

    _, second = await crud.refresh_token.create_for_user(db, user_id=user.id, scope="")
    await crud.user.update(db, db_obj=user, obj_in={"is_active": False})
    assert await _revoked(db, second) is True
