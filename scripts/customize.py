"""Make a clone yours: trim the optional slices you don't need, rename the project.

Behind `python3 scripts/dev.py trim SLICE` and `python3 scripts/dev.py rename "New Name"`.
SLICES is the one list of what each slice owns; the README's "Trim what you don't need"
section is checked against it (tests/test_customize.py). Standard library only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Slice:
    """An optional part: the paths it owns (a trailing / marks a folder) and the one line
    that registers it."""

    summary: str
    paths: tuple[str, ...]
    registration: tuple[str, str]  # (file, the exact line)


SLICES: dict[str, Slice] = {
    "ideas": Slice(
        "recipe ideas from Reddit and importing one as a recipe",
        (
            "app/api/api_v1/endpoints/idea.py",
            "app/clients/ideas.py",
            "app/clients/cache.py",
            "app/schemas/idea.py",
            "tests/api/api_v1/test_idea.py",
            "tests/clients/",
            "tests/utils/idea.py",
        ),
        ("app/api/api_v1/api.py", '    "app.api.api_v1.endpoints.idea",'),
    ),
    "pages": Slice(
        "the HTML pages at / and /recipes/{id}",
        (
            "app/api/pages.py",
            "app/templates/",
            "app/static/",
            "tests/api/test_pages.py",
            "tests/api/test_pages_sso.py",
            "tests/browser/test_pages.py",
            "tests/sso/test_browser_sso.py",
        ),
        ("app/main.py", '    "app.api.pages",'),
    ),
    "metrics": Slice(
        "Prometheus metrics at /metrics",
        (
            "app/api/metrics.py",
            "app/core/metrics.py",
            "tests/api/test_metrics.py",
        ),
        ("app/main.py", '    "app.api.metrics",'),
    ),
    "email": Slice(
        "email over SMTP; without it password recovery answers 503",
        ("app/core/email.py", "tests/core/test_email.py", "tests/utils/smtp.py"),
        ("app/main.py", '    "app.core.email",'),
    ),
}


def trim(name: str, root: Path = ROOT) -> list[str]:
    """Delete a slice's paths and its registration line; returns what went."""
    piece = SLICES[name]
    file, line = piece.registration
    source = root / file
    lines = source.read_text().splitlines(keepends=True)
    found = [i for i, text in enumerate(lines) if text.rstrip("\n") == line]
    if len(found) != 1:
        raise SystemExit(f"{file}: {line.strip()!r} is not there (was {name} trimmed already?)")
    del lines[found[0]]
    source.write_text("".join(lines))
    removed = [f"{file}: {line.strip()}"]
    for path in piece.paths:
        target = root / path
        if path.endswith("/"):
            shutil.rmtree(target)
        else:
            target.unlink()
        removed.append(path)
    return removed


# How the project is named now; rename() replaces each form.
TITLE = "Recipe Service"
SLUG = "recipe-service"
AUDIENCE = "recipe-api"
NAME = re.compile(r"[A-Za-z][A-Za-z0-9 ]{0,38}[A-Za-z0-9]")
# Files rename() leaves alone: binary, and the name of the recipe domain rather than the project.
SKIP_SUFFIXES = frozenset({".png", ".ico", ".jpg", ".db"})


def _tracked(root: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False, text=True
    )
    if listed.returncode == 0:
        return [root / name for name in listed.stdout.split("\0") if name]
    skip = {".git", ".venv", "data", "node_modules"}
    return [p for p in root.rglob("*") if p.is_file() and not skip & set(p.relative_to(root).parts)]


def rename(title: str, root: Path = ROOT) -> list[str]:
    """Rename the project in every tracked text file: the title ("Recipe Service"), the slug
    ("recipe-service": package, image, compose, Kubernetes, key prefix, token issuer) and the
    token audience ("recipe-api"). Returns the files changed."""
    if not NAME.fullmatch(title):
        raise SystemExit("a name is letters, digits and spaces, 2 to 40 of them")
    slug = re.sub(r"\s+", "-", title.strip().lower())
    forms = ((TITLE, title), (SLUG, slug), (AUDIENCE, f"{slug}-api"))
    changed = []
    for path in _tracked(root):
        if path.suffix in SKIP_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = text
        for old, replacement in forms:
            new = new.replace(old, replacement)
        if new != text:
            path.write_text(new)
            changed.append(str(path.relative_to(root)))
    return changed


def main(verb: str, args: list[str]) -> None:
    if verb == "trim":
        if len(args) != 1 or args[0] not in SLICES:
            sys.exit(f"usage: python3 scripts/dev.py trim {{{'|'.join(SLICES)}}}")
        for removed in trim(args[0]):
            print(f"removed {removed}")
    else:
        if len(args) != 1:
            sys.exit('usage: python3 scripts/dev.py rename "New Name"')
        for path in rename(args[0]):
            print(f"renamed in {path}")


def readme_rows() -> list[str]:
    """The rows of the README's "Trim what you don't need" table, as this table has them."""
    rows = []
    for name, piece in SLICES.items():
        file, line = piece.registration
        paths = ", ".join(f"`{path}`" for path in piece.paths)
        rows.append(
            f"| `{name}` | {piece.summary} | {paths}; the line `{line.strip()}` in `{file}` |"
        )
    return rows


def trimmed(path: str, root: Path = ROOT) -> bool:
    """Whether `path` belonged to a slice that has been trimmed (its registration is gone), so
    a doc citing it is no longer expected to find it."""
    for piece in SLICES.values():
        owns = any(path == p or (p.endswith("/") and path.startswith(p)) for p in piece.paths)
        file, line = piece.registration
        if owns and line not in (root / file).read_text().splitlines():
            return True
    return False
