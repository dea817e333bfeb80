"""User data access, including password hashing on create and authentication. No HTTP here."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import get_password_hash, verify_password
from app.crud.base import CRUDBase
from app.models import User
from app.schemas import UserCreate, UserRegister


class CRUDUser(CRUDBase[User, UserRegister, UserRegister]):
    async def get_by_email(self, db: AsyncSession, *, email: str) -> User | None:
        if "\x00" in email:
            return None  # no stored email has one, and PostgreSQL refuses to compare it
        return await db.scalar(select(User).where(User.email == email.lower()))

    async def create(self, db: AsyncSession, *, obj_in: UserRegister) -> User:
        user = User(
            email=obj_in.email.lower(),
            first_name=obj_in.first_name,
            surname=obj_in.surname,
            hashed_password=await get_password_hash(obj_in.password),
            is_superuser=isinstance(obj_in, UserCreate) and obj_in.is_superuser,
        )
        return await self._save(db, user)

    async def authenticate(self, db: AsyncSession, *, email: str, password: str) -> User | None:
        """The active user with this email and password, else None. Same cost either way."""
        user = await self.get_by_email(db, email=email)
        valid, new_hash = await verify_password(password, user.hashed_password if user else None)
        if user is None or not valid or not user.is_active:
            return None
        if new_hash is not None:
            # A legacy or weaker hash: store the Argon2id one now that the password is known.
            user.hashed_password = new_hash
            await self._save(db, user)
        return user


user = CRUDUser(User)
