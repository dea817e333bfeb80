#!/usr/bin/env bash
# CI: the starter as a new user meets it. A clone of the commit under test is trimmed, extended
# with a generated resource, then linted, type-checked and tested (SQLite) with no hand edit.
# Reuses this checkout's .venv (a symlink) and mypy cache, so it installs nothing.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
started=$SECONDS

git clone -q --no-hardlinks "$src" "$scratch/repo"
cd "$scratch/repo"
ln -s "$src/.venv" .venv
echo .venv >> .git/info/exclude  # a symlink, which .gitignore's `.venv/` does not match
if [ -d "$src/.mypy_cache" ]; then cp -r "$src/.mypy_cache" .; fi
export PYTHONDONTWRITEBYTECODE=1

# --- Trim steps, before the scaffold (each leaves a green suite on its own) ---------------------
python3 scripts/dev.py trim ideas

# --- The scaffold --------------------------------------------------------------------------------
python3 scripts/dev.py new review --fields "rating:int[1..5] comment:str[1..2000]" --parent recipe
git add -A
echo "The scaffold changed:"
git diff --cached --stat

# --- Checks and the SQLite suite, as written ----------------------------------------------------
python3 scripts/dev.py check
# Coverage is measured by the main legs; here the suite must pass.
.venv/bin/python -m pytest -q -p no:cacheprovider
echo "scratch copy passed in $((SECONDS - started)) s"
