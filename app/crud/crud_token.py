"""Refresh and password-reset token data access: issue, claim, revoke, purge. No HTTP here."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Update, delete, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import settings
from app.core.security import hash_token, new_opaque_token
from app.crud.base import Repository
from app.db.session import Reader
from app.models import PasswordResetToken, RefreshToken


def _now() -> datetime:
    return datetime.now(UTC)


async def _claim(db: AsyncSession, statement: Update) -> bool:
    """Run a conditional UPDATE; True if it changed exactly one row, so this caller won it."""
    result = await db.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount == 1


class RefreshTokenRepository(Repository[RefreshToken]):
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
        return raw, await self.add(db, row)

    async def get_by_token(self, db: Reader, *, token: str) -> RefreshToken | None:
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
        raw, successor = await self.create_for_user(
            db, user_id=db_obj.user_id, scope=scope, family_id=db_obj.family_id
        )
        db_obj.revoked_at = now
        db_obj.replaced_by_id = successor.id
        await db.flush()
        return raw

    async def revoke_family(self, db: AsyncSession, *, family_id: str) -> None:
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=_now())
            .execution_options(synchronize_session="fetch")
        )

    async def revoke_all_for_user(self, db: AsyncSession, *, user_id: int) -> None:
        """End every session of the user."""
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=_now())
            .execution_options(synchronize_session="fetch")
        )

    async def purge(self, db: AsyncSession, *, user_id: int) -> None:
        """Drop the user's expired tokens, so the table holds live sessions, not history. Used
        ones stay until they expire: presenting one again must still be seen as reuse."""
        await db.execute(
            delete(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.expires_at < _now())
            .execution_options(synchronize_session=False)
        )


class PasswordResetTokenRepository(Repository[PasswordResetToken]):
    async def create_for_user(self, db: AsyncSession, *, user_id: int) -> str:
        """A new single-use reset token; returns the raw value, stores its hash."""
        raw = new_opaque_token()
        row = PasswordResetToken(
            user_id=user_id,
            token_hash=hash_token(raw),
            expires_at=_now() + timedelta(minutes=settings.PASSWORD_RESET_EXPIRE_MINUTES),
        )
        await self.add(db, row)
        return raw

    async def get_by_token(self, db: Reader, *, token: str) -> PasswordResetToken | None:
        query = select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(token))
        return await db.scalar(query)

    async def claim(self, db: AsyncSession, *, db_obj: PasswordResetToken) -> bool:
        """Mark the token used, with every other unused one of its user; False if it was used
        already, including by a concurrent call (a conditional UPDATE only one caller wins)."""
        now = _now()
        claimed = await _claim(
            db,
            update(PasswordResetToken)
            .where(PasswordResetToken.id == db_obj.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now),
        )
        if not claimed:
            return False
        await db.execute(
            update(PasswordResetToken)
            .where(
                PasswordResetToken.user_id == db_obj.user_id, PasswordResetToken.used_at.is_(None)
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        db_obj.used_at = now
        return True

    async def revoke_all_for_user(self, db: AsyncSession, *, user_id: int) -> None:
        """Spend every unused reset token of the user: a password or email change ends them."""
        await db.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
            .values(used_at=_now())
            .execution_options(synchronize_session="fetch")
        )

    async def purge(self, db: AsyncSession, *, user_id: int) -> None:
        """Drop the user's used and expired reset tokens: none of them can work again."""
        await db.execute(
            delete(PasswordResetToken)
            .where(
                PasswordResetToken.user_id == user_id,
                or_(
                    PasswordResetToken.used_at.is_not(None), PasswordResetToken.expires_at < _now()
                ),
            )
            .execution_options(synchronize_session=False)
        )


refresh_token = RefreshTokenRepository(RefreshToken)
password_reset_token = PasswordResetTokenRepository(PasswordResetToken)
