"""Small random values, header builders, and apps served on a test's session."""

import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack

import httpx2
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.security import SCOPE_RECIPES_WRITE, create_access_token
from app.db.session import get_db, get_read_db

# The `configure` fixture: change settings for one test, then build apps with create_app().
Configure = Callable[..., Settings]


def random_lower_string(length: int = 16) -> str:
    return secrets.token_hex(length)[:length]


def random_email() -> str:
    return f"{random_lower_string(12)}@example.com"


def auth_headers(user_id: int, scopes: Iterable[str] = (SCOPE_RECIPES_WRITE,)) -> dict[str, str]:
    """A bearer header; an ordinary user's scopes unless told (superusers: scopes=SCOPES)."""
    return {"Authorization": f"Bearer {create_access_token(user_id, scopes=scopes)}"}


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def override_sessions(app: FastAPI, provide: Callable[[], AsyncIterator[AsyncSession]]) -> None:
    """Every session the app hands out, for writes and for one-statement reads, from provide."""
    app.dependency_overrides[get_db] = provide
    app.dependency_overrides[get_read_db] = provide


def serve_session(app: FastAPI, db: AsyncSession) -> None:
    """The app's requests all run on this session (a test's rolled-back transaction)."""

    async def same_session() -> AsyncIterator[AsyncSession]:
        yield db

    override_sessions(app, same_session)


async def open_client(stack: AsyncExitStack, app: FastAPI, db: AsyncSession) -> httpx2.AsyncClient:
    """A client for the app, its lifespan started and its requests on db; closed with stack."""
    serve_session(app, db)
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx2.ASGITransport(app=app)
    return await stack.enter_async_context(
        httpx2.AsyncClient(transport=transport, base_url="http://test")
    )
