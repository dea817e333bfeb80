"""Security primitives: password hashing off the event loop, and JWT access tokens."""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from app.core.config import settings

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"
BCRYPT_MAX_BYTES = 72

# Argon2id for new hashes; bcrypt only to verify legacy hashes, which are then upgraded.
password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))

# Hashing is CPU-bound (argon2 releases the GIL). A pool sized to the cores keeps a burst of
# logins from running dozens of 64 MiB hashes at once or starving the default executor.
_hash_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="pwhash")

# Verified when the user does not exist, so a wrong email costs as much as a wrong password.
_DUMMY_HASH = password_hash.hash("dummy-password-for-timing")


class InvalidTokenError(Exception):
    """The token is malformed, expired, of the wrong type or signed with another key."""


def _hash(password: str) -> str:
    return password_hash.hash(password)


def _verify_and_update(password: str, hashed: str) -> tuple[bool, str | None]:
    secret = password.encode()
    if BcryptHasher.identify(hashed) and len(secret) > BCRYPT_MAX_BYTES:
        # Legacy bcrypt hashes were made from the first 72 bytes; bcrypt 5 refuses longer input.
        secret = secret[:BCRYPT_MAX_BYTES]
    try:
        return password_hash.verify_and_update(secret, hashed)
    except (ValueError, UnknownHashError):
        return False, None


async def get_password_hash(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, _hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Check a password; the second item is a new Argon2id hash when the stored one is legacy."""
    loop = asyncio.get_running_loop()
    if hashed is None:
        await loop.run_in_executor(_hash_pool, _verify_and_update, password, _DUMMY_HASH)
        return False, None
    return await loop.run_in_executor(_hash_pool, _verify_and_update, password, hashed)


def create_access_token(subject: str | int, expires_delta: timedelta | None = None) -> str:
    now = datetime.now(UTC)
    delta = expires_delta or timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    payload: dict[str, Any] = {
        "sub": str(subject),
        "iat": now,
        "exp": now + delta,
        "type": ACCESS_TOKEN_TYPE,
    }
    return jwt.encode(payload, settings.secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str) -> str:
    """Return the subject of a valid access token, or raise InvalidTokenError."""
    try:
        payload = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
            leeway=10,
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    if payload.get("type") != ACCESS_TOKEN_TYPE:
        raise InvalidTokenError("not an access token")
    subject = payload["sub"]
    if not isinstance(subject, str):
        raise InvalidTokenError("subject must be a string")
    return subject
