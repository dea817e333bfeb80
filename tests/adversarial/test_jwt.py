"""Forged, stale, misused and malformed bearer tokens: every one is a 401, never a 500."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import settings
from app.core.security import ACCESS_TOKEN_TYPE, ALGORITHM, SCOPES, create_access_token
from app.models import User
from tests.utils.user import DEFAULT_PASSWORD, create_random_user

ME = "/api/v1/users/me"
# Any PEM public key: an RS256 verifier that trusted the header would use it as the HMAC secret.
PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==
-----END PUBLIC KEY-----"""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(user_id: int, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "type": ACCESS_TOKEN_TYPE,
        "scope": " ".join(SCOPES),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], **kwargs: Any) -> str:
    kwargs.setdefault("algorithm", ALGORITHM)
    return jwt.encode(claims, kwargs.pop("key", settings.secret_key), **kwargs)


async def _me(client: httpx2.AsyncClient, token: str) -> httpx2.Response:
    # As raw bytes, so non-ASCII garbage reaches the server as a client could send it.
    return await client.get(ME, headers={b"Authorization": f"Bearer {token}".encode("latin-1")})


def _assert_refused(response: httpx2.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Could not validate credentials"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_read_me_with_a_valid_token_works(
    client: httpx2.AsyncClient, superuser: User
) -> None:
    # The control for every attack below: the same claims, honestly signed, get in.
    response = await _me(client, _sign(_claims(superuser.id)))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == superuser.id


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_read_me_with_alg_none_is_401(
    client: httpx2.AsyncClient, superuser: User, alg: str
) -> None:
    unsigned = f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(_claims(superuser.id))}."
    _assert_refused(await _me(client, unsigned))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_read_me_with_token_resigned_with_another_hmac_is_401(
    client: httpx2.AsyncClient, superuser: User, algorithm: str
) -> None:
    _assert_refused(await _me(client, _sign(_claims(superuser.id), algorithm=algorithm)))


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
async def test_read_me_with_public_key_as_hmac_secret_is_401(
    client: httpx2.AsyncClient, superuser: User, alg: str
) -> None:
    # PyJWT refuses to sign with a PEM key as an HMAC secret, so the token is made by hand.
    header = _segment({"alg": alg, "typ": "JWT"})
    body = _segment(_claims(superuser.id))
    mac = hmac.new(PUBLIC_KEY, f"{header}.{body}".encode(), hashlib.sha256).digest()
    _assert_refused(await _me(client, f"{header}.{body}.{_b64(mac)}"))


async def test_read_me_with_tampered_payload_is_401(
    client: httpx2.AsyncClient, normal_user: User, superuser: User
) -> None:
    header, _, signature = create_access_token(normal_user.id).split(".")
    forged = _segment(_claims(superuser.id))
    _assert_refused(await _me(client, f"{header}.{forged}.{signature}"))


async def test_read_me_with_tampered_signature_is_401(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    header, body, signature = create_access_token(normal_user.id).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    _assert_refused(await _me(client, f"{header}.{body}.{flipped}"))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": None, "aud": None},  # made before tokens carried them
        {"iss": "staging.recipes.example"},  # another deployment sharing SECRET_KEY
        {"aud": "another-api"},
        {"aud": None},
    ],
)
async def test_read_me_with_token_of_another_issuer_or_audience_is_401(
    client: httpx2.AsyncClient, superuser: User, changes: dict[str, Any]
) -> None:
    _assert_refused(await _me(client, _sign(_claims(superuser.id, **changes))))


