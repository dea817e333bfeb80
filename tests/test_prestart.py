"""prestart.sh run by several replicas at once: each migration once, first data once, all exit 0."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from sqlalchemy import func, select, text

from app import backend_pre_start, initial_data, prestart
from app.core.config import settings
from app.crud.crud_recipe import SEED_RECIPES
from app.db.session import make_engine
from app.models import User
from app.models.recipe import Recipe
from app.prestart import ALEMBIC_INI, MIGRATIONS, Pending, pending, script_heads
from tests.utils.db import alembic_config, migrate
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


def test_prestart_sh_runs_a_given_command_once_the_database_is_ready(
    fresh_database_url: str,
) -> None:
    env = script_env(fresh_database_url)
    done = subprocess.run(
        ["bash", "prestart.sh", "sh", "-c", "echo then-served; exit 3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=PRESTART_TIMEOUT_SECONDS,
        check=False,
    )
    output = done.stdout.decode() + done.stderr.decode()
    assert "initial data created" in output  # prepared first...
    assert done.stdout.decode().strip().endswith("then-served")  # ...then the command ran
    assert done.returncode == 3  # in prestart's place: its status is the command's


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
    monkeypatch.setattr(prestart, "migrate", pytest.fail)
    assert prestart.main() == 1


@pytest.mark.parametrize(("password", "warnings"), [("changethis", 1), ("a-real-password-1", 0)])
def test_prestart_main_warns_once_about_a_placeholder_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, password: str, warnings: int
) -> None:
    async def answered() -> int:
        return 0

    async def everything(*_: object) -> Pending:
        return Pending(migrate=True, seed=True)

    monkeypatch.setattr(backend_pre_start, "main", answered)
    monkeypatch.setattr(prestart, "pending", everything)
    monkeypatch.setattr(prestart, "migrate", lambda *_: None)
    monkeypatch.setattr(initial_data, "main", answered)
    monkeypatch.setattr(settings, "FIRST_SUPERUSER_PASSWORD", SecretStr(password))
    assert prestart.main() == 0
    placeholder = [r for r in caplog.records if "placeholder" in r.getMessage()]
    assert len(placeholder) == warnings
    assert all(r.levelname == "WARNING" and r.name == "app.prestart" for r in placeholder)


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setattr(backend_pre_start, "engine", make_engine(url))
    monkeypatch.setattr(initial_data, "engine", make_engine(url))


def test_prestart_main_at_head_and_seeded_neither_migrates_nor_seeds(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = alembic_config(fresh_database_url)
    _use_database(monkeypatch, fresh_database_url)
    assert prestart.main(config) == 0

    async def no_seeding() -> None:
        pytest.fail("seeded a seeded database")

    _use_database(monkeypatch, fresh_database_url)
    monkeypatch.setattr(prestart, "migrate", pytest.fail)
    monkeypatch.setattr(initial_data, "main", no_seeding)
    assert prestart.main(config) == 0


def test_prestart_main_behind_head_migrates_and_seeds(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = alembic_config(fresh_database_url)
    script = ScriptDirectory.from_config(config)
    head = script.get_revision(str(script.get_current_head()))
    assert head is not None
    assert isinstance(head.down_revision, str)
    migrate(fresh_database_url, head.down_revision)
    _use_database(monkeypatch, fresh_database_url)
    assert prestart.main(config) == 0
    versions, superusers, recipes, _ = asyncio.run(_read_outcome(fresh_database_url))
    assert (versions, superusers, recipes) == ([head.revision], 1, len(SEED_RECIPES))


def test_prestart_main_at_head_without_the_superuser_seeds_only(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(fresh_database_url)
    _use_database(monkeypatch, fresh_database_url)
    monkeypatch.setattr(prestart, "migrate", pytest.fail)
    assert prestart.main(alembic_config(fresh_database_url)) == 0
    _, superusers, recipes, _ = asyncio.run(_read_outcome(fresh_database_url))
    assert (superusers, recipes) == (1, len(SEED_RECIPES))


async def test_pending_on_a_new_sqlite_file_migrates_and_seeds(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    assert await pending(url, script_heads(MIGRATIONS)) == Pending(migrate=True, seed=True)


def test_script_heads_are_alembics() -> None:
    config = Config(str(ALEMBIC_INI))
    assert Path(str(config.get_main_option("script_location"))) == MIGRATIONS
    assert script_heads(MIGRATIONS) == frozenset(ScriptDirectory.from_config(config).get_heads())


def _revision(versions: Path, revision: str, down: str, extra: str = "") -> None:
    (versions / f"{revision}_x.py").write_text(
        f'"""x"""\n\nrevision: str = "{revision}"\ndown_revision = {down}\n{extra}\n'
    )


@pytest.mark.parametrize(
    ("scripts", "heads"),
    [
        ([("a", "None"), ("b", '"a"'), ("c", '"a"')], {"b", "c"}),
        ([("a", "None"), ("b", '"a"'), ("c", '"a"'), ("d", '("b", "c")')], {"d"}),
        ([("a", "None"), ("b", '"a"', 'branch_labels = ("x",)')], None),
        ([("a", "None"), ("b", '"a"', 'depends_on = "a"')], None),
        ([("a", "None"), ("b", "compute()")], None),
        ([], None),
    ],
)
def test_script_heads_follow_branches_and_merges_or_say_they_cannot(
    tmp_path: Path, scripts: list[tuple[str, ...]], heads: set[str] | None
) -> None:
    expected = None if heads is None else frozenset(heads)
    (tmp_path / "versions").mkdir()
    for script in scripts:
        _revision(tmp_path / "versions", *script)
    assert script_heads(tmp_path) == expected


def test_importing_the_app_and_prestart_leaves_optional_libraries_unloaded() -> None:
    """Start-up time: Alembic, redis-py, authlib, aiosmtplib, Jinja2 and joserfc load when used."""
    lazy = ("alembic", "redis", "authlib", "aiosmtplib", "jinja2", "joserfc")
    code = f"import sys, app.main, app.prestart; print(*[m for m in {lazy!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert loaded.stdout.split() == []
