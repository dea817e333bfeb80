"""Reads straight on asyncpg: what is compiled once, what is left to SQLAlchemy, and that a
direct read answers exactly what SQLAlchemy's would."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    TypeDecorator,
    bindparam,
    column,
    delete,
    event,
    func,
    select,
    table,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import PageParams
from app.db import direct
from app.db import session as session_module
from app.db.base_class import UTCDateTime
from app.db.direct import DirectReader, compile_insert, compile_plan
from app.db.session import (
    ReadSession,
    insert_row,
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
RECIPES = cast(Table, Recipe.__table__)


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


def test_an_insert_plan_fills_python_defaults_and_converts_what_the_types_convert() -> None:
    keys = frozenset({"label", "source", "url", "submitter_id"})
    plan = compile_insert(RECIPES, keys, DIALECT)
    assert plan is not None
    assert plan.sql.startswith("INSERT INTO recipe")
    assert "RETURNING" in plan.sql
    given = {"label": "Stew", "source": "Gran", "url": "https://x.test/stew", "submitter_id": 3}
    arguments = dict(zip(plan.names, plan.arguments(given), strict=True))
    assert {k: arguments[k] for k in given} == given
    assert arguments["created_at"].tzinfo is UTC  # the model's utcnow, per row
    stamped = compile_insert(RECIPES, keys | {"created_at"}, DIALECT)
    assert stamped is not None
    with pytest.raises(ValueError, match="naive"):  # UTCDateTime's check still runs
        stamped.arguments({**given, "created_at": datetime(2026, 1, 1)})
    with pytest.raises(KeyError):
        plan.arguments({"label": "Stew"})  # a missing value is an error, never a NULL
    assert compile_insert(RECIPES, keys | {"no_such_column"}, DIALECT) is None


def test_inserts_run_directly_on_asyncpg_while_its_adapter_has_what_they_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fits = direct._asyncpg_adapter_fits
    fits.cache_clear()
    assert direct.direct_inserts(DIALECT)
    assert not direct.direct_inserts(sqlite.aiosqlite.dialect())
    # Another SQLAlchemy release, whose adapter begins transactions some other way.
    monkeypatch.delattr(AsyncAdapt_asyncpg_connection, "_start_transaction")
    fits.cache_clear()
    try:
        assert not direct.direct_inserts(DIALECT)
    finally:
        fits.cache_clear()  # the next caller sees the real adapter again


def test_an_insert_default_that_reads_the_row_gets_the_row() -> None:
    metadata = MetaData()
    slugs = Table(
        "slug",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("slug", String(20), default=lambda ctx: ctx.get_current_parameters()["name"]),
        Column("made", String(20), server_default="now"),
    )
    plan = compile_insert(slugs, frozenset({"name"}), DIALECT)
    assert plan is not None
    assert plan.arguments({"name": "stew"}) == ["stew", "stew"]


def test_inserts_that_need_sqlalchemys_execution_get_no_plan_and_sql_defaults_stay_sql() -> None:
    metadata = MetaData()
    stamped = Table(
        "stamped",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("at", DateTime, default=func.now()),  # run in SQL, at execution
    )
    priced = Table(
        "priced", metadata, Column("id", Integer, primary_key=True), Column("amount", Numeric())
    )
    inlined = compile_insert(stamped, frozenset(), DIALECT)
    assert inlined is not None  # a default in SQL is part of the statement: nothing to run
    assert "VALUES (now())" in inlined.sql
    assert compile_insert(priced, frozenset({"amount"}), DIALECT) is None


@needs_postgres
async def test_direct_inserts_are_in_the_sessions_transaction(pg_engine: AsyncEngine) -> None:
    """Straight on the driver, yet committed and rolled back with the session's transaction,
    and the row as SQLAlchemy would give it."""
    assert direct.direct_inserts(pg_engine.dialect)  # the installed adapter has what they use
    executed: list[str] = []
    sessions = make_sessionmaker(pg_engine)
    async with sessions() as session:
        user = await create_random_user(session)
        await session.commit()
    values = {"label": "Direct", "source": "T", "url": "https://x.test/d", "submitter_id": user.id}
    event.listen(pg_engine.sync_engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    try:
        async with sessions() as session:
            dropped: Any = await insert_row(session, Recipe, values)
            assert executed == []  # not through SQLAlchemy's execution
            assert session.in_transaction()
            await session.rollback()
            assert await reads_in(session).get(Recipe, dropped.id) is None
            kept: Any = await insert_row(session, Recipe, values)
            await session.commit()
        async with sessions() as session:
            stored = await session.get(Recipe, kept.id)
            assert stored is not None
            assert (stored.label, stored.submitter_id) == ("Direct", user.id)
            assert (stored.created_at, stored.updated_at) == (kept.created_at, kept.updated_at)
            assert kept.created_at.tzinfo is UTC
    finally:
        async with pg_engine.begin() as conn:
            await conn.execute(delete(User).where(User.id == user.id))


@needs_postgres
async def test_a_refused_direct_insert_is_sqlalchemys_error(pg_engine: AsyncEngine) -> None:
    """A clash reaches the error handlers as SQLAlchemy's IntegrityError (409), and the session
    rolls back and goes on as after any failed statement."""
    values = {
        "label": "Orphan",
        "source": "T",
        "url": "https://x.test/o",
        "submitter_id": 2**31 - 1,
    }
    async with make_sessionmaker(pg_engine)() as session:
        with pytest.raises(sa_exc.IntegrityError) as caught:
            await insert_row(session, Recipe, values)
        assert not caught.value.connection_invalidated
        assert "Orphan" not in str(caught.value)  # no row values in messages or logs
        await session.rollback()
        assert await reads_in(session).get(Recipe, 2**31 - 1) is None


@needs_postgres
async def test_a_direct_insert_on_a_lost_connection_is_reported_by_sqlalchemy(
    pg_engine: AsyncEngine, database_url: str
) -> None:
    """The connection found dead is dropped with the pool's older ones, and the error is the
    one the handlers answer 503 to."""
    invalidated: list[object] = []
    event.listen(pg_engine.sync_engine.pool, "invalidate", lambda *a: invalidated.append(a))
    values = {"label": "Lost", "source": "T", "url": "https://x.test/l", "submitter_id": 1}
    async with make_sessionmaker(pg_engine)() as session:
        connection = await session.connection()
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        admin = make_engine(database_url)
        try:
            async with admin.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.dispose()
        with pytest.raises(sa_exc.DBAPIError) as caught:
            await insert_row(session, Recipe, values)
        assert caught.value.connection_invalidated
        assert invalidated
        await session.rollback()
    async with make_sessionmaker(pg_engine)() as session:
        assert await reads_in(session).get(Recipe, 2**31 - 1) is None  # the pool serves again


@pytest.mark.parametrize("adapter_methods", [True, False])
async def test_inserts_run_directly_on_asyncpg_and_through_sqlalchemy_elsewhere(
    database_url: str, monkeypatch: pytest.MonkeyPatch, adapter_methods: bool
) -> None:
    # Without the adapter's methods (another SQLAlchemy release), asyncpg's inserts go through
    # SQLAlchemy too.
    if not adapter_methods:
        monkeypatch.setattr(session_module, "direct_inserts", lambda _dialect: False)
    engine = make_engine(database_url)
    executed: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    try:
        async with make_sessionmaker(engine)() as session:
            user = await create_random_user(session)
            executed.clear()
            values = {"label": "Any", "source": "T", "url": "https://x.test/a", "submitter_id": 0}
            row: Any = await insert_row(session, Recipe, {**values, "submitter_id": user.id})
            assert (row.label, row.submitter_id) == ("Any", user.id)
            assert row.created_at.tzinfo is UTC
            if engine.dialect.driver == "asyncpg" and adapter_methods:
                assert direct.direct_inserts(engine.dialect)
                assert executed == []  # straight on the driver
            else:
                assert [sql.split(" (")[0] for sql in executed] == ["INSERT INTO recipe"]
            await session.rollback()
    finally:
        await engine.dispose()
