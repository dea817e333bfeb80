"""`dev.py new` in a copy of the project's wiring points: the files it writes, the next migration,
the registration, ruff; and its refusals. CI runs the written slice's suite (.ci/scratch.sh)."""

import re
import shutil
import subprocess
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

import pytest

from tests.utils.server import ROOT

FIELDS = "rating:int[1..5] comment:str[1..2000] hidden:bool"
# A name no real resource is likely to take, so this runs after the scaffold has been used too.
NAME = "scaffold_sample"


def _scaffold() -> ModuleType:
    spec = spec_from_file_location("scaffold_script", ROOT / "scripts" / "scaffold.py")
    assert spec is not None
    assert spec.loader is not None
    module = module_from_spec(spec)
    # dataclasses look their module up while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """What the scaffold reads: the migrations, the router registry and the models."""
    for part in ("alembic/versions", "app/models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "app/api/api_v1/endpoints").mkdir(parents=True)
    shutil.copy(ROOT / "app/api/api_v1/api.py", tmp_path / "app/api/api_v1/api.py")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for part in ("app/schemas", "app/crud", "tests/utils", "tests/api/api_v1"):
        (tmp_path / part).mkdir(parents=True, exist_ok=True)
    return tmp_path


def _head() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "heads"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()[0]


def test_new_writes_a_slice_and_the_next_migration(project: Path) -> None:
    scaffold = _scaffold()
    head = _head()
    written = scaffold.new(project, [NAME, "--fields", FIELDS, "--parent", "recipe"])
    scaffold.tidy(project, written, ROOT / ".venv/bin/ruff")

    assert len(written) <= 10
    names = {str(p) for p in written}
    assert {
        f"app/models/{NAME}.py",
        f"app/schemas/{NAME}.py",
        f"app/crud/crud_{NAME}.py",
        f"app/api/api_v1/endpoints/{NAME}.py",
        "app/api/api_v1/api.py",
        f"tests/utils/{NAME}.py",
        f"tests/api/api_v1/test_{NAME}.py",
    } <= names
    [migration] = [p for p in written if p.parts[:2] == ("alembic", "versions")]
    text = (project / migration).read_text()
    number = f"{int(head) + 1:04d}"
    assert migration.name == f"{number}_create_{NAME}_table.py"
    assert f'revision: str = "{number}"' in text
    assert f'down_revision: str | None = "{head}"' in text
    api = (project / "app/api/api_v1/api.py").read_text()
    assert api.rstrip().endswith(f"api_router.include_router({NAME}.router)")
    imported = re.search(r"^from app\.api\.api_v1\.endpoints import ([^\n(]+|\([^)]*\))", api, re.M)
    assert imported is not None
    assert NAME in re.findall(r"\w+", imported[1])
    model = (project / f"app/models/{NAME}.py").read_text()
    assert 'ForeignKey("recipe.id", ondelete="CASCADE")' in model
    assert "hidden: Mapped[bool]" in model
    lint = subprocess.run(
        [ROOT / ".venv/bin/ruff", "check", *names],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
    for path in written:
        compile((project / path).read_text(), str(path), "exec")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recipe", "--fields", "rating:int"], "exists already"),
        ([NAME, "--fields", "rating:float"], "bad field 'rating:float'"),
        ([NAME, "--fields", "rating:int[5..1]"], "min <= max"),
        ([NAME, "--fields", "id:int"], "reserved"),
        ([NAME, "--fields", "a:int a:str"], "appears twice"),
        ([NAME, "--fields", "a:int", "--parent", "nothing"], "no parent resource"),
        (["Review", "--fields", "a:int"], "bad resource name"),
    ],
)
def test_new_refuses_with_a_clear_message(project: Path, args: list[str], message: str) -> None:
    scaffold = _scaffold()
    with pytest.raises(scaffold.ScaffoldError, match=re.escape(message)):
        scaffold.new(project, args)
    assert not (project / f"app/models/{NAME}.py").exists()


def test_register_keeps_a_wrapped_import(tmp_path: Path) -> None:
    # Once ruff wraps the import in parentheses, a further resource is added inside them.
    api = tmp_path / "api.py"
    api.write_text(
        "from app.api.api_v1.endpoints import (\n    auth,\n    recipe,\n)\n\napi_router = 1\n"
    )
    text = _scaffold().register(api, "note")
    assert "from app.api.api_v1.endpoints import auth, note, recipe\n" in text
    assert text.endswith("api_router.include_router(note.router)\n")


def test_dev_py_new_exits_with_the_reason() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/dev.py", "new", "recipe", "--fields", "label:str"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "dev.py new: 'recipe' exists already" in result.stderr
