"""Reads straight on asyncpg: what is compiled once, what is left to SQLAlchemy, and that a
direct read answers exactly what SQLAlchemy's would."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    Numeric,
    String,
    TypeDecorator,
    bindparam,
    column,
    delete,
    event,
    select,
    table,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import PageParams
from app.db import direct
from app.db.base_class import UTCDateTime
from app.db.direct import DirectReader, compile_plan
from app.db.session import (
    ReadSession,
    make_engine,
    make_read_engine,
    make_sessionmaker,
    reads_in,
)
from app.models import User
from app.models.recipe import Recipe
from tests.conftest import TEST_DATABASE_URL
from tests.utils.user import create_random_user

DIALECT = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]


def test_a_plan_binds_its_literals_and_takes_the_rest_per_call() -> None:
    statement = (
        select(*Recipe.__table__.columns)
        .where(Recipe.submitter_id == bindparam("submitter_id"))
        .limit(5)
    )
    plan = compile_plan(statement, DIALECT)
    assert plan is not None
    assert "$1" in plan.sql
    assert 5 in plan.arguments({"submitter_id": 7})
    assert 7 in plan.arguments({"submitter_id": 7})
    with pytest.raises(KeyError):
        plan.arguments({})  # a missing value is an error, never a NULL


class Shouted(TypeDecorator[str]):
    impl = String()
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:  # noqa: ARG002
        return None if value is None else value.upper()


def test_a_plan_converts_what_the_column_types_convert() -> None:
    words = table("word", column("id"), column("text", Shouted()))
    plan = compile_plan(select(words.c.id, words.c.text), DIALECT)
    assert plan is not None
    row = plan.make((1, "quiet"))
    assert (row.id, row.text) == (1, "QUIET")  # type: ignore[attr-defined]


def test_timestamps_need_no_conversion_from_asyncpg_only() -> None:
    # asyncpg gives timestamptz as aware UTC datetimes already: no work per value. SQLite keeps
    # no offset, so its naive values still become aware UTC ones.
    assert UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None) is None
    sqlite_dialect = sqlite.aiosqlite.dialect()
    convert = UTCDateTime().dialect_impl(sqlite_dialect).result_processor(sqlite_dialect, None)
    assert convert is not None
    converted = convert("2026-01-02 03:04:05.000000")
    assert converted is not None
    assert converted.tzinfo is UTC
    plan = compile_plan(select(*Recipe.__table__.columns), DIALECT)
    assert plan is not None
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = plan.make((1, "l", "s", "https://x.test", 2, stamp, stamp))
    assert row.created_at is stamp  # type: ignore[attr-defined]


def test_statements_that_need_sqlalchemys_execution_get_no_plan() -> None:
    prices = table("price", column("id"), column("amount", Numeric()))
    assert compile_plan(select(prices.c.amount), DIALECT) is None
    expanding = select(*Recipe.__table__.columns).where(Recipe.id.in_([1, 2]))
    assert compile_plan(expanding, DIALECT) is None


def test_plans_are_kept_per_statement_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "PLAN_CACHE_SIZE", 2)
    reader = DirectReader(make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db"))
    kept = select(*Recipe.__table__.columns)
    assert reader.plan(kept) is reader.plan(kept)
    for n in range(5):
        reader.plan(select(*Recipe.__table__.columns).limit(n + 1))
    assert len(reader._plans) == 2


needs_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgresql"),
    reason="the direct path is asyncpg's (TEST_DATABASE_URL=postgresql...)",
)


@pytest.fixture
async def pg_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@needs_postgres
async def test_direct_reads_answer_what_sqlalchemy_does_without_its_execution(
    pg_engine: AsyncEngine,
) -> None:
    async with make_sessionmaker(pg_engine)() as session:
        user = await create_random_user(session)
        for n in range(3):
            session.add(
                Recipe(
                    label=f"Direct {n}", source="T", url=f"https://x.test/{n}", submitter_id=user.id
                )
            )
        await session.commit()
    executed: list[str] = []
    event.listen(pg_engine.sync_engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    try:
        reads = ReadSession(make_read_engine(pg_engine))
        page = await recipes.paginate_by_submitter(reads, PageParams(limit=2), submitter_id=user.id)
        assert [r.label for r in page.items] == ["Direct 2", "Direct 1"]
        assert page.next_cursor is not None
        found = await reads.get(Recipe, page.items[0].id)
        assert executed == []  # neither read went through SQLAlchemy's execution
        core = (
            await ReadSession(make_read_engine(pg_engine))._execute(
                select(*Recipe.__table__.columns).where(Recipe.id == page.items[0].id)
            )
        ).one()
        assert executed  # the listener does see SQLAlchemy's own statements
        assert tuple(found) == tuple(core)  # type: ignore[arg-type]
        assert found.created_at.tzinfo is UTC  # type: ignore[union-attr]
        assert await reads.get(Recipe, 2**31 - 1) is None
    finally:
        async with pg_engine.begin() as conn:
            await conn.execute(delete(User).where(User.id == user.id))


@needs_postgres
async def test_a_failed_direct_read_is_reported_by_sqlalchemy(pg_engine: AsyncEngine) -> None:
    """A bad statement ends as SQLAlchemy's DBAPIError (the error handlers' 503 or 500), never
    as a bare driver exception, and the suspect connection is discarded."""
    invalidated: list[object] = []
    event.listen(pg_engine.sync_engine.pool, "invalidate", lambda *a: invalidated.append(a))
    reads = ReadSession(make_read_engine(pg_engine))
    broken = select(*Recipe.__table__.columns).where(text("no_such_column = 1"))
    with pytest.raises(sa_exc.DBAPIError):
        await reads.scalars(select(Recipe).where(text("no_such_column = 1")))
    with pytest.raises(sa_exc.DBAPIError):
        await reads._entity_rows(broken, None)
    assert len(invalidated) == 2  # one per direct attempt; SQLAlchemy's keeps its healthy one
    # The pool hands out healthy connections afterwards: a direct read still answers.
    assert await reads.get(Recipe, 2**31 - 1) is None


async def test_reads_in_a_session_give_rows_of_its_own_transaction(database_url: str) -> None:
    """A write route's checks: rows, read on the request's connection, seeing what its
    transaction wrote but has not committed; on both databases."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            user = await create_random_user(session)
            row: Any = await reads_in(session).get(User, user.id)
            assert row is not None
            assert not isinstance(row, User)  # a row to read, not a model to change
            assert (row.id, row.email, row.token_version) == (user.id, user.email, 0)
            assert await reads_in(session).get(User, 2**31 - 1) is None
            await session.rollback()
            assert await reads_in(session).get(User, user.id) is None
    finally:
        await engine.dispose()


@needs_postgres
async def test_reads_in_a_session_run_directly_and_fall_back_to_sqlalchemy(
    pg_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    executed: list[str] = []
    event.listen(pg_engine.sync_engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    async with make_sessionmaker(pg_engine)() as session:
        user = await create_random_user(session)
        executed.clear()
        assert (await reads_in(session).get(User, user.id)).email == user.email  # type: ignore[union-attr]
        assert executed == []  # straight on the driver

        async def failing(*_: object) -> None:
            raise direct.DirectReadFailed

        monkeypatch.setattr(DirectReader, "fetch_on", failing)
        assert (await reads_in(session).get(User, user.id)).email == user.email  # type: ignore[union-attr]
        assert len(executed) == 1  # read again through SQLAlchemy, in the same transaction
        await session.rollback()
