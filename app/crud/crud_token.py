"""Refresh and password-reset token data access: issue, rotate, revoke, redeem. No HTTP here."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Update, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import settings
from app.core.security import get_password_hash, hash_token, new_opaque_token
from app.crud.base import end_transaction
from app.models import PasswordResetToken, RefreshToken, User


def _now() -> datetime:
    return datetime.now(UTC)


async def _claim(db: AsyncSession, statement: Update) -> bool:
    """Run a conditional UPDATE; True if it changed exactly one row, so this caller won it."""
    result = await db.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount == 1


class CRUDRefreshToken:
    async def create_for_user(
        self, db: AsyncSession, *, user_id: int, scope: str, family_id: str | None = None
    ) -> tuple[str, RefreshToken]:
        """A new refresh token; the raw value is returned once and only its hash is stored."""
        raw = new_opaque_token()
        row = RefreshToken(
            user_id=user_id,
            family_id=family_id or uuid.uuid4().hex,
            token_hash=hash_token(raw),
            scope=scope,
            expires_at=_now() + timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS),
        )
        db.add(row)
        await db.commit()
        return raw, row

    async def get_by_token(self, db: AsyncSession, *, token: str) -> RefreshToken | None:
        return await db.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))
        )

    async def rotate(self, db: AsyncSession, *, db_obj: RefreshToken, scope: str) -> str | None:
        """Consume the token and issue its successor in the same family.

        None when the token was already consumed or revoked, including by a concurrent call:
        the claim is a conditional UPDATE, so only one caller can win it.
        """
        now = _now()
        claimed = await _claim(
            db,
            update(RefreshToken)
            .where(
                RefreshToken.id == db_obj.id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.replaced_by_id.is_(None),
            )
            .values(revoked_at=now),
        )
        if not claimed:
            return None
        raw = new_opaque_token()
        successor = RefreshToken(
            user_id=db_obj.user_id,
            family_id=db_obj.family_id,
            token_hash=hash_token(raw),
            scope=scope,
            expires_at=now + timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS),
        )
        db.add(successor)
        await db.flush()
        db_obj.revoked_at = now
        db_obj.replaced_by_id = successor.id
        await db.commit()
        return raw

    async def revoke_family(self, db: AsyncSession, *, family_id: str) -> None:
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=_now())
            .execution_options(synchronize_session="fetch")
        )
        await db.commit()

    async def revoke_all_for_user(self, db: AsyncSession, *, user_id: int) -> None:
        """End every session of the user; commits whatever else the session holds with it."""
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=_now())
            .execution_options(synchronize_session="fetch")
        )
        await db.commit()

    async def remove_expired(self, db: AsyncSession, *, user_id: int) -> None:
        """Drop the user's expired tokens, so the table holds live sessions, not history."""
        await db.execute(
            delete(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.expires_at < _now())
            .execution_options(synchronize_session=False)
        )
        await db.commit()


class CRUDPasswordResetToken:
    async def create_for_user(self, db: AsyncSession, *, user_id: int) -> str:
        """A new single-use reset token; returns the raw value, stores its hash."""
        raw = new_opaque_token()
        db.add(
            PasswordResetToken(
                user_id=user_id,
                token_hash=hash_token(raw),
                expires_at=_now() + timedelta(minutes=settings.PASSWORD_RESET_EXPIRE_MINUTES),
            )
        )
        await db.commit()
        return raw

    async def get_by_token(self, db: AsyncSession, *, token: str) -> PasswordResetToken | None:
        query = select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(token))
        return await db.scalar(query)

    async def redeem(self, db: AsyncSession, *, token: str, new_password: str) -> User | None:
        """Set a new password with a reset token, once. None if the token is unknown, used,
        expired or its user is inactive. Ends every session of the user in the same commit."""
        row = await self.get_by_token(db, token=token)
        if row is None or row.used_at is not None or row.expires_at <= _now():
            return None
        user = await db.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
        await end_transaction(db)
        hashed = await get_password_hash(new_password)
        now = _now()
        # Conditional, so two requests racing with one token cannot both win.
        claimed = await _claim(
            db,
            update(PasswordResetToken)
            .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now),
        )
        if not claimed:
            return None
        # Every other reset token of the user dies with this one.
        await db.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        row.used_at = now
        user.hashed_password = hashed
        await refresh_token.revoke_all_for_user(db, user_id=user.id)
        return user


refresh_token = CRUDRefreshToken()
password_reset_token = CRUDPasswordResetToken()
