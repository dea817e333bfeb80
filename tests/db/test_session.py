"""Engine set-up per backend (SQLite pragmas on every connection, a sized PostgreSQL pool),
the request's transaction, the early commit and the read-only session."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar, cast, get_args

import httpx2
import pytest
from fastapi import params
from sqlalchemy import delete, literal, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import crud
from app.api.deps import ReadSessionDep, SessionDep
from app.core.config import settings
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import MAX_ID, PageParams
from app.db import session as session_module
from app.db.session import (
    ReadSession,
    commit_early,
    engine,
    get_db,
    get_read_db,
    make_engine,
    make_read_engine,
    make_sessionmaker,
    request_transaction,
    session_scope,
    write_intent,
)
from app.main import app
from app.models import User
from app.models.recipe import Recipe
from tests.conftest import TEST_DATABASE_URL
from tests.utils.user import create_random_user
from tests.utils.utils import auth_headers


async def test_sqlite_connections_get_pragmas(tmp_path: Path) -> None:
    # The directory is made at start-up (Settings.prepare_files), not by the engine.
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas == {
        "foreign_keys": 1,
        "journal_mode": "wal",
        "busy_timeout": settings.SQLITE_BUSY_TIMEOUT_MS,
    }
    assert (tmp_path / "app.db").exists()


def test_postgres_engine_has_a_sized_pool_without_pre_ping() -> None:
    # Pre-ping cost three round trips per checkout; a dead connection is retried or a 503.
    engine = make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db")
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.size() == settings.DB_POOL_SIZE
    assert pool._pre_ping is False


async def test_get_db_yields_a_working_session(database_url: str) -> None:
    assert database_url == settings.DATABASE_URL
    sessions = get_db()
    session = await anext(sessions)
    try:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await sessions.aclose()


class LostConnectionSession(AsyncSession):
    """Closing fails, as it does when the connection died under the session."""

    async def close(self) -> None:
        await super().close()
        raise sa_exc.OperationalError("ROLLBACK", None, ConnectionResetError("connection lost"))


async def test_session_close_failure_is_logged_not_raised(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert database_url == settings.DATABASE_URL
    failing = async_sessionmaker(engine, class_=LostConnectionSession)
    monkeypatch.setattr(session_module, "SessionLocal", failing)
    transport = httpx2.ASGITransport(app=app)
    # An unknown token: the request's session rolls back, then closes, and answers 401. (A
    # session that committed is not closed: the commit gave its connection back already.)
    body = {"refresh_token": "unknown"}
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.post("/api/v1/auth/refresh", json=body)
        second = await client.post("/api/v1/auth/refresh", json=body)
    assert (first.status_code, second.status_code) == (401, 401)
    assert any("closing the session failed" in r.getMessage() for r in caplog.records)


async def test_a_committed_request_gives_its_connection_back(database_url: str) -> None:
    """The request's session is not closed after its commit (see get_db): the commit itself
    must give the connection back, or every write would leak one."""
    assert database_url == settings.DATABASE_URL
    async with session_scope() as db:
        user = await create_random_user(db)
    pool = engine.sync_engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    transport = httpx2.ASGITransport(app=app)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(3):
                created = await client.post(
                    "/api/v1/recipes",
                    json={"label": "Kept", "source": "Test", "url": "https://example.com/kept"},
                    headers=auth_headers(user.id),
                )
                assert created.status_code == 201, created.text
                assert pool.checkedout() == before  # type: ignore[attr-defined]
    finally:
        async with session_scope() as db:
            await db.execute(delete(Recipe).where(Recipe.submitter_id == user.id))
            await db.execute(delete(User).where(User.id == user.id))


async def test_write_intent_takes_the_sqlite_write_lock_at_begin(tmp_path: Path) -> None:
    engine = make_engine(
        f"sqlite+aiosqlite:///{tmp_path}/app.db",
        settings.model_copy(update={"SQLITE_BUSY_TIMEOUT_MS": 0}),
    )
    token = write_intent.set(True)
    try:
        async with engine.connect() as writer, engine.connect() as other:
            await writer.begin()
            # A second writer is turned away at BEGIN, before it has read anything...
            with pytest.raises(sa_exc.OperationalError, match="database is locked"):
                await other.begin()
            await other.rollback()
            write_intent.set(False)
            # ...while a reader begins as usual.
            await other.begin()
            assert (await other.execute(text("SELECT 1"))).scalar() == 1
    finally:
        write_intent.reset(token)
        await engine.dispose()


async def test_get_read_db_gives_a_working_read_session() -> None:
    session = await get_read_db()
    assert await session.scalar(select(literal(1))) == 1
    assert list(await session.scalars(select(literal(2)))) == [2]
    assert await session.get(User, MAX_ID) is None


async def test_read_session_reads_rows_with_the_models_columns(database_url: str) -> None:
    """On an engine, entities come back as rows of the model's columns, read in autocommit."""
    test_engine = make_engine(database_url)
    read_engine = make_read_engine(test_engine)
    try:
        async with make_sessionmaker(test_engine)() as session:
            user = await create_random_user(session)
            recipe = Recipe(
                label="Row", source="Test", url="https://x.test/r", submitter_id=user.id
            )
            await recipes.add(session, recipe)
            await session.commit()
        reads = ReadSession(read_engine)
        row = await reads.get(Recipe, recipe.id)
        assert row is not None
        assert (row.id, row.label, row.submitter_id) == (recipe.id, "Row", user.id)
        assert row.created_at == recipe.created_at
        found = await recipes.paginate_by_submitter(
            reads, PageParams(limit=5), submitter_id=user.id
        )
        assert [r.url for r in found.items] == ["https://x.test/r"]
        assert await reads.get(Recipe, MAX_ID) is None
    finally:
        async with test_engine.begin() as conn:
            await conn.execute(delete(User).where(User.email == user.email))
        await test_engine.dispose()


