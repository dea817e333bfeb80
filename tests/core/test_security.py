"""Password hashing (Argon2id, legacy bcrypt upgrade, off the event loop) and access tokens."""

import threading
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
import pytest

from app.core import security
from app.core.config import settings
from app.core.security import (
    SCOPES,
    AccessClaims,
    InvalidTokenError,
    create_access_token,
    decode_access_token,
    get_password_hash,
    verify_password,
)


async def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = await get_password_hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert await verify_password("correct horse battery staple", hashed) == (True, None)
    assert await verify_password("wrong horse", hashed) == (False, None)


async def test_password_hashing_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = security.password_hash.hash

    def spy(password: str | bytes) -> str:
        threads.append(threading.current_thread().name)
        return original(password)

    monkeypatch.setattr(security.password_hash, "hash", spy)
    await get_password_hash("x" * 12)
    assert threads
    assert threads[0] != threading.main_thread().name
    assert threads[0].startswith("pwhash")


async def test_legacy_bcrypt_hash_verifies_and_is_upgraded() -> None:
    legacy = bcrypt.hashpw(b"old-password", bcrypt.gensalt(rounds=4)).decode()
    valid, new_hash = await verify_password("old-password", legacy)
    assert valid is True
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert await verify_password("old-password", new_hash) == (True, None)
    assert await verify_password("not-it", legacy) == (False, None)


async def test_legacy_bcrypt_long_password_checks_first_72_bytes() -> None:
    password = "p" * 100
    legacy = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    valid, _ = await verify_password(password, legacy)
    assert valid is True


@pytest.mark.parametrize("stored", [None, "plaintext", "$unknown$hash"])
async def test_verify_password_without_a_usable_hash_is_false(stored: str | None) -> None:
    assert await verify_password("anything", stored) == (False, None)


def test_access_token_round_trip() -> None:
    token = create_access_token(42, scopes=["users:admin", "recipes:write"])
    assert decode_access_token(token) == AccessClaims("42", frozenset(SCOPES))
    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"])
    assert claims["type"] == "access"
    assert claims["scope"] == "recipes:write users:admin"
    assert claims["exp"] > claims["iat"]


def _forge(payload: dict[str, object], key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or settings.secret_key, algorithm=algorithm)


def _claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "1",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "type": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            _forge(_claims(), key="another-key-of-sufficient-length-123456"), id="wrong-key"
        ),
        pytest.param(_forge(_claims(), algorithm="HS512"), id="hs512"),
        pytest.param(_forge(_claims(type="refresh")), id="wrong-type"),
        pytest.param(_forge(_claims(exp=None)), id="no-exp"),
        pytest.param(_forge(_claims(sub=None)), id="no-sub"),
        pytest.param(_forge(_claims(sub=7)), id="int-sub"),
        pytest.param(_forge(_claims(exp=datetime.now(UTC) - timedelta(minutes=1))), id="expired"),
        pytest.param("not.a.token", id="garbage"),
    ],
)
def test_decode_access_token_rejects(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        decode_access_token(token)


def test_decode_access_token_rejects_alg_none() -> None:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(
        f'{{"sub":"1","iat":{int(datetime.now(UTC).timestamp())},'
        f'"exp":{int(datetime.now(UTC).timestamp()) + 300},"type":"access"}}'.encode()
    ).decode()
    with pytest.raises(InvalidTokenError):
        decode_access_token(f"{header}.{body}.")
