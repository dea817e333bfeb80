"""Throw-away test databases: a temp SQLite file, or a randomly named PostgreSQL database."""

import asyncio
import secrets
import tempfile
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


def new_database_url(server_url: str | None) -> str:
    """A URL for a database that does not exist yet: on the server given, else SQLite."""
    name = f"test_{secrets.token_hex(6)}"
    if not server_url:
        directory = Path(tempfile.mkdtemp(prefix="recipe-tests-"))
        return f"sqlite+aiosqlite:///{directory / name}.db"
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _admin_dsn(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), str(parsed.database)


async def _admin_execute(url: str, sql: str) -> None:
    dsn, _ = _admin_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(url: str) -> None:
    if url.startswith("postgresql"):
        _, name = _admin_dsn(url)
        asyncio.run(_admin_execute(url, f'CREATE DATABASE "{name}"'))


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        _, name = _admin_dsn(url)
        asyncio.run(_admin_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    path = Path(str(make_url(url).database))
    for file in path.parent.glob(f"{path.name}*"):
        file.unlink()
    if path.parent.name.startswith("recipe-tests-") and not any(path.parent.iterdir()):
        path.parent.rmdir()


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
