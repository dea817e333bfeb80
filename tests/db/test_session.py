"""Engine set-up per backend (SQLite pragmas on every connection, a checked PostgreSQL pool),
the request's transaction, the early commit and the read-only session."""

from pathlib import Path
from typing import ClassVar, get_args

import httpx2
import pytest
from fastapi import params
from sqlalchemy import delete, literal, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import crud
from app.api.deps import ReadSessionDep, SessionDep
from app.core.config import settings
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import MAX_ID
from app.db import session as session_module
from app.db.session import (
    ReadSession,
    commit_early,
    engine,
    get_db,
    get_read_db,
    make_engine,
    make_read_sessionmaker,
    request_transaction,
    write_intent,
)
from app.main import app
from app.models import User
from app.models.recipe import Recipe
from tests.utils.user import create_random_user


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


def test_postgres_engine_has_a_sized_pre_pinged_pool() -> None:
    engine = make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db")
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.size() == settings.DB_POOL_SIZE
    assert pool._pre_ping is True


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
    monkeypatch.setattr(session_module, "ReadSessionLocal", failing)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/api/v1/recipes")
        second = await client.get("/api/v1/recipes")
    assert (first.status_code, second.status_code) == (200, 200)
    assert any("closing the session failed" in r.getMessage() for r in caplog.records)


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


async def test_get_read_db_yields_a_working_read_session() -> None:
    sessions = get_read_db()
    session = await anext(sessions)
    try:
        assert await session.scalar(select(literal(1))) == 1
        assert list(await session.scalars(select(literal(2)))) == [2]
        assert await session.get(User, MAX_ID) is None
    finally:
        await sessions.aclose()


async def test_read_sessions_autocommit_on_postgres_only(tmp_path: Path) -> None:
    postgres = make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db")
    sqlite = make_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    try:
        read_pg = make_read_sessionmaker(postgres).kw["bind"]
        read_sqlite = make_read_sessionmaker(sqlite).kw["bind"]
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
