"""Password hashing (Argon2id, legacy bcrypt upgrade, off the event loop) and access tokens."""

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt
import pytest
from pydantic import SecretStr

from app.core import security
from app.core.config import settings
from app.core.security import (
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
    assert decode_access_token(token) == AccessClaims(
        "42", frozenset({"users:admin", "recipes:write"})
    )
    claims = jwt.decode(
        token, settings.secret_key, algorithms=["HS256"], audience=settings.JWT_AUDIENCE
    )
    assert claims["type"] == "access"
    assert claims["iss"] == settings.JWT_ISSUER
    assert claims["scope"] == "recipes:write users:admin"
    assert claims["exp"] > claims["iat"]


def _forge(payload: dict[str, object], key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or settings.secret_key, algorithm=algorithm)


def _claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "1",
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
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
        # Made before iss and aud were set, or by another deployment sharing the key.
        pytest.param(_forge(_claims(iss=None, aud=None)), id="no-iss-or-aud"),
        pytest.param(_forge(_claims(iss=None)), id="no-iss"),
        pytest.param(_forge(_claims(aud=None)), id="no-aud"),
        pytest.param(_forge(_claims(iss="other-deployment")), id="other-iss"),
        pytest.param(_forge(_claims(aud="other-deployment-api")), id="other-aud"),
        pytest.param(_forge(_claims(aud=["other", "more"])), id="other-aud-list"),
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


def test_a_verified_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    # The second use is answered from the verified tokens kept, which must still check expiry.
    token = _forge(_claims(exp=datetime.now(UTC) + timedelta(seconds=30)))
    assert decode_access_token(token).subject == "1"
    later = time.time() + 30 + security.TOKEN_LEEWAY_SECONDS + 1
    monkeypatch.setattr(security, "_clock", lambda: later)
    with pytest.raises(InvalidTokenError, match="expired"):
        decode_access_token(token)


@pytest.mark.parametrize("setting", ["SECRET_KEY", "JWT_ISSUER", "JWT_AUDIENCE"])
def test_a_verified_token_is_refused_after_the_key_or_names_change(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    token = create_access_token(7)
    assert decode_access_token(token).subject == "7"
    value = "another-value-of-sufficient-length-0123456789"
    monkeypatch.setattr(settings, setting, SecretStr(value) if setting == "SECRET_KEY" else value)
    with pytest.raises(InvalidTokenError):
        decode_access_token(token)


def test_a_token_is_verified_once_and_an_invalid_one_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    # Another test may have had the same token verified (same subject, same second).
    security._verified.cache_clear()
    good = create_access_token(8)
    bad = _forge(_claims(), key="another-key-of-sufficient-length-123456")
    for _ in range(3):
        assert decode_access_token(good).subject == "8"
        with pytest.raises(InvalidTokenError):
            decode_access_token(bad)
    assert calls.count(good) == 1
    assert calls.count(bad) == 3


@pytest.mark.parametrize(
    ("memory_mib", "cpus", "workers"),
    [(256, 16, 4), (256, 2, 2), (64, 16, 1), (100, 16, 1), (1024, 8, 8)],
)
def test_hash_workers_fit_the_memory_budget_and_the_cpus(
    memory_mib: int, cpus: int, workers: int
) -> None:
    # os.cpu_count() workers on a 16-CPU node took a 512Mi pod to 1,127 MiB with 16 logins.
    assert security.hash_workers(memory_mib, cpus) == workers


def test_default_hashing_fits_the_default_budget_whatever_the_node() -> None:
    workers = security.hash_workers(settings.PASSWORD_HASH_MEMORY_MIB, cpus=64)
    assert workers * security.ARGON2_MEMORY_KIB <= settings.PASSWORD_HASH_MEMORY_MIB * 1024
    assert security.hash_gate.workers <= workers


class Blocked:
    """Work that holds its hashing thread until released, counting how often it ran."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs = 0

    def __call__(self) -> str:
        self.runs += 1
        assert self.release.wait(10)
        return "done"


async def test_hash_gate_sheds_what_its_queue_cannot_hold() -> None:
    gate = security.HashGate(workers=1, queue=2)
    work = Blocked()
    admitted = [asyncio.create_task(gate.run(work)) for _ in range(3)]
    await asyncio.sleep(0.05)
    with pytest.raises(security.HashingBusyError, match="too many"):
        await gate.run(work)
    work.release.set()
    assert await asyncio.gather(*admitted) == ["done"] * 3
    assert work.runs == 3
    # Room again once they are done.
    assert await gate.run(work) == "done"


async def test_hash_gate_skips_work_whose_client_has_gone() -> None:
    gate = security.HashGate(workers=1, queue=40)
    work = Blocked()
    first = asyncio.create_task(gate.run(work))
    await asyncio.sleep(0.05)

    async def gone() -> bool:
        return True

    async def abandoned() -> str:
        security.client_gone.set(gone)
        return await gate.run(work)

    waiting = [asyncio.create_task(abandoned()) for _ in range(40)]
    await asyncio.sleep(0.05)
    work.release.set()
    assert await first == "done"
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, security.HashingBusyError) for o in outcomes)
    assert work.runs == 1
