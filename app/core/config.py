"""Settings from the environment (and .env), validated once at start-up."""

import ipaddress
import json
import logging
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    EmailStr,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from app.core.rate_limit import parse_limit

logger = logging.getLogger(__name__)

Environment = Literal["local", "test", "staging", "production"]
CommaList = Annotated[list[str], NoDecode]

DATA_DIR = Path("data")
LOCAL_SECRET_FILE = DATA_DIR / ".secret_key"
MIN_SECRET_LENGTH = 32
PLACEHOLDERS = frozenset({"", "secret", "password", "changeme", "change-me", "change_me"})
# Loopback, RFC 1918 and IPv6 unique local addresses: /metrics' production default.
PRIVATE_NETWORKS = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
]
SUBREDDIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")


def is_placeholder(value: str) -> bool:
    """A value copied from an example file or a tutorial, not chosen by a person."""
    lowered = value.strip().lower()
    return lowered in PLACEHOLDERS or lowered.startswith("changethis")


def local_secret(path: Path = LOCAL_SECRET_FILE) -> str:
    """A secret generated once and kept on disk, so every local worker signs with the same key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(secrets.token_urlsafe(48))
    tmp.chmod(0o600)
    try:
        # link() fails if another worker won the race; then its key is the one to use.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def normalize_database_url(url: str) -> str:
    """Accept the common spellings and pick the async driver for each database."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    PROJECT_NAME: str = "Recipe Service"
    PROJECT_DESCRIPTION: str = Field(
        default=(
            "Recipes submitted by users and browsable by anyone. Log in with the OAuth2 "
            "password flow (`username` is the email) and send the token as "
            "`Authorization: Bearer <token>`. Lists are keyset-paged: pass a page's "
            '`next_cursor` as `cursor`. Errors are `{"detail": ...}`.'
        ),
        description="The OpenAPI description (Markdown).",
    )
    CONTACT_NAME: str | None = "Recipe Service maintainers"
    CONTACT_EMAIL: EmailStr | None = None
    CONTACT_URL: HttpUrl | None = None
    DOCS_ENABLED: bool = Field(
        default=True, description="Serve /docs, /redoc and /openapi.json; off means 404."
    )
    API_V1_STR: str = "/api/v1"
    ENVIRONMENT: Environment = "local"

    SECRET_KEY: SecretStr | None = Field(
        default=None,
        description="HMAC key for JWTs. Optional in local mode; required (32+ chars) elsewhere.",
    )
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1, le=60 * 24 * 30)
    JWT_ISSUER: str = Field(
        default="recipe-service",
        min_length=1,
        description="`iss` of access tokens, checked on each: one per deployment.",
    )
    JWT_AUDIENCE: str = Field(
        default="recipe-api",
        min_length=1,
        description="`aud` of access tokens, checked on each: deployments sharing a "
        "SECRET_KEY then refuse each other's tokens.",
    )

    DATABASE_URL: str = f"sqlite+aiosqlite:///./{DATA_DIR}/app.db"
    DB_POOL_SIZE: int = Field(default=20, ge=1)
    DB_MAX_OVERFLOW: int = Field(default=0, ge=0)
    DB_POOL_TIMEOUT: float = Field(default=10.0, gt=0)
    SQLITE_BUSY_TIMEOUT_MS: int = Field(default=5000, ge=0)

    BACKEND_CORS_ORIGINS: CommaList = []
    ALLOWED_HOSTS: CommaList = Field(
        default=["*"], description="Host headers served; production must list them (no `*`)."
    )

    FIRST_SUPERUSER_EMAIL: str = "admin@example.com"
    FIRST_SUPERUSER_PASSWORD: SecretStr = SecretStr("changethis")

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["json", "console"] | None = Field(
        default=None, description="Default: console in local and test, json elsewhere."
    )

    REDIS_URL: str | None = None
    REDIS_KEY_PREFIX: str = Field(
        default="recipe-service:", description="Begins every key: caches and rate limits."
    )
    REDIS_TIMEOUT_SECONDS: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="Budget for all of one request's Redis calls; past it, Redis is skipped.",
    )
    REDIS_COOLDOWN_SECONDS: float = Field(
        default=5.0,
        ge=0,
        description="After a Redis failure, skip Redis this long (caches miss, limits count "
        "in memory) instead of waiting on it per call.",
    )

    MAX_REQUEST_BODY_BYTES: int = Field(default=1024 * 1024, ge=1)
    MAX_REQUEST_HEADER_BYTES: int = Field(
        default=32 * 1024, ge=1024, description="Request line and headers; more answer 431."
    )
    MAX_REQUEST_HEADERS: int = Field(default=100, ge=10, description="More answer 431.")
    REQUEST_RECEIVE_TIMEOUT_SECONDS: float = Field(
        default=30.0,
        gt=0,
        description="Time for a request (head and body) to arrive; slower ones answer 408.",
    )
    GZIP_MIN_BYTES: int = Field(default=1024, ge=0)
    PUBLIC_CACHE_SECONDS: int = Field(
        default=30,
        ge=0,
        description="max-age of anonymous reads of routes declaring public caching.",
    )
    ITEM_CACHE_SECONDS: int = Field(  # type: ignore[pydantic-alias]
        default=60,
        ge=0,
        # The first release named it for its one user; that name still works.
        validation_alias=AliasChoices("ITEM_CACHE_SECONDS", "RECIPE_CACHE_SECONDS"),
        description="Redis cache-aside TTL of single items read by id; 0 turns it off.",
    )

    # The settings of the optional slices (metrics, ideas, email) stay when one is trimmed:
    # nothing else reads them, so they are harmless.
    METRICS_ENABLED: bool = True
    METRICS_ALLOWED_NETWORKS: CommaList | None = Field(
        default=None,
        description="Networks that may read /metrics; `*` allows everyone. Default: everyone, "
        "but in production loopback and private networks only.",
    )

    IDEAS_BASE_URL: str = "https://www.reddit.com"
    IDEAS_SUBREDDITS: CommaList = ["recipes", "easyrecipes", "TopSecretRecipes"]
    IDEAS_LIMIT_MAX: int = Field(default=25, ge=1, le=100)
    IDEAS_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    IDEAS_CACHE_SECONDS: float = Field(default=300.0, ge=0)
    IDEAS_FAILURE_CACHE_SECONDS: float = Field(
        default=15.0, ge=0, description="How long a source that failed is not asked again."
    )

    PASSWORD_HASH_MEMORY_MIB: int = Field(
        default=256,
        ge=64,
        description="Memory concurrent password hashes may use; 64 MiB each, at most one per CPU.",
    )
    PASSWORD_HASH_QUEUE: int = Field(
        default=32, ge=0, description="Passwords that may wait for a hash; more answer 503."
    )

    IDEMPOTENCY_KEY_EXPIRE_HOURS: int = Field(
        default=24,
        ge=1,
        le=24 * 30,
        description="How long a write's first answer is kept for retries with its Idempotency-Key.",
    )

    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=14, ge=1, le=365)
    PASSWORD_RESET_EXPIRE_MINUTES: int = Field(default=30, ge=1, le=60 * 24)

    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USER: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_TLS: bool = Field(default=True, description="STARTTLS; implicit TLS on port 465.")
    EMAILS_FROM: str = "Recipe Service <noreply@example.com>"

    RATE_LIMIT_LOGIN_FAILURES: str | None = Field(
        default="5/15minutes",
        description="Password checks per account from one client network; `off` disables.",
    )
    RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: str | None = Field(
        default="50/hour",
        description="Password checks per account from all networks together; `off` disables.",
    )
    RATE_LIMIT_LOGIN_IPV4_PREFIX: int = Field(
        default=24,
        ge=8,
        le=32,
        description="IPv4 clients share a per-account login budget per network of this length "
        "(IPv6: RATE_LIMIT_IPV6_PREFIX).",
    )
    RATE_LIMIT_DEFAULT: str | None = Field(
        default="300/minute", description="API requests per client IP; `off` or empty disables."
    )
    RATE_LIMIT_RECOVERY_PER_ACCOUNT: str | None = Field(
        default="3/hour",
        description="Password recovery emails per address, however many are asked for; `off` "
        "disables.",
    )
    RATE_LIMIT_AUTH_PER_IP: str | None = Field(
        default="20/minute", description="Auth requests per client IP; `off` disables."
    )
    RATE_LIMIT_IPV6_PREFIX: int = Field(
        default=64,
        ge=32,
        le=128,
        description="IPv6 clients share per-IP limits per network of this prefix length.",
    )

    @field_validator(
        "BACKEND_CORS_ORIGINS", "ALLOWED_HOSTS", "METRICS_ALLOWED_NETWORKS", mode="before"
    )
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        """Accept a JSON array or a comma-separated string."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("BACKEND_CORS_ORIGINS")
    @classmethod
    def _strip_slash(cls, value: list[str]) -> list[str]:
        return [origin.rstrip("/") for origin in value]

    @field_validator("METRICS_ALLOWED_NETWORKS")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if not value or value == ["*"]:
            return value or None  # empty (say, `METRICS_ALLOWED_NETWORKS=`) is the default
        return [str(ipaddress.ip_network(network, strict=False)) for network in value]

    @field_validator("IDEAS_SUBREDDITS", mode="before")
    @classmethod
    def _parse_subreddits(cls, value: Any) -> Any:
        return cls._parse_list(value)

    @field_validator("IDEAS_SUBREDDITS")
    @classmethod
    def _check_subreddits(cls, value: list[str]) -> list[str]:
        """Names go into upstream paths and cache keys, so only Reddit's own alphabet passes."""
        if not value:
            raise ValueError("name at least one subreddit")
        bad = [name for name in value if not SUBREDDIT_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not subreddit names: {', '.join(map(repr, bad))}")
        if len({name.lower() for name in value}) != len(value):
            raise ValueError("subreddits are listed twice")
        return value

    @field_validator("IDEAS_BASE_URL")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value.strip()):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.strip().rstrip("/")

    @field_validator("SMTP_HOST", "SMTP_USER", "REDIS_URL", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "RATE_LIMIT_DEFAULT",
        "RATE_LIMIT_LOGIN_FAILURES",
        "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT",
        "RATE_LIMIT_RECOVERY_PER_ACCOUNT",
        "RATE_LIMIT_AUTH_PER_IP",
    )
    @classmethod
    def _rate_limit(cls, value: str | None) -> str | None:
        """Checked at start-up, so a typo stops the app instead of disabling a limit."""
        if value is None or value.strip().lower() in {"", "off"}:
            return None
        parse_limit(value)
        return value.strip()

    @field_validator("DATABASE_URL")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("FIRST_SUPERUSER_EMAIL")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.strip().lower()

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Self:
        if self.ENVIRONMENT == "local":
            # A missing SECRET_KEY is made at start-up (prepare_files), never at import.
            return self
        problems = []
        key = self.SECRET_KEY.get_secret_value() if self.SECRET_KEY else ""
        if len(key) < MIN_SECRET_LENGTH or is_placeholder(key):
            problems.append(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH} "
                'characters (python3 -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        password = self.FIRST_SUPERUSER_PASSWORD.get_secret_value()
        if len(password) < 8 or is_placeholder(password):
            problems.append("FIRST_SUPERUSER_PASSWORD must be set to a real password (8+ chars)")
        if self.ENVIRONMENT == "production" and (
            not self.ALLOWED_HOSTS or "*" in self.ALLOWED_HOSTS
        ):
            problems.append("ALLOWED_HOSTS must list the service's host names (no `*`)")
        if problems:
            raise ValueError(f"ENVIRONMENT={self.ENVIRONMENT}: " + "; ".join(problems))
        return self

    def prepare_files(self) -> None:
        """Start-up's file work, kept out of import: the SQLite data directory and, locally, the
        generated secret. Run by the lifespan and by prestart; safe to run again."""
        url = make_url(self.DATABASE_URL)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        if self.ENVIRONMENT == "local" and self.SECRET_KEY is None:
            self.SECRET_KEY = SecretStr(local_secret())

    @property
    def project_slug(self) -> str:
        """PROJECT_NAME as one lower-case token: how the service names itself to others."""
        return re.sub(r"[^a-z0-9]+", "-", self.PROJECT_NAME.lower()).strip("-")

    @property
    def secret_key(self) -> str:
        if self.SECRET_KEY is None:
            # Only local mode may lack one, until start-up has run prepare_files.
            raise RuntimeError("SECRET_KEY is unset: run settings.prepare_files() at start-up")
        return self.SECRET_KEY.get_secret_value()

    @property
    def log_format(self) -> Literal["json", "console"]:
        if self.LOG_FORMAT is not None:
            return self.LOG_FORMAT
        return "console" if self.ENVIRONMENT in ("local", "test") else "json"

    @property
    def contact(self) -> dict[str, str] | None:
        """The OpenAPI contact object, from whichever CONTACT_* settings are set."""
        fields = {"name": self.CONTACT_NAME, "email": self.CONTACT_EMAIL, "url": self.CONTACT_URL}
        contact = {key: str(value) for key, value in fields.items() if value}
        return contact or None

    @property
    def metrics_networks(self) -> list[str]:
        """Who may read /metrics; empty means everyone."""
        if self.METRICS_ALLOWED_NETWORKS is None:
            return PRIVATE_NETWORKS if self.ENVIRONMENT == "production" else []
        return [] if self.METRICS_ALLOWED_NETWORKS == ["*"] else self.METRICS_ALLOWED_NETWORKS

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()


settings = get_settings()
