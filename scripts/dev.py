#!/usr/bin/env python3
"""Project task runner: one set of verbs for people, the README and CI. Standard library only."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
# Serving needs only the runtime lock; the dev lock is a superset (same resolution), see lock().
RUNTIME_LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
PY_FILES = ["app", "tests", "alembic", "scripts", "bench"]


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
    if code:
        sys.exit(code)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    return env


def _stamp(lock: Path) -> Path:
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    kind = "" if lock == DEV_LOCK else "run-"
    return VENV / f".installed-{kind}{digest}"


def install(dev: bool = True) -> None:
    """Create .venv and install a lock (dev: everything; else the runtime set); no-op if current."""
    if not (BIN / "python").exists():
        print(f"Creating {VENV.relative_to(ROOT)} ...")
        # upgrade_deps: the pip and setuptools bundled with Python have published advisories.
        venv.EnvBuilder(with_pip=True, upgrade_deps=True).create(VENV)
    # The dev set contains the runtime set, so a venv made by `test` serves `run` as it is.
    if _stamp(DEV_LOCK).exists() or (not dev and _stamp(RUNTIME_LOCK).exists()):
        return
    lock = DEV_LOCK if dev else RUNTIME_LOCK
    print(f"Installing the locked dependencies from {lock.name} ...")
    pip = (BIN / "python", "-m", "pip", "--disable-pip-version-check", "-q")
    # Pins already installed are kept, so `run` then `test` downloads only the difference.
    _run(*pip, "install", "-r", lock)
    for old in VENV.glob(f".installed-{'' if dev else 'run-'}*"):
        old.unlink()
    if dev:
        _stamp(RUNTIME_LOCK).touch()
    _stamp(lock).touch()


def _serve(args: list[str], env: dict[str, str]) -> None:
    """run.sh in this process's place, so signals reach the server and its exit is ours."""
    install(dev=False)
    command = ["bash", str(ROOT / "run.sh"), *args]
    if os.name == "nt":  # no exec there; bash from Git for Windows or WSL
        _run(*command, env=env)
        return
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execvpe("bash", command, env)


def run(args: list[str]) -> None:
    """Migrate, seed and serve (SQLite under ./data unless DATABASE_URL says otherwise)."""
    _serve(args, _env())


def dev(args: list[str]) -> None:
    """Like run, but `fastapi dev`: reloads on code changes, on 127.0.0.1 unless HOST is set."""
    _serve(args, _env() | {"RELOAD": "1"})


def test(args: list[str]) -> None:
    """The whole suite with coverage; TEST_DATABASE_URL=postgresql+asyncpg://... runs it on PG."""
    install()
    _run(BIN / "python", "-m", "pytest", "--cov", "--cov-report=term", *args, env=_env())


def adversarial(args: list[str]) -> None:
    """Only tests/adversarial (fuzzing, JWT attacks, bad input); FUZZ_PROFILE=fast or deep."""
    install()
    _run(BIN / "python", "-m", "pytest", "tests/adversarial", *args, env=_env())


def test_browser(args: list[str]) -> None:
    """Only the browser tests, in headless Chromium (/usr/bin/chromium, or CHROMIUM_PATH)."""
    install()
    _run(BIN / "python", "-m", "pytest", "-m", "browser", "tests/browser", *args, env=_env())


def bench(args: list[str]) -> None:
    """The benchmark against the raw baseline (needs wrk and PostgreSQL); --smoke for seconds."""
    install()
    _run(BIN / "python", "-m", "bench.run", *args, env=_env())


def lint(_: list[str]) -> None:
    install()
    _run(BIN / "ruff", "check", *PY_FILES)
    _run(BIN / "ruff", "format", "--check", *PY_FILES)


def fmt(_: list[str]) -> None:
    install()
    _run(BIN / "ruff", "check", "--fix", *PY_FILES)
    _run(BIN / "ruff", "format", *PY_FILES)


def typecheck(_: list[str]) -> None:
    install()
    _run(BIN / "mypy", env=_env())


def layers(_: list[str]) -> None:
    install()
    _run(BIN / "lint-imports", env=_env())


def check(args: list[str]) -> None:
    """Lint, format check, types and import layers: what CI runs besides the tests."""
    lint(args)
    typecheck(args)
    layers(args)


def new(args: list[str]) -> None:
    """Write a resource slice and register it: `new review --fields "rating:int[1..5]"`."""
    import scaffold  # scripts/ is on sys.path when this file runs

    try:
        written = scaffold.new(ROOT, args)
    except scaffold.ScaffoldError as exc:
        sys.exit(f"dev.py new: {exc}")
    scaffold.tidy(ROOT, written, BIN / "ruff")
    print("Wrote:", *written, sep="\n  ")
    print("Next: read the new files, run `python3 scripts/dev.py test` and `check`.")


def lock(_: list[str]) -> None:
    """Re-pin requirements*.txt from pyproject.toml (records versions only, no index address)."""
    install()
    _run(BIN / "python", "-m", "pip", "-q", "install", "uv")
    common = ("--universal", "--python-version", "3.11", "--quiet", "--no-header")
    # The full set is resolved first, so a dev tool's cap on a shared package (say, typer)
    # holds the runtime pin back too, and the runtime lock is always a subset of the dev lock.
    _run(
        BIN / "uv", "pip", "compile", "pyproject.toml", "--extra", "dev",
        *common, "-o", "requirements-dev.txt",
    )  # fmt: skip
    _run(
        BIN / "uv", "pip", "compile", "pyproject.toml",
        "-c", "requirements-dev.txt", *common, "-o", "requirements.txt",
    )  # fmt: skip


def customize(verb: str) -> Callable[[list[str]], None]:
    """trim SLICE | rename "New Name": see scripts/customize.py."""

    def run_verb(args: list[str]) -> None:
        sys.path.insert(0, str(ROOT / "scripts"))
        import customize

        customize.main(verb, args)

    return run_verb


VERBS = {
    "install": lambda _: install(),
    "run": run,
    "dev": dev,
    "test": test,
    "test-browser": test_browser,
    "adversarial": adversarial,
    "bench": bench,
    "lint": lint,
    "format": fmt,
    "typecheck": typecheck,
    "layers": layers,
    "check": check,
    "lock": lock,
    "new": new,
    "trim": customize("trim"),
    "rename": customize("rename"),
}


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script itself may run on an older one
        sys.exit("Python 3.11 or newer is required.")
    if len(sys.argv) < 2 or sys.argv[1] not in VERBS:
        sys.exit(f"usage: python3 scripts/dev.py {{{'|'.join(VERBS)}}} [args...]")
    VERBS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