async def test_read_me_with_token_signed_by_another_key_is_401(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    token = _sign(_claims(normal_user.id), key="another-secret-that-is-long-enough-32b")
    _assert_refused(await _me(client, token))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": int(datetime.now(UTC).timestamp()) - 60}, id="expired"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"sub": None}, id="no-sub"),
        pytest.param({"iat": None}, id="no-iat"),
        pytest.param({"nbf": int(datetime.now(UTC).timestamp()) + 3600}, id="nbf-future"),
        pytest.param({"iat": int(datetime.now(UTC).timestamp()) + 3600}, id="iat-future"),
        pytest.param({"exp": "tomorrow"}, id="exp-text"),
        pytest.param({"sub": 1}, id="sub-number"),
        pytest.param({"sub": "0"}, id="sub-zero"),
        pytest.param({"sub": str(10**30)}, id="sub-huge"),
        pytest.param({"sub": "-1"}, id="sub-negative"),
        pytest.param({"sub": "1\x00"}, id="sub-nul"),
        pytest.param({"type": "refresh"}, id="type-refresh"),
        pytest.param({"type": None}, id="no-type"),
        pytest.param({"scope": ["users:admin"]}, id="scope-list"),
        pytest.param({"ver": "0"}, id="ver-text"),
        pytest.param({"ver": True}, id="ver-bool"),
        pytest.param({"ver": 1}, id="ver-ahead"),
        pytest.param({"ver": -1}, id="ver-behind"),
    ],
)
async def test_read_me_with_bad_claims_is_401(
    client: httpx2.AsyncClient, superuser: User, changes: dict[str, Any]
) -> None:
    claims = _claims(superuser.id) | changes
    _assert_refused(await _me(client, _sign({k: v for k, v in claims.items() if v is not None})))


async def test_read_me_with_nbf_within_leeway_works(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    # The bound the future-nbf case above is beyond: clock skew of a few seconds is tolerated.
    token = _sign(_claims(normal_user.id, nbf=int(datetime.now(UTC).timestamp()) + 3))
    assert (await _me(client, token)).status_code == 200


async def test_refresh_token_as_access_token_is_401(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    user = await create_random_user(db)
    login = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200, login.text
    _assert_refused(await _me(client, login.json()["refresh_token"]))


async def test_access_token_as_refresh_token_is_401(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": create_access_token(normal_user.id)}
    )
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Invalid refresh token"}


async def test_read_me_with_token_of_deleted_user_is_401(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    user = await create_random_user(db)
    token = create_access_token(user.id, scopes=SCOPES)
    await db.delete(user)
    await db.commit()
    _assert_refused(await _me(client, token))


async def test_read_me_with_token_of_deactivated_user_is_401(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    user = await create_random_user(db)
    token = create_access_token(user.id)
    user.is_active = False
    await db.commit()
    _assert_refused(await _me(client, token))


async def test_read_me_with_10_kb_token_is_401(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    # Honestly signed, so only its size refuses it: ours are a few hundred bytes.
    token = _sign(_claims(normal_user.id, padding="x" * 10_240))
    assert len(token) > 10_000
    _assert_refused(await _me(client, token))
    header, body, _ = create_access_token(normal_user.id).split(".")
    _assert_refused(await _me(client, f"{header}.{body}.{'A' * 10_240}"))


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "http://127.0.0.1:1/keys.json"},
        {"x5u": "http://127.0.0.1:1/cert.pem"},
        {"jwk": {"kty": "oct", "k": _b64(b"attacker-chosen-secret-of-32-bytes!")}},
        {"kid": "../../../../dev/null"},
        {"kid": "' OR '1'='1"},
    ],
    ids=["jku", "x5u", "jwk", "kid-path", "kid-sql"],
)
async def test_read_me_with_key_pointing_headers_is_401(
    client: httpx2.AsyncClient, superuser: User, header: dict[str, Any]
) -> None:
    # Signed with the key the header points at (here: the embedded jwk's secret); the server
    # must ignore the pointer and check against its own key only.
    token = _sign(_claims(superuser.id), key="attacker-chosen-secret-of-32-bytes!", headers=header)
    _assert_refused(await _me(client, token))


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "....",
        "%%%.$$$.***",
        "eyJ.eyJ.eyJ",
        "ÿÿÿ.ÿÿÿ.ÿÿÿ",
        _b64(b"\xff\xfe") + "." + _b64(b"\xff") + ".sig",
        _segment({"alg": "HS256"}) + "." + _b64(b"[1,2]") + ".sig",
        _segment({"alg": "HS256"}) + "." + _b64(b"null") + ".sig",
        _b64(b"[]") + "." + _segment({"sub": "1"}) + ".sig",
    ],
)
async def test_read_me_with_garbage_token_is_401(client: httpx2.AsyncClient, token: str) -> None:
    _assert_refused(await _me(client, token))
