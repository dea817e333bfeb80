"""User data access, including password hashing on create and authentication. No HTTP here."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import get_password_hash, verify_password
from app.crud.base import CRUDBase, end_transaction
from app.crud.crud_recipe import _like_pattern
from app.crud.crud_token import refresh_token
from app.models import User
from app.schemas import UserCreate, UserRegister, UserUpdate


class CRUDUser(CRUDBase[User, UserRegister, UserUpdate]):
    async def get_by_email(self, db: AsyncSession, *, email: str) -> User | None:
        if "\x00" in email:
            return None  # no stored email has one, and PostgreSQL refuses to compare it
        return await db.scalar(select(User).where(User.email == email.lower()))

    async def search(
        self,
        db: AsyncSession,
        *,
        email: str | None = None,
        is_active: bool | None = None,
        before_id: int | None = None,
        limit: int = 20,
    ) -> Sequence[User]:
        """Users whose email contains `email` (any case) and with the given status, newest first."""
        query = select(User)
        if email:
            query = query.where(User.email.ilike(_like_pattern(email.lower()), escape="\\"))
        if is_active is not None:
            query = query.where(User.is_active.is_(is_active))
        return await self._newest_first(db, query, before_id=before_id, limit=limit)

    async def create(self, db: AsyncSession, *, obj_in: UserRegister) -> User:
        await end_transaction(db)
        hashed_password = await get_password_hash(obj_in.password)
        user = User(
            email=obj_in.email.lower(),
            first_name=obj_in.first_name,
            surname=obj_in.surname,
            hashed_password=hashed_password,
            is_superuser=isinstance(obj_in, UserCreate) and obj_in.is_superuser,
        )
        return await self._save(db, user)

    async def update(
        self, db: AsyncSession, *, db_obj: User, obj_in: UserUpdate | dict[str, Any]
    ) -> User:
        """Apply the fields sent, hashing a new password. A new password or a deactivation ends
        every session of the user, in the same commit as the change."""
        data = dict(obj_in) if isinstance(obj_in, dict) else obj_in.model_dump(exclude_unset=True)
        password = data.pop("password", None)
        if password is not None:
            await end_transaction(db)
            data["hashed_password"] = await get_password_hash(password)
        if "email" in data:
            data["email"] = data["email"].lower()
        for field, value in data.items():
            setattr(db_obj, field, value)
        db.add(db_obj)
        if password is not None or data.get("is_active") is False:
            await refresh_token.revoke_all_for_user(db, user_id=db_obj.id)
            return db_obj
        await db.commit()
        return db_obj

    async def authenticate(self, db: AsyncSession, *, email: str, password: str) -> User | None:
        """The active user with this email and password, else None. Same cost either way."""
        user = await self.get_by_email(db, email=email)
        await end_transaction(db)
        valid, new_hash = await verify_password(password, user.hashed_password if user else None)
        if user is None or not valid or not user.is_active:
            return None
        if new_hash is not None:
            # A legacy or weaker hash: store the Argon2id one now that the password is known.
            user.hashed_password = new_hash
            await self._save(db, user)
        return user


user = CRUDUser(User)
