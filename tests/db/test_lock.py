"""The start-up lock: one holder at a time, and its work commits whole or not at all."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.lock import PRESTART_LOCK_ID, exclusive_session
from app.db.session import SQLITE_IMMEDIATE, make_engine
from app.models import User
from tests.utils.db import migrate
from tests.utils.user import create_random_user


@pytest.fixture
async def migrated(fresh_database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on a fresh migrated database, standing for two replicas."""
    # Alembic's env.py runs its own event loop, so it cannot run on this one.
    await asyncio.to_thread(migrate, fresh_database_url)
    first, second = make_engine(fresh_database_url), make_engine(fresh_database_url)
    yield first, second
    await first.dispose()
    await second.dispose()


async def _lock_is_free(engine: AsyncEngine) -> bool:
    """Try the lock without waiting, as another replica would, and let it go again."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            async with conn.begin():
                got = await conn.scalar(select(func.pg_try_advisory_xact_lock(PRESTART_LOCK_ID)))
            return bool(got)
        await conn.exec_driver_sql("PRAGMA busy_timeout=0")
        await conn.commit()
        await conn.execution_options(**{SQLITE_IMMEDIATE: True})
        try:
            async with conn.begin():
                return True
        except exc.OperationalError:
            return False
        finally:
            await conn.invalidate()


async def test_exclusive_session_holds_the_lock_until_it_ends(
    migrated: tuple[AsyncEngine, AsyncEngine],
) -> None:
    replica, other = migrated
    assert await _lock_is_free(other)
    async with exclusive_session(replica) as db:
        await create_random_user(db)
        assert not await _lock_is_free(other)
    assert await _lock_is_free(other)
    async with other.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(User)) == 1


async def _fail_half_way(engine: AsyncEngine) -> None:
    async with exclusive_session(engine) as db:
        await create_random_user(db)
        raise RuntimeError("half-way")


async def test_exclusive_session_keeps_nothing_when_it_fails(
    migrated: tuple[AsyncEngine, AsyncEngine],
) -> None:
    replica, other = migrated
    with pytest.raises(RuntimeError, match="half-way"):
        await _fail_half_way(replica)
    async with other.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(User)) == 0
    assert await _lock_is_free(other)
