"""Single sign-on data access: identities at providers and exchange codes. No HTTP here."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_token, new_opaque_token
from app.crud.base import Repository
from app.db.session import Reader
from app.models.identity import Identity, SsoCode


def _now() -> datetime:
    return datetime.now(UTC)


class IdentityRepository(Repository[Identity]):
    async def get_by_subject(self, db: Reader, *, provider: str, subject: str) -> Identity | None:
        return await db.scalar(
            select(Identity).where(Identity.provider == provider, Identity.subject == subject)
        )

    async def get_multi_by_user(self, db: Reader, *, user_id: int) -> Sequence[Identity]:
        query = select(Identity).where(Identity.user_id == user_id).order_by(Identity.id)
        return (await db.scalars(query)).all()


class SsoCodeRepository(Repository[SsoCode]):
    async def create_for_user(self, db: AsyncSession, *, user_id: int, seconds: int) -> str:
        """A new single-use exchange code; returns the raw value, stores its hash. Expired
        codes of every user go first, so the table holds only live ones."""
        await db.execute(
            delete(SsoCode)
            .where(SsoCode.expires_at < _now())
            .execution_options(synchronize_session=False)
        )
        raw = new_opaque_token()
        row = SsoCode(
            user_id=user_id,
            code_hash=hash_token(raw),
            expires_at=_now() + timedelta(seconds=seconds),
        )
        await self.add(db, row)
        return raw

    async def claim(self, db: AsyncSession, *, code: str) -> int | None:
        """Spend the code: its user's id, or None if it is unknown, used or expired. A
        conditional UPDATE, so of two concurrent claims only one wins."""
        now = _now()
        user_id = await db.scalar(
            update(SsoCode)
            .where(
                SsoCode.code_hash == hash_token(code),
                SsoCode.used_at.is_(None),
                SsoCode.expires_at > now,
            )
            .values(used_at=now)
            .returning(SsoCode.user_id)
            .execution_options(synchronize_session=False)
        )
        return user_id


identity = IdentityRepository(Identity)
sso_code = SsoCodeRepository(SsoCode)
