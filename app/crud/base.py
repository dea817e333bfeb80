"""The repository base every repository subclasses: get, add, update, remove, paginate.

Repositories take model objects and dicts, never wire schemas, and flush, never commit: the
request's session dependency owns the transaction (see app.db.session). Named queries live in
the subclasses.
"""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.orm.exc import StaleDataError

from app.crud.pagination import Page, PageParams, encode_cursor
from app.db.session import Reader, insert_row


class HasIntId(Protocol):
    id: Mapped[int]


ModelT = TypeVar("ModelT", bound=HasIntId)


def like_pattern(text: str) -> str:
    """A LIKE pattern that matches the text literally, wildcards included (escape="\\")."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Repository(Generic[ModelT]):
    # Every repository made, so first-data seeding asks each for its sample rows by itself.
    made: ClassVar[list["Repository[Any]"]] = []

    def __init__(self, model: type[ModelT]) -> None:
        self.model = model
        Repository.made.append(self)

    async def seed(self, db: AsyncSession, *, owner_id: int) -> None:
        """Add the resource's sample rows, owned by the first superuser, unless there already;
        none by default. app.db.init_db calls it on every repository."""

    async def get(self, db: Reader, id: int) -> ModelT | None:
        return await db.get(self.model, id)

    async def add(self, db: AsyncSession, obj: ModelT) -> ModelT:
        """Add a model object the request goes on using as one (to change it, or relate it)."""
        db.add(obj)
        await db.flush()
        return obj

    async def insert(self, db: AsyncSession, values: Mapping[str, Any]) -> ModelT:
        """Add one row and return it as stored (defaults filled in): a row to read, as
        ReadSession gives, not a model to change. One INSERT ... RETURNING, without the ORM's
        unit of work, which costs more than the statement itself (see insert_row)."""
        return cast(ModelT, await insert_row(db, self.model, values))

    async def update(self, db: AsyncSession, obj: ModelT, data: Mapping[str, Any]) -> ModelT | None:
        """Set the fields given; None if the row was deleted meanwhile (nothing to update)."""
        for field, value in data.items():
            setattr(obj, field, value)
        try:
            await db.flush()
        except StaleDataError:
            return None
        return obj

    async def remove(self, db: AsyncSession, obj: ModelT) -> bool:
        """Delete the row; False if it was gone already, so of two racing deletes one wins."""
        result = await db.execute(
            delete(self.model)
            .where(self.model.id == obj.id)
            .execution_options(synchronize_session=False)
        )
        if obj in db:
            db.expunge(obj)
        return cast(CursorResult[Any], result).rowcount == 1

    async def paginate(
        self,
        db: Reader,
        page: PageParams,
        query: Select[ModelT] | None = None,
        **params: Any,
    ) -> Page[ModelT]:
        """One page of the query's rows (default: all), newest first, by keyset on the id: a page
        deep in the table costs what the first does. One extra row says whether more follow.

        Build the query once, with bindparam() for what varies, and pass those values as params:
        a statement built once is compiled once (see app.db.session.ReadSession)."""
        rows = await self.newest(
            db, query, limit=page.limit + 1, before_id=page.before_id, **params
        )
        if len(rows) > page.limit:
            last_id = cast(int, rows[page.limit - 1].id)  # a loaded row: an int, not a column
            return Page(rows[: page.limit], encode_cursor(last_id))
        return Page(rows, None)

    async def newest(
        self,
        db: Reader,
        query: Select[ModelT] | None = None,
        *,
        limit: int,
        before_id: int | None = None,
        **params: Any,
    ) -> Sequence[ModelT]:
        statement = _newest(self.model, query, before=before_id is not None)
        values = {**params, "page_limit": limit}
        if before_id is not None:
            values["page_before_id"] = before_id
        return (await db.scalars(statement, values)).all()


@lru_cache(maxsize=256)
def _newest(model: Any, query: Select[Any] | None, *, before: bool) -> Select[Any]:
    """The query newest first, one page long: one statement per query, so it compiles once."""
    statement = (select(model) if query is None else query).order_by(model.id.desc())
    if before:
        statement = statement.where(model.id < bindparam("page_before_id"))
    return statement.limit(bindparam("page_limit"))