class DroppedOnce:
    """An engine whose first connection turns out dead, as a pooled one does after a restart."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine, self.connects = engine, 0

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        self.connects += 1
        async with self.engine.connect() as conn:
            if self.connects == 1:
                lost = ConnectionResetError("connection lost")
                raise sa_exc.OperationalError("SELECT", None, lost, connection_invalidated=True)
            yield conn


async def test_read_session_retries_once_on_a_dropped_connection(database_url: str) -> None:
    dropped = DroppedOnce(make_engine(database_url))
    try:
        reads = ReadSession(cast(AsyncEngine, dropped))
        assert await reads.scalar(select(literal(7))) == 7
        assert dropped.connects == 2
    finally:
        await dropped.engine.dispose()


async def test_read_session_does_not_retry_other_errors(database_url: str) -> None:
    dropped = DroppedOnce(make_engine(database_url))
    try:
        reads = ReadSession(cast(AsyncEngine, dropped))
        dropped.connects = 1  # the connection is fine; the statement is not
        with pytest.raises(sa_exc.DBAPIError) as caught:
            await reads.scalar(select(text("no_such_column")))
        assert not caught.value.connection_invalidated
        assert dropped.connects == 2
    finally:
        await dropped.engine.dispose()


needs_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgresql"),
    reason="a server-side disconnect is a PostgreSQL case (TEST_DATABASE_URL=postgresql...)",
)


@needs_postgres
async def test_terminated_connections_end_in_a_retried_read_or_a_503(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pre-ping, pooled connections the server dropped are found on use: a read retries
    on a fresh one (200), a write's transaction fails over to 503, never 500."""
    test_engine = make_engine(database_url)
    monkeypatch.setattr(session_module, "SessionLocal", async_sessionmaker(test_engine))
    monkeypatch.setattr(session_module, "_reads", ReadSession(make_read_engine(test_engine)))
    transport = httpx2.ASGITransport(app=app)
    body = {"refresh_token": "unknown"}
    try:
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/api/v1/recipes")).status_code == 200
            assert (await client.post("/api/v1/auth/logout", json=body)).status_code == 204
            await _terminate_pooled(test_engine, database_url)
            read = await client.get("/api/v1/recipes")
            await _terminate_pooled(test_engine, database_url)
            write = await client.post("/api/v1/auth/logout", json=body)
            assert read.status_code == 200
            assert write.status_code == 503
            # The pool dropped every stale connection: the next write works again.
            assert (await client.post("/api/v1/auth/logout", json=body)).status_code == 204
    finally:
        await test_engine.dispose()


