"""Security primitives: password hashing off the event loop, JWT access tokens, opaque tokens."""

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from app.core.config import settings

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"
BCRYPT_MAX_BYTES = 72
# Ours are a few hundred characters; anything far longer is refused before it is parsed.
MAX_TOKEN_LENGTH = 2048
# Seconds of clock skew allowed on a token's times.
TOKEN_LEEWAY_SECONDS = 10
# Access tokens whose signature and claims were checked, kept to skip the check on their next
# use (a client sends one token with many requests); about 1 KiB each.
VERIFIED_TOKENS_KEPT = 4096
HASH_THREAD_NICE = 19

T = TypeVar("T")

# OAuth2 scopes, with the text Swagger's Authorize dialog shows for each. Resource slices add
# their own with declare_scope when their router module is imported.
SCOPE_USERS_ADMIN = "users:admin"
SCOPES = {SCOPE_USERS_ADMIN: "Administer users (superusers only)."}
_SUPERUSER_SCOPES = {SCOPE_USERS_ADMIN}

# pwdlib's defaults, spelled out: the memory cost is what sizes the hashing pool below.
ARGON2_MEMORY_KIB = 64 * 1024
# Argon2id for new hashes; bcrypt only to verify legacy hashes, which are then upgraded.
password_hash = PasswordHash((Argon2Hasher(memory_cost=ARGON2_MEMORY_KIB), BcryptHasher()))
# What a caller turned away by a full hashing queue is told to wait, in seconds.
HASH_RETRY_AFTER_SECONDS = 1


