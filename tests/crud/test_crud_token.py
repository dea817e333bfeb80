"""Token data access: hashed storage, rotation, revocation, single-use password resets."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import hash_token
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


async def test_purge_drops_expired_tokens_and_keeps_used_live_ones(
    db: AsyncSession, normal_user: User
) -> None:
    _, old = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    _, used = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    raw_live = await crud.refresh_token.rotate(db, db_obj=used, scope="")
    assert raw_live is not None
    old.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db.flush()
    old_family, used_id = old.family_id, used.id
    await crud.refresh_token.purge(db, user_id=normal_user.id)
    db.expunge_all()
    assert await _family(db, old_family) == []
    assert await crud.refresh_token.get_by_token(db, token=raw_live) is not None
    # A used token stays until it expires, so presenting it again is still seen as reuse.
    assert await crud.refresh_token.get(db, used_id) is not None


async def _reset_tokens(db: AsyncSession, user_id: int) -> list[PasswordResetToken]:
    rows = await db.scalars(select(PasswordResetToken).where(PasswordResetToken.user_id == user_id))
    return list(rows.all())


async def test_claim_uses_a_reset_token_once_with_its_siblings(
    db: AsyncSession, normal_user: User
) -> None:
    token = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    row = await crud.password_reset_token.get_by_token(db, token=token)
    assert row is not None
    assert row.token_hash == hash_token(token)
    assert await crud.password_reset_token.claim(db, db_obj=row) is True
    assert await crud.password_reset_token.claim(db, db_obj=row) is False
    db.expunge_all()
    assert all(t.used_at is not None for t in await _reset_tokens(db, normal_user.id))


async def test_purge_drops_used_and_expired_reset_tokens(
    db: AsyncSession, normal_user: User
) -> None:
    used = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    row = await crud.password_reset_token.get_by_token(db, token=used)
    assert row is not None
    assert await crud.password_reset_token.claim(db, db_obj=row)
    expired = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    expired_row = await crud.password_reset_token.get_by_token(db, token=expired)
    assert expired_row is not None
    expired_row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    live = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    await db.flush()
    await crud.password_reset_token.purge(db, user_id=normal_user.id)
    db.expunge_all()
    assert [t.token_hash for t in await _reset_tokens(db, normal_user.id)] == [hash_token(live)]
