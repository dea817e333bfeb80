"""Generic data access: get, get_multi, create, update, remove. Subclasses add the rest."""

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped


async def end_transaction(db: AsyncSession) -> None:
    """Commit what the session has done so far, before slow work such as password hashing.

    While the work runs, the session then holds no pooled connection (PostgreSQL) and no write
    lock (SQLite); the objects it loaded stay usable (expire_on_commit=False).
    """
    if db.in_transaction():
        await db.commit()


class HasIntId(Protocol):
    id: Mapped[int]


ModelType = TypeVar("ModelType", bound=HasIntId)
CreateSchemaType = TypeVar("CreateSchemaType", bound=BaseModel)
UpdateSchemaType = TypeVar("UpdateSchemaType", bound=BaseModel)


class CRUDBase(Generic[ModelType, CreateSchemaType, UpdateSchemaType]):
    def __init__(self, model: type[ModelType]) -> None:
        self.model = model

    async def get(self, db: AsyncSession, id: int) -> ModelType | None:
        return await db.get(self.model, id)

    async def get_multi(
        self, db: AsyncSession, *, before_id: int | None = None, limit: int = 20
    ) -> Sequence[ModelType]:
        return await self._newest_first(db, select(self.model), before_id=before_id, limit=limit)

    async def create(self, db: AsyncSession, *, obj_in: CreateSchemaType) -> ModelType:
        return await self._save(db, self.model(**obj_in.model_dump()))

    async def update(
        self, db: AsyncSession, *, db_obj: ModelType, obj_in: UpdateSchemaType | dict[str, Any]
    ) -> ModelType:
        """Apply only the fields that were sent."""
        data = obj_in if isinstance(obj_in, dict) else obj_in.model_dump(exclude_unset=True)
        for field, value in data.items():
            setattr(db_obj, field, value)
        return await self._save(db, db_obj)

    async def remove(self, db: AsyncSession, *, db_obj: ModelType) -> None:
        await db.delete(db_obj)
        await db.commit()

    async def _newest_first(
        self,
        db: AsyncSession,
        query: Select[ModelType],
        *,
        before_id: int | None,
        limit: int,
    ) -> Sequence[ModelType]:
        """Keyset paging on the primary key: a page deep in the table costs what the first does."""
        query = query.order_by(self.model.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(self.model.id < before_id)
        return (await db.scalars(query)).all()

    async def _save(self, db: AsyncSession, db_obj: ModelType) -> ModelType:
        db.add(db_obj)
        await db.commit()
        return db_obj
