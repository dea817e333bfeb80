"""User data access. No HTTP, no hashing here: app.services.user owns passwords."""

from sqlalchemy import select

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
