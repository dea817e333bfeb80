"""prestart.sh run by several replicas at once: each migration once, first data once, all exit 0."""

import asyncio
import subprocess
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from sqlalchemy import func, select, text

from app import backend_pre_start, initial_data, prestart
from app.core.config import settings
from app.crud.crud_recipe import SEED_RECIPES
from app.db.session import make_engine
from app.models import User
from app.models.recipe import Recipe
from tests.utils.db import alembic_config
from tests.utils.server import ROOT, script_env

REPLICAS = 4
PRESTART_TIMEOUT_SECONDS = 180


async def _read_outcome(url: str) -> tuple[list[str], int, int, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            versions = list(await conn.scalars(text("SELECT version_num FROM alembic_version")))
            superusers = await conn.scalar(
                select(func.count()).select_from(User).where(User.is_superuser)
            )
            recipes = await conn.scalar(select(func.count()).select_from(Recipe))
            distinct = await conn.scalar(
                select(func.count()).select_from(
                    select(Recipe.submitter_id, Recipe.url).distinct().subquery()
                )
            )
    finally:
        await engine.dispose()
    return versions, int(superusers or 0), int(recipes or 0), int(distinct or 0)


def test_prestart_replicas_at_once_migrate_and_seed_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = script_env(fresh_database_url)
    logs = [tmp_path / f"prestart-{n}.log" for n in range(REPLICAS)]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    ["bash", "prestart.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    codes = [proc.wait(timeout=PRESTART_TIMEOUT_SECONDS) for proc in procs]
    outputs = [log.read_text() for log in logs]
    assert codes == [0] * REPLICAS, "\n----\n".join(outputs)

    # Alembic logs "Running upgrade <down> -> <rev>" each time it applies a revision.
    script = ScriptDirectory.from_config(alembic_config(fresh_database_url))
    applied = "".join(outputs)
    for revision in script.walk_revisions():
        assert applied.count(f" -> {revision.revision}, ") == 1, revision.revision

    versions, superusers, recipes, distinct = asyncio.run(_read_outcome(fresh_database_url))
    assert versions == [script.get_current_head()]
    assert superusers == 1
    assert recipes == distinct == len(SEED_RECIPES)


# Synchronous: prestart runs one event loop per step, as it does in its own process.
def test_prestart_main_waits_migrates_and_seeds(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(fresh_database_url)
    monkeypatch.setattr(backend_pre_start, "engine", engine)
    monkeypatch.setattr(initial_data, "engine", engine)
    assert prestart.main(alembic_config(fresh_database_url)) == 0
    versions, superusers, recipes, _ = asyncio.run(_read_outcome(fresh_database_url))
    script = ScriptDirectory.from_config(alembic_config(fresh_database_url))
    assert (versions, superusers, recipes) == ([script.get_current_head()], 1, len(SEED_RECIPES))


def test_prestart_main_stops_when_the_database_never_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def unreachable() -> int:
        return 1

    monkeypatch.setattr(backend_pre_start, "main", unreachable)
    monkeypatch.setattr("app.prestart.command.upgrade", pytest.fail)
    assert prestart.main() == 1


@pytest.mark.parametrize(("password", "warnings"), [("changethis", 1), ("a-real-password-1", 0)])
def test_prestart_main_warns_once_about_a_placeholder_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, password: str, warnings: int
) -> None:
    async def answered() -> int:
        return 0

    monkeypatch.setattr(backend_pre_start, "main", answered)
    monkeypatch.setattr("app.prestart.command.upgrade", lambda *_: None)
    monkeypatch.setattr(initial_data, "main", answered)
    monkeypatch.setattr(settings, "FIRST_SUPERUSER_PASSWORD", SecretStr(password))
    assert prestart.main() == 0
    placeholder = [r for r in caplog.records if "placeholder" in r.getMessage()]
    assert len(placeholder) == warnings
    assert all(r.levelname == "WARNING" and r.name == "app.prestart" for r in placeholder)
