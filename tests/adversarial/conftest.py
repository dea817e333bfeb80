"""The fuzz target: a fresh app on a database of its own, driven in-process by Schemathesis."""

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from schemathesis.python import asgi
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from app.core.security import SCOPES
from app.db.base import Base
from app.db.session import make_engine, make_sessionmaker
from app.main import create_app
from tests.conftest import TEST_DATABASE_URL
from tests.utils.db import create_database, drop_database, migrate, new_database_url
from tests.utils.slices import FAKES
from tests.utils.user import create_random_user
from tests.utils.utils import auth_headers, override_sessions


@dataclass
class FuzzApp:
    """A fresh app whose lifespan opens its own engine and seeds two users, on the event loop
    Schemathesis runs requests on, so no connection crosses loops. Optional slices' clients are
    their stand-ins (tests/utils/slices.py)."""

    app: FastAPI = field(init=False)
    database_url: str = ""
    user_id: int = 0
    superuser_id: int = 0

    def __post_init__(self) -> None:
        self.app = create_app()
        self._stack = AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()
        await self._startup()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self._stack.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    async def _startup(self) -> None:
        assert self.database_url, "start it through the fuzz_app fixture"
        # Made, used and disposed on the one loop Schemathesis serves every request from.
        engine = make_engine(self.database_url)
        self._stack.push_async_callback(engine.dispose)
        sessions = make_sessionmaker(engine)
        await self._seed(sessions)
        self._override(sessions)

    async def _seed(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as db, db.begin():
            self.user_id = (await create_random_user(db)).id
            self.superuser_id = (await create_random_user(db, is_superuser=True)).id

    def reset(self) -> None:
        """Empty every table and seed the two users again, so each stateful scenario starts
        from the same state: Hypothesis replays a scenario and needs the same answers to it."""

        async def wipe_and_seed() -> None:
            # Its own engine on its own loop: the app's connections stay on theirs.
            engine = make_engine(self.database_url)
            try:
                async with engine.begin() as conn:
                    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
                    if engine.dialect.name == "postgresql":
                        quoted = ", ".join(f'"{name}"' for name in tables)
                        await conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
                    else:
                        for name in tables:
                            await conn.execute(text(f'DELETE FROM "{name}"'))
                await self._seed(make_sessionmaker(engine))
            finally:
                await engine.dispose()

        asyncio.run(wipe_and_seed())

    def _override(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        override_sessions(self.app, sessions)
        self.app.dependency_overrides.update(FAKES)

    def headers(self, role: str) -> dict[str, str]:
        if role == "superuser":
            return auth_headers(self.superuser_id, scopes=SCOPES)
        if role == "user":
            return auth_headers(self.user_id)
        return {}


# Made at import, so Schemathesis can read its OpenAPI document while collecting tests.
FUZZ_APP = FuzzApp()


@pytest.fixture(scope="session")
def fuzz_app() -> Iterator[FuzzApp]:
    """Started once: its database lives as long as the session, apart from every other test's."""
    server = TEST_DATABASE_URL if TEST_DATABASE_URL.startswith("postgresql") else None
    url = new_database_url(server)
    create_database(url)
    try:
        migrate(url)
        FUZZ_APP.database_url = url
        # Runs the lifespan now, on Schemathesis' event loop thread.
        with asgi.get_client(FUZZ_APP):  # type: ignore[arg-type]
            pass
        try:
            yield FUZZ_APP
        finally:
            asgi.shutdown_lifespans()
    finally:
        drop_database(url)
