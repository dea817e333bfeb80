"""Alembic environment: async engine, URL from the app settings, batch mode for SQLite."""

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy import DateTime, event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import normalize_database_url, settings
from app.db.base import Base
from app.db.base_class import UTCDateTime
from app.db.lock import PRESTART_LOCK_ID, SQLITE_PRESTART_WAIT_MS

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def render_item(type_: str, obj: object, _autogen_context: Any) -> str | Literal[False]:
    """Write app column types as plain SQLAlchemy ones, so migrations never import the app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return repr(DateTime(timezone=True)).replace("DateTime", "sa.DateTime")
    return False


# Indexes only a migration creates (PostgreSQL-specific, absent from the models).
MIGRATION_ONLY_INDEXES = frozenset({"ix_recipe_label_trgm"})


def include_object(
    _obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    """Leave migration-only indexes out of autogenerate and `alembic check`."""
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


def database_url() -> str:
    return normalize_database_url(config.get_main_option("sqlalchemy.url") or settings.DATABASE_URL)


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copying them; batch mode makes one migration fit both backends.
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def begin_immediate(engine: AsyncEngine) -> None:
    """SQLite transactions that take the write lock at once, waiting up to the busy timeout."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_PRESTART_WAIT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def run_migrations_online() -> None:
    # Replicas starting together: one migrates while the others wait, then find nothing to do.
    engine = create_async_engine(database_url())
    postgres = engine.dialect.name == "postgresql"
    if not postgres:
        begin_immediate(engine)
    try:
        async with engine.connect() as connection:
            if postgres:
                await connection.execute(select(func.pg_advisory_lock(PRESTART_LOCK_ID)))
                await connection.commit()
                await connection.run_sync(do_run_migrations)
                # On failure, dispose() closes the connection, which releases the lock too.
                await connection.execute(select(func.pg_advisory_unlock(PRESTART_LOCK_ID)))
                await connection.commit()
            else:
                # SQLite has no advisory locks: one transaction holds the write lock for them all.
                async with connection.begin():
                    await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
