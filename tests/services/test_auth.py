"""Login rules: password resets once with sessions ended, token purging at login."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import verify_password
from app.models import PasswordResetToken, RefreshToken, User
from app.services import auth
from app.services.errors import InvalidResetToken
from tests.utils.user import DEFAULT_PASSWORD, create_random_user


class NoThrottle:
    async def attempt(self, email: str) -> None:
        pass

    async def succeeded(self, email: str) -> None:
        pass


async def test_reset_password_sets_the_password_once_and_ends_sessions(
    db: AsyncSession, normal_user: User
) -> None:
    _, session = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    token = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    spare = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)

    user = await auth.reset_password(db, token=token, new_password="brand-new-pw")
    assert user.id == normal_user.id
    assert (await verify_password("brand-new-pw", user.hashed_password))[0] is True
    await db.refresh(session)
    assert session.revoked_at is not None
    with pytest.raises(InvalidResetToken):
        await auth.reset_password(db, token=token, new_password="again-pw-1")
    # Tokens asked for earlier die with the one that was used.
    with pytest.raises(InvalidResetToken):
        await auth.reset_password(db, token=spare, new_password="again-pw-1")


async def test_reset_password_refuses_expired_unknown_and_inactive(db: AsyncSession) -> None:
    user = await create_random_user(db)
    expired = await crud.password_reset_token.create_for_user(db, user_id=user.id)
    row = await crud.password_reset_token.get_by_token(db, token=expired)
    assert row is not None
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db.flush()
    inactive = await create_random_user(db, is_active=False)
    inactive_token = await crud.password_reset_token.create_for_user(db, user_id=inactive.id)
    for token in (expired, "nope", inactive_token):
        with pytest.raises(InvalidResetToken):
            await auth.reset_password(db, token=token, new_password="pw-pw-pw-1")


async def test_login_purges_tokens_that_can_never_work_again(
    db: AsyncSession, normal_user: User
) -> None:
    _, old = await crud.refresh_token.create_for_user(db, user_id=normal_user.id, scope="")
    old.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    used = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    await auth.reset_password(db, token=used, new_password=DEFAULT_PASSWORD)
    user_id = normal_user.id
    grant = await auth.login(
        db, email=normal_user.email, password=DEFAULT_PASSWORD, scopes=(), throttle=NoThrottle()
    )
    db.expunge_all()
    refresh_rows = (
        await db.scalars(select(RefreshToken).where(RefreshToken.user_id == user_id))
    ).all()
    assert [r.id for r in refresh_rows] == [
        (await crud.refresh_token.get_by_token(db, token=grant.refresh_token)).id  # type: ignore[union-attr]
    ]
    reset_rows = await db.scalars(
        select(PasswordResetToken).where(PasswordResetToken.user_id == user_id)
    )
    assert reset_rows.all() == []
