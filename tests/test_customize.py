"""scripts/customize.py: the trim table matches the tree and the README, trim deletes exactly
that, rename rewrites every place the project is named."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.utils.server import ROOT, script

customize = script("customize")
NAMES = sorted(customize.SLICES)


@pytest.mark.parametrize("name", NAMES)
def test_every_listed_path_exists_and_the_registration_line_is_there_once(name: str) -> None:
    piece = customize.SLICES[name]
    for path in piece.paths:
        target = ROOT / path
        assert target.is_dir() if path.endswith("/") else target.is_file(), path
    file, line = piece.registration
    assert (ROOT / file).read_text().splitlines().count(line) == 1


def test_readme_trim_section_is_the_table() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Trim what you don't need", 1)[1].split("\n## ", 1)[0]
    rows = [row for row in section.splitlines() if row.startswith("| `")]
    assert rows == customize.readme_rows()
    assert "python3 scripts/dev.py trim SLICE" in section


def test_readme_rename_section_names_the_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Rename the project", 1)[1].split("\n## ", 1)[0]
    assert 'python3 scripts/dev.py rename "' in section


def _copy(paths: list[str], to: Path) -> None:
    for path in paths:
        source, target = ROOT / path, to / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


@pytest.mark.parametrize("name", NAMES)
def test_trim_deletes_the_listed_paths_and_only_the_registration_line(
    name: str, tmp_path: Path
) -> None:
    piece = customize.SLICES[name]
    file, line = piece.registration
    _copy([*piece.paths, file], tmp_path)
    before = (tmp_path / file).read_text().splitlines()

    customize.trim(name, root=tmp_path)

    assert not any((tmp_path / path).exists() for path in piece.paths)
    after = (tmp_path / file).read_text().splitlines()
    assert after == [text for text in before if text != line]
    assert customize.trimmed(piece.paths[0], root=tmp_path)
    assert not customize.trimmed(piece.paths[0], root=ROOT)
    # A second run says why it cannot, and changes nothing.
    with pytest.raises(SystemExit, match="trimmed already"):
        customize.trim(name, root=tmp_path)
    assert (tmp_path / file).read_text().splitlines() == after


def _named_files() -> list[str]:
    listed = subprocess.run(
        ["git", "grep", "-l", "-I", "-e", customize.TITLE, "-e", customize.SLUG],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def test_rename_rewrites_every_place_the_project_is_named(tmp_path: Path) -> None:
    named = _named_files()
    known = [
        "pyproject.toml",
        "app/core/config.py",
        "README.md",
        "docker-compose.yml",
        "compose.dev.yml",
        "deploy/k8s/deployment.yaml",
        "deploy/k8s/kustomization.yaml",
        ".ci/containers.sh",
    ]
    assert set(known) <= set(named)
    _copy(named, tmp_path)

    changed = customize.rename("Quokka Ledger", root=tmp_path)

    assert sorted(changed) == sorted(named)
    for path in named:
        text = (tmp_path / path).read_text()
        assert customize.TITLE not in text, path
        assert customize.SLUG not in text, path
        assert customize.AUDIENCE not in text, path
    assert 'name = "quokka-ledger"' in (tmp_path / "pyproject.toml").read_text()
    config = (tmp_path / "app/core/config.py").read_text()
    assert 'PROJECT_NAME: str = "Quokka Ledger"' in config
    assert 'default="quokka-ledger:"' in config
    assert 'default="quokka-ledger-api"' in config
    # The domain keeps its name.
    assert "RECIPE_CACHE_SECONDS" in config
    assert (tmp_path / "README.md").read_text().startswith("# Quokka Ledger\n")
    assert "APP_IMAGE=quokka-ledger:ci" in (tmp_path / ".ci/containers.sh").read_text()
    assert "namespace: quokka-ledger" in (tmp_path / "deploy/k8s/kustomization.yaml").read_text()


@pytest.mark.parametrize("name", ["", "x", "Acme/Orders", "../etc", "Ünïcode"])
def test_rename_refuses_a_name_that_cannot_be_a_slug(name: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="letters, digits and spaces"):
        customize.rename(name, root=tmp_path)
