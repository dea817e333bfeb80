"""Shared modules name no resource: a resource lives in its own slice's files."""

from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

# Where a slice's own code lives, one stem per layer; everything else under app/ is shared.
SLICE_FILES = (
    "api/api_v1/endpoints/*.py",
    "crud/crud_*.py",
    "models/*.py",
    "schemas/*.py",
    "clients/*.py",
    "templates/*.html",
    "api/pages.py",  # the pages slice, a view of the recipes
)
# Shared files allowed to name the example resource: the router list and the project's name.
NAMING_ALLOWED = {"api/api_v1/api.py", "core/config.py"}
SHARED_IN_SLICE_FOLDERS = {"models/__init__.py", "schemas/__init__.py", "schemas/common.py"}


def _shared(path: Path) -> bool:
    relative = path.relative_to(APP)
    owned = any(relative.match(pattern) for pattern in SLICE_FILES)
    return str(relative) in SHARED_IN_SLICE_FOLDERS or not owned


def test_shared_modules_name_no_resource() -> None:
    naming = sorted(
        str(path.relative_to(APP))
        for path in APP.rglob("*")
        if path.suffix in {".py", ".html"}
        and _shared(path)
        and str(path.relative_to(APP)) not in NAMING_ALLOWED
        and "recipe" in path.read_text(encoding="utf-8").lower()
    )
    assert naming == []
