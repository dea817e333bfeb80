"""Sign-up, login and the current user."""

from datetime import timedelta

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import create_access_token
from app.models import User
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import auth_headers, random_email

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"


def signup_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "email": random_email(),
        "password": "a-strong-password",
        "first_name": "Ada",
        "surname": "Lovelace",
    }
    body.update(overrides)
    return body


async def test_signup_creates_ordinary_user(client: httpx2.AsyncClient, db: AsyncSession) -> None:
    body = signup_body(email="New.Cook@Example.COM")
    response = await client.post(SIGNUP, json=body)
    assert response.status_code == 201
    data = response.json()
    assert data["email"] == "new.cook@example.com"
    assert data["is_superuser"] is False
    assert data["is_active"] is True
    assert not {"password", "hashed_password"} & data.keys()
    stored = await crud.user.get_by_email(db, email="new.cook@example.com")
    assert stored is not None
    assert stored.hashed_password.startswith("$argon2id$")


async def test_signup_duplicate_email_conflicts_case_insensitively(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    response = await client.post(SIGNUP, json=signup_body(email=normal_user.email.upper()))
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this email already exists"}


async def test_signup_race_on_email_conflicts(
    client: httpx2.AsyncClient, normal_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pre-check misses a concurrent insert; the unique index still answers 409, not 500.
    async def nobody(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr(crud.user, "get_by_email", nobody)
    response = await client.post(SIGNUP, json=signup_body(email=normal_user.email))
    assert response.status_code == 409
    assert response.json() == {"detail": "The request conflicts with existing data"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"is_superuser": True},
        {"is_active": False},
        {"id": 1},
        {"password": "short"},
        {"password": "x" * 129},
        {"email": "not-an-email"},
        {"first_name": ""},
        {"surname": "a\x00b"},
        {"first_name": "x" * 101},
    ],
)
async def test_signup_rejects_bad_or_privileged_fields(
    client: httpx2.AsyncClient, overrides: dict[str, object]
) -> None:
    response = await client.post(SIGNUP, json=signup_body(**overrides))
    assert response.status_code == 422


async def test_signup_missing_body_is_422(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        SIGNUP, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_login_returns_a_token_that_authenticates(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    response = await client.post(
        LOGIN, data={"username": normal_user.email.upper(), "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer"
    me = await client.get(ME, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == normal_user.id


async def test_login_wrong_password_and_unknown_email_look_the_same(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    wrong = await client.post(LOGIN, data={"username": normal_user.email, "password": "nope-nope"})
    unknown = await client.post(LOGIN, data={"username": random_email(), "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Incorrect email or password"}
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_login_inactive_user_is_401(client: httpx2.AsyncClient, db: AsyncSession) -> None:
    user = await create_random_user(db, is_active=False)
    response = await client.post(LOGIN, data={"username": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect email or password"}


async def test_login_without_form_fields_is_422(client: httpx2.AsyncClient) -> None:
    response = await client.post(LOGIN, data={"username": "someone@example.com"})
    assert response.status_code == 422


async def test_read_me_returns_the_caller(
    client: httpx2.AsyncClient, normal_user: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.get(ME, headers=normal_user_token_headers)
    assert response.status_code == 200
    assert response.json()["email"] == normal_user.email
    assert "hashed_password" not in response.json()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer not-a-jwt",
        "Bearer " + "a" * 10_000,
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_read_me_without_valid_token_is_401(
    client: httpx2.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_read_me_expired_token_is_401(client: httpx2.AsyncClient, normal_user: User) -> None:
    token = create_access_token(normal_user.id, expires_delta=timedelta(minutes=-5))
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize("subject", ["0", "abc", "99999999999", "2147483647"])
async def test_read_me_token_for_no_such_user_is_401(
    client: httpx2.AsyncClient, subject: str
) -> None:
    response = await client.get(
        ME, headers={"Authorization": f"Bearer {create_access_token(subject)}"}
    )
    assert response.status_code == 401


async def test_read_me_deactivated_user_is_401_at_once(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    headers = auth_headers(normal_user.id)
    assert (await client.get(ME, headers=headers)).status_code == 200
    await crud.user.update(db, db_obj=normal_user, obj_in={"is_active": False})
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_read_me_deleted_user_is_401(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    headers = auth_headers(normal_user.id)
    await crud.user.remove(db, db_obj=normal_user)
    assert (await client.get(ME, headers=headers)).status_code == 401


@pytest.mark.parametrize("username", ["a\x00b@example.com", "x" * 10_000, "é@é.example"])
async def test_login_odd_username_is_401(client: httpx2.AsyncClient, username: str) -> None:
    response = await client.post(LOGIN, data={"username": username, "password": "whatever-pw"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"email":"a@b.example","password":"x\ud800yyyyyy","first_name":"A","surname":"B"}',
        rb'{"email":"a@b.example","password":"xyyyyyyy","first_name":"\ud800","surname":"B"}',
        b'{"email": 1e999, "password": "abcdefgh", "first_name": "A", "surname": "B"}',
        b"[1, 2]",
        b"null",
    ],
)
async def test_signup_undecodable_input_is_422_with_valid_json(
    client: httpx2.AsyncClient, raw: bytes
) -> None:
    response = await client.post(SIGNUP, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_signup_422_does_not_echo_the_password(client: httpx2.AsyncClient) -> None:
    response = await client.post(SIGNUP, json=signup_body(password="short1"))
    assert response.status_code == 422
    assert "short1" not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