def _lower_priority() -> None:
    """Hashing threads yield the CPU to the event loop: a burst of logins must not stall reads.

    Linux applies nice values per thread; elsewhere, or without permission, nothing changes.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICE)


def usable_cpus() -> int:
    """CPUs this process may run on; os.cpu_count() counts the whole node in a container."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def hash_workers(memory_mib: int, cpus: int, cost_kib: int = ARGON2_MEMORY_KIB) -> int:
    """Hashes that may run at once: as many as fit the memory budget, no more than the CPUs."""
    return max(1, min(cpus, memory_mib * 1024 // cost_kib))


class HashingBusyError(Exception):
    """No hash for this request: too many wait already, or its client has gone."""


# Set per request by the API layer: whether the client has gone, asked when a hash's turn comes.
client_gone: ContextVar[Callable[[], Awaitable[bool]] | None] = ContextVar(
    "client_gone", default=None
)


@dataclass(slots=True)
class _Turns:
    running: asyncio.Semaphore
    admitted: int = 0


class HashGate:
    """Password hashing off the event loop, bounded twice: `workers` hashes at once (each holds
    ARGON2_MEMORY_KIB), and `queue` more waiting; beyond that HashingBusyError comes at once,
    so a burst of anonymous logins costs a bounded amount of memory and waiting."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.queue = queue
        self.pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="pwhash", initializer=_lower_priority
        )
        # Semaphores belong to one event loop; tests run several, production one per process.
        self._turns: WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = WeakKeyDictionary()

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = _Turns(asyncio.Semaphore(self.workers))
        if turns.admitted >= self.workers + self.queue:
            raise HashingBusyError("too many passwords are waiting for a hash")
        turns.admitted += 1
        try:
            async with turns.running:
                gone = client_gone.get()
                if gone is not None and await gone():
                    raise HashingBusyError("the client has gone")
                return await loop.run_in_executor(self.pool, work, *args)
        finally:
            turns.admitted -= 1


hash_gate = HashGate(
    hash_workers(settings.PASSWORD_HASH_MEMORY_MIB, usable_cpus()), settings.PASSWORD_HASH_QUEUE
)


@cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so a wrong email costs as much as a wrong password.

    Made on first use, not at import: every process that imports this module (prestart, each
    worker) would otherwise pay for one Argon2id hash at start-up.
    """
    return password_hash.hash("dummy-password-for-timing")


class InvalidTokenError(Exception):
    """The token is malformed, expired, of the wrong type or signed with another key."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    scopes: frozenset[str]
    # The user's token_version when the token was issued; a raised version ends the token.
    version: int = 0


def declare_scope(name: str, description: str, *, superuser_only: bool = False) -> str:
    """Adds a scope to the vocabulary; every user is entitled to it unless superuser_only."""
    SCOPES[name] = description
    if superuser_only:
        _SUPERUSER_SCOPES.add(name)
    return name


def entitled_scopes(*, is_superuser: bool) -> frozenset[str]:
    """Every scope a user may hold: superusers administer users too."""
    if is_superuser:
        return frozenset(SCOPES)
    return frozenset(SCOPES.keys() - _SUPERUSER_SCOPES)


def scope_string(scopes: Iterable[str]) -> str:
    """The space-separated form OAuth2 uses, in a stable order."""
    return " ".join(sorted(scopes))


def _hash(password: str) -> str:
    return password_hash.hash(password)


def _verify_dummy(password: str) -> tuple[bool, str | None]:
    # In the worker: the dummy hash is made on first use, which must not be on the event loop.
    _verify_and_update(password, _dummy_hash())
    return False, None


def _verify_and_update(password: str, hashed: str) -> tuple[bool, str | None]:
    secret = password.encode()
    if BcryptHasher.identify(hashed) and len(secret) > BCRYPT_MAX_BYTES:
        # Legacy bcrypt hashes were made from the first 72 bytes; bcrypt 5 refuses longer input.
        secret = secret[:BCRYPT_MAX_BYTES]
    try:
        return password_hash.verify_and_update(secret, hashed)
    except UnknownHashError:
        # No hash at all (say, an account made by single sign-on): cost what a wrong password
        # costs, so the answer's timing does not tell such accounts apart.
        return _verify_dummy(password)
    except ValueError:
        return False, None


async def get_password_hash(password: str) -> str:
    """An Argon2id hash, made in the hashing pool; HashingBusyError when it is full."""
    return await hash_gate.run(_hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Check a password; the second item is a new Argon2id hash when the stored one is legacy.

    HashingBusyError when the hashing pool is full or the client has gone."""
    if hashed is None:
        return await hash_gate.run(_verify_dummy, password)
    return await hash_gate.run(_verify_and_update, password, hashed)


def create_access_token(
    subject: str | int,
    expires_delta: timedelta | None = None,
    scopes: Iterable[str] = (),
    version: int = 0,
) -> str:
    now = datetime.now(UTC)
    delta = expires_delta or timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    payload: dict[str, Any] = {
        "sub": str(subject),
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": now,
        "exp": now + delta,
        "type": ACCESS_TOKEN_TYPE,
        "scope": scope_string(scopes),
        "ver": version,
    }
    return jwt.encode(payload, settings.secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str) -> AccessClaims:
    """Return the subject and scopes of a valid access token, or raise InvalidTokenError.

    A token verified before is not verified again (its signature and claims cannot have
    changed), but its expiry is checked on every use."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError("token too long")
    claims, expires = _verified(
        token, settings.secret_key, settings.JWT_ISSUER, settings.JWT_AUDIENCE
    )
    if expires <= _clock() - TOKEN_LEEWAY_SECONDS:
        raise InvalidTokenError("Signature has expired")
    return claims


def _clock() -> float:
    return time.time()


@lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified(token: str, key: str, issuer: str, audience: str) -> tuple[AccessClaims, float]:
    """The claims of a token signed with the key for that issuer and audience, and when it
    expires; raises if invalid (an invalid token is not kept). Keyed by all four, so a new key
    (or a renamed deployment) ends every token at once."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            # Tokens made before iss and aud were set carry neither: they are refused.
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            leeway=TOKEN_LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    if payload.get("type") != ACCESS_TOKEN_TYPE:
        raise InvalidTokenError("not an access token")
    subject = payload["sub"]
    if not isinstance(subject, str):
        raise InvalidTokenError("subject must be a string")
    scope = payload.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidTokenError("scope must be a string")
    version = payload.get("ver", 0)
    if type(version) is not int:
        raise InvalidTokenError("ver must be an integer")
    claims = AccessClaims(subject=subject, scopes=frozenset(scope.split()), version=version)
    return claims, float(payload["exp"])


def new_opaque_token() -> str:
    """A random bearer secret (256 bits) for refresh and password-reset tokens."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the database keeps of an opaque token. The token is random, so no salt or slow hash
    is needed; a leaked table still yields nothing that can be presented."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
