"""Everything prestart.sh does, in one Python process: wait for the database, migrate, seed;
then, given a command (run.sh gives uvicorn's), serve."""

import ast
import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import column, inspect, select, table

from app import backend_pre_start
from app.core.config import is_placeholder, normalize_database_url, settings
from app.db.session import make_engine
from app.models import User
from app.schemas.common import normalize_email

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger("app.prestart")

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
# alembic.ini's script_location; a test keeps the two the same.
MIGRATIONS = ALEMBIC_INI.parent / "alembic"
# Alembic's default, which env.py keeps.
VERSION_TABLE = "alembic_version"
REVISION_NAMES = frozenset({"revision", "down_revision", "branch_labels", "depends_on"})


@dataclass(frozen=True)
class Pending:
    """What a start still has to do to the database."""

    migrate: bool
    seed: bool


def script_heads(migrations: Path) -> frozenset[str] | None:
    """The head revisions of the migration scripts, read without importing Alembic (which costs
    more than the rest of a start on a current database); None if a script uses something this
    plain reading does not follow (branch labels, dependencies), so Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations / "versions").glob("*.py"):
        names: dict[str, object] = {}
        for node in ast.parse(path.read_bytes(), str(path)).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in REVISION_NAMES:
                try:
                    names[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, down = names.get("revision"), names.get("down_revision")
        if not isinstance(revision, str) or names.get("branch_labels") or names.get("depends_on"):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(parent) for parent in down)
        elif down is not None:
            return None
    return frozenset(revisions - parents) or None


async def pending(url: str, heads: frozenset[str] | None) -> Pending:
    """Migrate unless the database is at heads; seed after a migration or when the first
    superuser is missing. Seeding runs inside a lock, this look does not: at worst a replica
    that looks while another migrates does the (then empty) work again."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table(VERSION_TABLE)):
                return Pending(migrate=True, seed=True)
            versions = table(VERSION_TABLE, column("version_num"))
            current = set(await conn.scalars(select(versions.c.version_num)))
            if heads is None or current != heads:
                return Pending(migrate=True, seed=True)
            email = normalize_email(settings.FIRST_SUPERUSER_EMAIL)
            superuser = await conn.scalar(select(User.id).where(User.email == email).limit(1))
            return Pending(migrate=False, seed=superuser is None)
    finally:
        await engine.dispose()


def migrate(config: "Config | None") -> None:
    """alembic upgrade head."""
    # Imported on first use: Alembic takes longer to load than the rest of a start at head.
    from alembic import command
    from alembic.config import Config

    if config is None:
        config = Config(str(ALEMBIC_INI))
        # Logging is already set up here; alembic.ini's would raise the root level to WARNING.
        config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def seed() -> None:
    """The first superuser and each resource's sample rows (app.initial_data)."""
    # Imported on first use: seeding loads every repository, and with them the security stack.
    from app import initial_data

    logger.info("creating initial data")
    asyncio.run(initial_data.main())
    logger.info("initial data created")


def main(config: "Config | None" = None) -> int:
    # One interpreter instead of three: each would import the app again (most of start-up).
    settings.prepare_files()
    if asyncio.run(backend_pre_start.main()) != 0:
        return 1
    # The database Alembic would migrate, as alembic/env.py picks it.
    url = (config.get_main_option("sqlalchemy.url") if config is not None else None) or (
        settings.DATABASE_URL
    )
    todo = asyncio.run(pending(normalize_database_url(url), script_heads(MIGRATIONS)))
    if todo.migrate:
        # Alembic's env.py runs its own event loop, so it runs between the others, not in one.
        migrate(config)
    if todo.seed:
        seed()
    else:
        logger.info("the database is at head and seeded: nothing to do")
    # Said here, once per start and formatted, not by every process that reads the settings.
    if is_placeholder(settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()):
        logger.warning(
            "%s has the placeholder password FIRST_SUPERUSER_PASSWORD: fine locally only",
            settings.FIRST_SUPERUSER_EMAIL,
        )
    return 0


def serve(command: list[str]) -> NoReturn:
    """Run the command in this process's place once the database is ready. uvicorn runs in this
    very interpreter, whose imports (the settings, SQLAlchemy, the models) the app then reuses:
    a second interpreter would import them again, about a fifth of a start."""
    if command[0] == "uvicorn":
        from uvicorn.main import main as uvicorn

        # Each step above disposed of the engine it used: no connection outlives its loop.
        uvicorn.main(args=command[1:], prog_name="uvicorn")  # exits when the server stops
    os.execvp(command[0], command)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    status = main()
    if status != 0 or len(sys.argv) < 2:
        sys.exit(status)
    serve(sys.argv[1:])
