"""Settings: fail-fast outside local mode, list parsing, the persisted local secret."""

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import (
    PRIVATE_NETWORKS,
    Settings,
    is_placeholder,
    local_secret,
    normalize_database_url,
)

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "k" * 20 + "Q7r9ZpX2mW4vN8tB1cD5"
GOOD = {
    "SECRET_KEY": STRONG_SECRET,
    "FIRST_SUPERUSER_PASSWORD": "a-real-admin-password",
    "ALLOWED_HOSTS": "api.example.com",
}


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
@pytest.mark.parametrize("secret", [None, "", "short-but-random-9f8e", "changethis" * 5, "secret"])
def test_settings_refuse_weak_secret_key_outside_local(
    environment: str, secret: str | None
) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        make(**(GOOD | {"ENVIRONMENT": environment, "SECRET_KEY": secret}))


@pytest.mark.parametrize("password", ["changethis", "Password", "short"])
def test_settings_refuse_placeholder_superuser_password_in_production(password: str) -> None:
    with pytest.raises(ValidationError, match="FIRST_SUPERUSER_PASSWORD"):
        make(**(GOOD | {"ENVIRONMENT": "production", "FIRST_SUPERUSER_PASSWORD": password}))


def test_settings_accept_strong_values_in_production() -> None:
    settings = make(**(GOOD | {"ENVIRONMENT": "production"}))
    assert settings.secret_key == STRONG_SECRET


@pytest.mark.parametrize("hosts", ["*", "", "api.example.com,*"])
def test_production_refuses_to_start_without_a_host_list(hosts: str) -> None:
    with pytest.raises(ValidationError, match="ALLOWED_HOSTS must list"):
        make(**(GOOD | {"ENVIRONMENT": "production", "ALLOWED_HOSTS": hosts}))
    # Elsewhere `*` stays the default and the same values start.
    make(**(GOOD | {"ENVIRONMENT": "staging", "ALLOWED_HOSTS": hosts}))


@pytest.mark.parametrize(
    ("environment", "value", "networks"),
    [
        ("production", None, PRIVATE_NETWORKS),
        ("production", "", PRIVATE_NETWORKS),
        ("production", "*", []),
        ("production", "10.1.0.0/16", ["10.1.0.0/16"]),
        ("staging", None, []),
        ("staging", "192.168.1.7", ["192.168.1.7/32"]),
    ],
)
def test_metrics_networks_default_to_private_in_production(
    environment: str, value: str | None, networks: list[str]
) -> None:
    values = GOOD | {"ENVIRONMENT": environment}
    if value is not None:
        values["METRICS_ALLOWED_NETWORKS"] = value
    assert make(**values).metrics_networks == networks


def test_settings_local_mode_starts_with_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = make(ENVIRONMENT="local", SECRET_KEY=None, FIRST_SUPERUSER_PASSWORD="changethis")
    second = make(ENVIRONMENT="local", SECRET_KEY=None)
    # Validating settings touches no file; start-up does.
    assert not (tmp_path / "data").exists()
    with pytest.raises(RuntimeError, match="prepare_files"):
        _ = first.secret_key
    first.prepare_files()
    second.prepare_files()
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    secret_file = tmp_path / "data" / ".secret_key"
    assert secret_file.read_text() == first.secret_key
    assert secret_file.stat().st_mode & 0o077 == 0


def test_prepare_files_makes_the_sqlite_directory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make(**GOOD, DATABASE_URL="sqlite:///./nested/dir/app.db").prepare_files()
    assert (tmp_path / "nested" / "dir").is_dir()
    assert not (tmp_path / "nested" / "dir" / "app.db").exists()
    make(**GOOD, DATABASE_URL="postgresql://u@127.0.0.1/x").prepare_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested"]


