"""The migrations: up, down and up again on a fresh database, and no drift from the models."""

import asyncio

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.db.session import make_engine
from tests.utils.db import alembic_config


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


async def _read_table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_tables)
    finally:
        await engine.dispose()


def _table_names(url: str) -> set[str]:
    return asyncio.run(_read_table_names(url))


TABLES = {
    "user",
    "recipe",
    "refresh_token",
    "password_reset_token",
    "idempotency_key",
    "identity",
    "sso_code",
}


# Synchronous on purpose: Alembic's async env.py runs its own event loop, as it does in prestart.
def test_upgrade_downgrade_upgrade_and_no_drift(fresh_database_url: str) -> None:
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "head")
    assert _table_names(fresh_database_url) == TABLES
    command.downgrade(config, "0001")
    assert _table_names(fresh_database_url) == {"user", "recipe"}
    command.downgrade(config, "base")
    assert _table_names(fresh_database_url) == set()
    command.upgrade(config, "head")
    assert _table_names(fresh_database_url) == TABLES
    # Raises if the models describe anything the migrations do not create.
    command.check(config)
