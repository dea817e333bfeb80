"""Small random values, header builders, and apps served on a test's session."""

import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, inspect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import SessionFactory, get_session_factory
from app.core.config import Settings
from app.core.security import create_access_token, entitled_scopes
from app.crud.base import Repository
from app.db.session import Reader, ReadSession, get_db, get_read_db, request_transaction

# An optional slice's row of the authorization matrix (tests/utils/slices.py): method, path,
# statuses per principal, and the request as (url, httpx keyword arguments) from the World.
AuthorizationCall = tuple[str, str, Callable[[Any], tuple[str, dict[str, Any]]]]

# The `configure` fixture: change settings for one test, then build apps with create_app().
Configure = Callable[..., Settings]


def random_lower_string(length: int = 16) -> str:
    return secrets.token_hex(length)[:length]


def random_email() -> str:
    return f"{random_lower_string(12)}@example.com"


def auth_headers(user_id: int, scopes: Iterable[str] | None = None) -> dict[str, str]:
    """A bearer header; an ordinary user's scopes unless told (superusers: scopes=SCOPES)."""
    if scopes is None:
        scopes = entitled_scopes(is_superuser=False)
    return {"Authorization": f"Bearer {create_access_token(user_id, scopes=scopes)}"}


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def override_sessions(app: FastAPI, sessions: SessionFactory) -> None:
    """Every session the app opens (a request's, a read's, a background task's) from sessions,
    with the app's own transaction handling around it."""

    @asynccontextmanager
    async def scope() -> AsyncIterator[AsyncSession]:
        async with sessions() as db, request_transaction(db):
            yield db

    async def provide() -> AsyncIterator[AsyncSession]:
        async with scope() as db:
            yield db

    async def provide_read() -> AsyncIterator[ReadSession]:
        async with sessions() as db:
            yield ReadSession(db)

    async def provide_factory() -> SessionFactory:
        return scope

    app.dependency_overrides[get_db] = provide
    app.dependency_overrides[get_read_db] = provide_read
    app.dependency_overrides[get_session_factory] = provide_factory


def serve_session(app: FastAPI, db: AsyncSession) -> None:
    """The app's requests all run on this session (a test's rolled-back transaction); each
    request's commit or rollback ends a savepoint of it (see the db fixture)."""

    @asynccontextmanager
    async def shared() -> AsyncIterator[AsyncSession]:
        # The test's work so far stands, as committed data would: a request that fails rolls
        # back only its own work.
        await db.commit()
        try:
            yield db  # left open: the test closes it
        finally:
            # A failed request rolled back, which expires every object the test holds: load
            # them again, as the test would see them after any request.
            for obj in list(db.identity_map.values()):
                if inspect(obj).expired:
                    try:
                        await db.refresh(obj)
                    except InvalidRequestError:
                        db.expunge(obj)  # its row is gone

    override_sessions(app, shared)


async def open_client(stack: AsyncExitStack, app: FastAPI, db: AsyncSession) -> httpx2.AsyncClient:
    """A client for the app, its lifespan started and its requests on db; closed with stack."""
    serve_session(app, db)
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx2.ASGITransport(app=app)
    return await stack.enter_async_context(
        httpx2.AsyncClient(transport=transport, base_url="http://test")
    )


def lose_after_loading(
    monkeypatch: pytest.MonkeyPatch, repository: Repository[Any], model: type[Any]
) -> None:
    """The repository's `get` loads the row, then the row is deleted behind the session's back,
    as another request's committed delete would be, before this request writes."""
    load = repository.get

    async def get_then_lose(db: Reader, id: int) -> Any:
        row = await load(db, id)
        assert isinstance(db, AsyncSession)
        await db.execute(
            delete(model).where(model.id == id).execution_options(synchronize_session=False)
        )
        return row

    monkeypatch.setattr(repository, "get", get_then_lose)