async def _terminate_pooled(engine: AsyncEngine, database_url: str) -> None:
    """Ends, server side, every connection in the engine's pool (and only those)."""
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    conns = [await engine.connect() for _ in range(pool.checkedin())]
    pids = [await conn.scalar(text("SELECT pg_backend_pid()")) for conn in conns]
    for conn in conns:
        await conn.close()
    admin = make_engine(database_url)
    try:
        async with admin.connect() as conn:
            for pid in pids:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()
    assert pids


async def test_read_sessions_autocommit_on_postgres_only(tmp_path: Path) -> None:
    postgres = make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db")
    sqlite = make_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    try:
        read_pg = make_read_engine(postgres)
        read_sqlite = make_read_engine(sqlite)
        assert read_pg.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
        # SQLite begins its own transactions (see _sqlite_setup): the engine is used as it is.
        assert read_sqlite is sqlite
    finally:
        await postgres.dispose()
        await sqlite.dispose()


class RecordingSession(AsyncSession):
    """Notes when the transaction ends, next to when the response starts (see _recording)."""

    events: ClassVar[list[str]] = []

    async def commit(self) -> None:
        self.events.append("commit")
        await super().commit()

    async def rollback(self) -> None:
        self.events.append("rollback")
        await super().rollback()


def _recording(events: list[str]) -> ASGIApp:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                events.append(f"response {message['status']}")
            await send(message)

        await app(scope, receive, noting_send)

    return asgi


@pytest.mark.parametrize(
    ("path", "body", "outcome"),
    [
        # An unknown token: nothing to end, a success all the same.
        ("/api/v1/auth/logout", {"refresh_token": "unknown"}, ["commit", "response 204"]),
        ("/api/v1/auth/refresh", {"refresh_token": "unknown"}, ["rollback", "response 401"]),
    ],
)
async def test_request_transaction_ends_before_the_response_starts(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    body: dict[str, str],
    outcome: list[str],
) -> None:
    assert database_url == settings.DATABASE_URL
    events: list[str] = []
    monkeypatch.setattr(RecordingSession, "events", events)
    recording = async_sessionmaker(engine, class_=RecordingSession, expire_on_commit=False)
    monkeypatch.setattr(session_module, "SessionLocal", recording)
    transport = httpx2.ASGITransport(app=_recording(events))
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.post(path, json=body)
    assert events == outcome


def test_request_sessions_are_function_scoped() -> None:
    # The default ("request") scope would end the transaction after the response was sent.
    for alias in (SessionDep, ReadSessionDep):
        [dependency] = [m for m in get_args(alias)[1:] if isinstance(m, params.Depends)]
        assert dependency.scope == "function"


async def test_request_transaction_commits_work_or_rolls_it_back(db: AsyncSession) -> None:
    user = await create_random_user(db)
    await db.commit()
    async with request_transaction(db):
        user.first_name = "Kept"
        await db.flush()

    async def failing() -> None:
        async with request_transaction(db):
            user.first_name = "Dropped"
            await db.flush()
            raise RuntimeError("failed")

    with pytest.raises(RuntimeError, match="failed"):
        await failing()
    await db.refresh(user)
    assert user.first_name == "Kept"


async def test_commit_early_ends_the_transaction_and_keeps_objects_usable(
    db: AsyncSession,
) -> None:
    user = await create_random_user(db)
    assert db.in_transaction()
    await commit_early(db)
    assert not db.in_transaction()
    assert user.email  # loaded, no I/O: expire_on_commit=False
    await commit_early(db)  # nothing open: nothing to do
    assert not db.in_transaction()


def test_read_sessions_offer_no_writes() -> None:
    assert not any(hasattr(ReadSession, name) for name in ("add", "delete", "execute", "commit"))


async def _writes_through_a_read_session_do_not_type_check(read: ReadSession) -> None:
    # Never run: mypy checks it, and an ignore that is no longer needed fails `check`.
    read.add(User())  # type: ignore[attr-defined]
    await read.execute(delete(User))  # type: ignore[attr-defined]
    await recipes.add(read, Recipe())  # type: ignore[arg-type]
    await crud.user.remove(read, User())  # type: ignore[arg-type]
