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
def test_a_slice_is_all_there_or_trimmed_whole(name: str) -> None:
    piece = customize.SLICES[name]
    file, line = piece.registration
    registered = (ROOT / file).read_text().splitlines().count(line)
    present = [
        (ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).is_file()
        for path in piece.paths
    ]
    if registered:
        # Every path the table lists exists, and the line is there once.
        assert (registered, present) == (1, [True] * len(present))
    else:
        # Trimmed: nothing the table lists is left behind.
        assert not any((ROOT / path).exists() for path in piece.paths)


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


def _slice_tree(name: str, root: Path) -> list[str]:
    """The slice's paths (stand-ins, so this works after a real trim too) and its registration
    file with the line in it; returns that file's lines."""
    piece = customize.SLICES[name]
    for path in piece.paths:
        target = root / path
        if path.endswith("/"):
            (target / "sub").mkdir(parents=True)
            (target / "sub" / "kept.py").write_text("x = 1\n")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x = 1\n")
    file, line = piece.registration
    lines: list[str] = (ROOT / file).read_text().splitlines()
    if line not in lines:
        lines.insert(len(lines) // 2, line)
    (root / file).parent.mkdir(parents=True, exist_ok=True)
    (root / file).write_text("\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize("name", NAMES)
def test_trim_deletes_the_listed_paths_and_only_the_registration_line(
    name: str, tmp_path: Path
) -> None:
    piece = customize.SLICES[name]
    file, line = piece.registration
    before = _slice_tree(name, tmp_path)
    assert customize.trimmed(piece.paths[0], root=tmp_path) is False

    customize.trim(name, root=tmp_path)

    assert not any((tmp_path / path).exists() for path in piece.paths)
    after = (tmp_path / file).read_text().splitlines()
    assert after == [text for text in before if text != line]
    assert customize.trimmed(piece.paths[0], root=tmp_path)
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
