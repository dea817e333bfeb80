"""User data access. No HTTP, no hashing here: app.services.user owns passwords."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.base import Repository, like_pattern
from app.crud.pagination import Page, PageParams
from app.db.session import Reader
from app.models import User


class UserRepository(Repository[User]):
    async def get_by_email(self, db: Reader, *, email: str) -> User | None:
        """The user with this email, already normalized (see app.schemas.common.normalize_email)."""
        if "\x00" in email:
            return None  # no stored email has one, and PostgreSQL refuses to compare it
        return await db.scalar(select(User).where(User.email == email))

    async def lock(self, db: AsyncSession, id: int) -> User | None:
        """The user, read again and row-locked until the transaction ends: what serializes one
        account's token rotation against its revocations on PostgreSQL. SQLite has no row
        locks; its writing transactions already hold the database's write lock.

        FOR NO KEY UPDATE: it excludes its like, yet lets a login insert a token that refers to
        the user (a foreign key takes only a key-share lock)."""
        query = (
            select(User)
            .where(User.id == id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        return await db.scalar(query)

    async def lock_active_superusers(self, db: AsyncSession) -> Sequence[User]:
        """Every active superuser, row-locked in id order (so two callers cannot deadlock)."""
        query = (
            select(User)
            .where(User.is_superuser.is_(True), User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await db.scalars(query)).all()

    async def search(
        self,
        db: Reader,
        page: PageParams,
        *,
        email: str | None = None,
        is_active: bool | None = None,
    ) -> Page[User]:
        """Users whose email contains `email` (any case) and with the given status, newest first."""
        query = select(User)
        if email:
            query = query.where(User.email.ilike(like_pattern(email), escape="\\"))
        if is_active is not None:
            query = query.where(User.is_active.is_(is_active))
        return await self.paginate(db, page, query)


user = UserRepository(User)