def test_importing_the_app_writes_no_file(tmp_path: Path) -> None:
    """A fresh interpreter in an empty directory, local mode with no secret: import only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "DATABASE_URL", "ENVIRONMENT"}
    }
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(
        [sys.executable, "-c", "import app.main, app.prestart"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=60,
    )
    assert list(tmp_path.iterdir()) == []


def _secret_in_process(path: str, queue: "multiprocessing.Queue[str]") -> None:
    queue.put(local_secret(Path(path)))


def test_local_secret_is_shared_by_racing_workers(tmp_path: Path) -> None:
    path = str(tmp_path / "data" / ".secret_key")
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    workers = [ctx.Process(target=_secret_in_process, args=(path, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    secrets_seen = {queue.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    assert len(secrets_seen) == 1
    assert secrets_seen == {Path(path).read_text()}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["https://a.example", "https://b.example/"]', ["https://a.example", "https://b.example"]),
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ("", []),
    ],
)
def test_settings_parse_origin_lists(
    raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", raw)
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com,localhost")
    settings = make()
    assert expected == settings.BACKEND_CORS_ORIGINS
    assert settings.ALLOWED_HOSTS == ["api.example.com", "localhost"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./data/app.db", "sqlite+aiosqlite:///./data/app.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_normalize_database_url_picks_async_driver(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected
    assert expected == make(DATABASE_URL=url).DATABASE_URL


@pytest.mark.parametrize(
    ("value", "expected"),
    [("changethis", True), ("ChangeThis-please", True), ("", True), ("tr0ub4dor&3-horse", False)],
)
def test_is_placeholder(value: str, expected: bool) -> None:
    assert is_placeholder(value) is expected


def test_settings_lowercase_superuser_email() -> None:
    assert (
        make(FIRST_SUPERUSER_EMAIL=" Admin@Example.COM ").FIRST_SUPERUSER_EMAIL
        == "admin@example.com"
    )


def test_env_example_loads_in_local_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    for name in ("ENVIRONMENT", "SECRET_KEY", "FIRST_SUPERUSER_PASSWORD", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=example)
    assert settings.ENVIRONMENT == "local"
    settings.prepare_files()
    assert len(settings.secret_key) >= 32
    documented = {
        line.lstrip("# ").split("=", 1)[0]
        for line in example.read_text().splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].isupper()
    }
    assert set(Settings.model_fields) - {"PROJECT_NAME", "API_V1_STR"} <= documented


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["recipes", "Cooking_101"]', ["recipes", "Cooking_101"]),
        ("recipes, easyrecipes ,", ["recipes", "easyrecipes"]),
    ],
)
def test_settings_parse_ideas_subreddits(
    raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDEAS_SUBREDDITS", raw)
    assert expected == make().IDEAS_SUBREDDITS


def test_settings_ideas_defaults() -> None:
    settings = make()
    assert settings.IDEAS_SUBREDDITS == ["recipes", "easyrecipes", "TopSecretRecipes"]
    assert settings.IDEAS_BASE_URL == "https://www.reddit.com"
    assert settings.REDIS_URL is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "name at least one subreddit"),
        ("recipes,../admin", "not subreddit names"),
        ("recipes,a", "not subreddit names"),
        ('["recipes", "x y"]', "not subreddit names"),
        ("recipes,Recipes", "listed twice"),
    ],
)
def test_settings_refuse_bad_ideas_subreddits(raw: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(IDEAS_SUBREDDITS=raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        (" https://mirror.example/reddit/ ", "https://mirror.example/reddit"),
    ],
)
def test_settings_normalize_ideas_base_url(raw: str, expected: str) -> None:
    assert expected == make(IDEAS_BASE_URL=raw).IDEAS_BASE_URL


@pytest.mark.parametrize(
    "raw", ["ftp://example.com", "example.com", "https://example.com/?q=1", "https://a b"]
)
def test_settings_refuse_bad_ideas_base_url(raw: str) -> None:
    with pytest.raises(ValidationError, match="IDEAS_BASE_URL"):
        make(IDEAS_BASE_URL=raw)


def test_settings_auth_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RATE_LIMIT_LOGIN_FAILURES", "RATE_LIMIT_AUTH_PER_IP", "REDIS_URL", "SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = make()
    assert settings.RATE_LIMIT_LOGIN_FAILURES == "5/15minutes"
    assert settings.RATE_LIMIT_AUTH_PER_IP == "20/minute"
    assert (settings.REFRESH_TOKEN_EXPIRE_DAYS, settings.PASSWORD_RESET_EXPIRE_MINUTES) == (14, 30)
    assert settings.REDIS_URL is None
    assert settings.SMTP_HOST is None
    assert settings.SMTP_TLS is True


@pytest.mark.parametrize("value", ["off", "OFF", "", "  "])
def test_settings_rate_limit_off(value: str) -> None:
    settings = make(RATE_LIMIT_LOGIN_FAILURES=value, RATE_LIMIT_AUTH_PER_IP=value)
    assert settings.RATE_LIMIT_LOGIN_FAILURES is None
    assert settings.RATE_LIMIT_AUTH_PER_IP is None


@pytest.mark.parametrize("value", ["20", "twenty/minute", "5/fortnight", "0/minute"])
def test_settings_refuse_a_malformed_rate_limit(value: str) -> None:
    with pytest.raises(ValidationError, match="invalid rate limit"):
        make(RATE_LIMIT_AUTH_PER_IP=value)


def test_settings_blank_redis_and_smtp_mean_unset() -> None:
    settings = make(REDIS_URL=" ", SMTP_HOST="", SMTP_USER="")
    assert (settings.REDIS_URL, settings.SMTP_HOST, settings.SMTP_USER) == (None, None, None)
