"""Sign-up, login, refresh and logout, scopes, password change and reset, throttling."""

import asyncio
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx2
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.api.api_v1.endpoints.auth import RECOVERY_MESSAGE
from app.api.deps import get_rate_limiter
from app.core import security
from app.core.config import settings
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisStore
from app.core.security import create_access_token
from app.main import app
from app.models import User
from tests.conftest import TEST_REDIS_URL
from tests.utils.rate_limit import FakeClock
from tests.utils.smtp import SMTPServer
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import Configure, auth_headers, free_port, random_email

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
    # The pre-check misses a concurrent insert; the unique index still answers 409, not 500,
    # with the same body as the pre-check's.
    async def nobody(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr(crud.user, "get_by_email", nobody)
    response = await client.post(SIGNUP, json=signup_body(email=normal_user.email))
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this email already exists"}


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
    await crud.user.update(db, normal_user, {"is_active": False})
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_read_me_deleted_user_is_401(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    headers = auth_headers(normal_user.id)
    await crud.user.remove(db, normal_user)
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


# --- Refresh tokens, logout and scopes ----------------------------------------------------------

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
PASSWORD = "/api/v1/auth/password"
RECOVERY = "/api/v1/auth/password-recovery"
RESET = "/api/v1/auth/password-reset"
USERS = "/api/v1/users"
RECIPES = "/api/v1/recipes"
NEW_RECIPE = {"label": "Lemon Tart", "source": "Home", "url": "https://example.com/lemon-tart"}


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def login(
    client: httpx2.AsyncClient,
    email: str,
    password: str = DEFAULT_PASSWORD,
    scope: str | None = None,
) -> dict[str, Any]:
    form = {"username": email, "password": password}
    if scope is not None:
        form["scope"] = scope
    response = await client.post(LOGIN, data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_login_returns_refresh_token_expiry_and_scopes(
    client: httpx2.AsyncClient, normal_user: User, superuser: User
) -> None:
    body = await login(client, normal_user.email)
    assert body["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    assert body["scope"] == "recipes:write"
    assert body["refresh_token"] != body["access_token"]
    claims = jwt.decode(
        body["access_token"],
        settings.secret_key,
        algorithms=["HS256"],
        audience=settings.JWT_AUDIENCE,
    )
    assert claims["scope"] == "recipes:write"
    assert {"sub", "exp", "iat", "type"} <= claims.keys()
    admin = await login(client, superuser.email)
    assert admin["scope"] == "recipes:write users:admin"


async def test_login_may_narrow_scopes(client: httpx2.AsyncClient, superuser: User) -> None:
    body = await login(client, superuser.email, scope="recipes:write")
    assert body["scope"] == "recipes:write"
    admin_route = await client.get(USERS, headers=bearer(body["access_token"]))
    assert admin_route.status_code == 403
    assert admin_route.headers["www-authenticate"] == 'Bearer scope="users:admin"'
    created = await client.post(RECIPES, json=NEW_RECIPE, headers=bearer(body["access_token"]))
    assert created.status_code == 201
    # The refreshed pair keeps the narrower grant.
    refreshed = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert refreshed.json()["scope"] == "recipes:write"


@pytest.mark.parametrize("scope", ["users:admin", "recipes:write users:admin", "recipes:delete"])
async def test_login_cannot_ask_for_more_scopes_than_entitled(
    client: httpx2.AsyncClient, normal_user: User, scope: str
) -> None:
    response = await client.post(
        LOGIN, data={"username": normal_user.email, "password": DEFAULT_PASSWORD, "scope": scope}
    )
    assert response.status_code == 400
    assert "Scope not allowed" in response.json()["detail"]


async def test_refresh_rotates_the_pair(client: httpx2.AsyncClient, normal_user: User) -> None:
    first = await login(client, normal_user.email)
    response = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "recipes:write"
    me = await client.get(ME, headers=bearer(second["access_token"]))
    assert me.json()["id"] == normal_user.id
    third = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


async def test_refresh_reuse_revokes_the_whole_family(
    client: httpx2.AsyncClient, normal_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    first = await login(client, normal_user.email)
    other_login = await login(client, normal_user.email)
    second = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

    reused = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json() == {"detail": "Invalid refresh token"}
    assert "refresh token reused" in caplog.text
    assert first["refresh_token"] not in caplog.text
    # The thief's copy and the rightful holder's newer token are both dead now.
    after = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    # Another login of the same user is a different family and goes on.
    other = await client.post(REFRESH, json={"refresh_token": other_login["refresh_token"]})
    assert other.status_code == 200


async def test_refresh_race_lost_counts_as_reuse(
    client: httpx2.AsyncClient, normal_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another request rotates the token between this one's read and its claim.
    body = await login(client, normal_user.email)

    async def already_claimed(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr(crud.refresh_token, "rotate", already_claimed)
    response = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert response.status_code == 401
    monkeypatch.undo()
    again = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 401


@pytest.mark.parametrize("refresh_token", ["not-a-token", "x" * 512, "é\x00"])
async def test_refresh_unknown_token_is_401(client: httpx2.AsyncClient, refresh_token: str) -> None:
    response = await client.post(REFRESH, json={"refresh_token": refresh_token})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (REFRESH, rb'{"refresh_token": "\ud800"}'),
        (LOGOUT, rb'{"refresh_token": "\ud800"}'),
        (RESET, rb'{"token": "\ud800", "new_password": "long-enough-pw"}'),
    ],
)
async def test_token_routes_refuse_undecodable_tokens_with_422(
    client: httpx2.AsyncClient, path: str, raw: bytes
) -> None:
    response = await client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert "long-enough-pw" not in response.text


@pytest.mark.parametrize(
    "body", [{}, {"refresh_token": ""}, {"refresh_token": "x" * 513}, {"refresh_token": 5}]
)
async def test_refresh_malformed_body_is_422(
    client: httpx2.AsyncClient, body: dict[str, object]
) -> None:
    assert (await client.post(REFRESH, json=body)).status_code == 422


async def test_access_and_refresh_tokens_are_not_interchangeable(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    body = await login(client, normal_user.email)
    as_refresh = await client.post(REFRESH, json={"refresh_token": body["access_token"]})
    assert as_refresh.status_code == 401
    as_access = await client.get(ME, headers=bearer(body["refresh_token"]))
    assert as_access.status_code == 401


async def test_refresh_expired_token_is_401(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    body = await login(client, normal_user.email)
    token = await crud.refresh_token.get_by_token(db, token=body["refresh_token"])
    assert token is not None
    token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db.commit()
    response = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert response.status_code == 401


async def test_refresh_for_deactivated_user_is_401(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    user = await create_random_user(db)
    body = await login(client, user.email)
    # Deactivated with a direct write, which ends no session: the refresh itself must refuse.
    user.is_active = False
    await db.commit()
    response = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert response.status_code == 401


async def test_refresh_drops_scopes_the_user_has_lost(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    admin = await create_random_user(db, is_superuser=True)
    body = await login(client, admin.email)
    admin.is_superuser = False
    await db.commit()
    # The access token still claims users:admin, but the user no longer holds it.
    stale = await client.get(USERS, headers=bearer(body["access_token"]))
    assert stale.status_code == 403
    refreshed = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert refreshed.json()["scope"] == "recipes:write"


async def test_logout_makes_the_refresh_token_useless(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    body = await login(client, normal_user.email)
    second = (await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})).json()
    response = await client.post(LOGOUT, json={"refresh_token": second["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    after = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    # Logging out twice, or with a token no one issued, answers the same.
    again = await client.post(LOGOUT, json={"refresh_token": second["refresh_token"]})
    unknown = await client.post(LOGOUT, json={"refresh_token": "never-issued"})
    assert again.status_code == unknown.status_code == 204


async def test_logout_all_ends_every_login(client: httpx2.AsyncClient, normal_user: User) -> None:
    sessions = [await login(client, normal_user.email) for _ in range(2)]
    response = await client.post(LOGOUT_ALL, headers=bearer(sessions[0]["access_token"]))
    assert response.status_code == 204
    for session in sessions:
        refreshed = await client.post(REFRESH, json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 401
        # Access tokens too (issue 15 #13): a stolen one must not outlive the logout.
        assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 401
    fresh = await login(client, normal_user.email)
    assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_refreshed_access_token_carries_the_token_version(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    first = await login(client, normal_user.email)
    await client.post(LOGOUT_ALL, headers=bearer(first["access_token"]))
    second = await login(client, normal_user.email)
    refreshed = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    access = refreshed.json()["access_token"]
    assert (await client.get(ME, headers=bearer(access))).status_code == 200
    # An access token naming an older version, however well signed, is refused.
    old = create_access_token(normal_user.id, scopes=["recipes:write"], version=0)
    assert (await client.get(ME, headers=bearer(old))).status_code == 401


async def test_logout_all_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    assert (await client.post(LOGOUT_ALL)).status_code == 401


# --- Password change ----------------------------------------------------------------------------


async def test_change_password_swaps_it_and_ends_sessions(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    user = await create_random_user(db)
    body = await login(client, user.email)
    response = await client.post(
        PASSWORD,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a-brand-new-password"},
        headers=bearer(body["access_token"]),
    )
    assert response.status_code == 204
    old = await client.post(LOGIN, data={"username": user.email, "password": DEFAULT_PASSWORD})
    assert old.status_code == 401
    await login(client, user.email, "a-brand-new-password")
    refreshed = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await client.get(ME, headers=bearer(body["access_token"]))).status_code == 401


async def test_change_password_wrong_current_is_400(
    client: httpx2.AsyncClient, normal_user: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.post(
        PASSWORD,
        json={"current_password": "not-my-password", "new_password": "a-brand-new-password"},
        headers=normal_user_token_headers,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Incorrect password"}
    await login(client, normal_user.email)


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        {"current_password": DEFAULT_PASSWORD},
        {"current_password": "", "new_password": "long-enough-pw"},
        {"current_password": DEFAULT_PASSWORD, "new_password": "x\x00yyyyyyyy"},
    ],
)
async def test_change_password_bad_body_is_422_without_echo(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str], body: dict[str, str]
) -> None:
    response = await client.post(PASSWORD, json=body, headers=normal_user_token_headers)
    assert response.status_code == 422
    assert DEFAULT_PASSWORD not in response.text
    assert "Sh0rt!" not in response.text


async def test_change_password_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "a-brand-new-password"}
    assert (await client.post(PASSWORD, json=body)).status_code == 401


# --- Password recovery and reset ----------------------------------------------------------------


def reset_token_in(message: EmailMessage) -> str:
    match = re.search(r"^ {4}(\S+)\s*$", message.get_content(), re.MULTILINE)
    assert match is not None, message.get_content()
    return match[1]


async def test_password_recovery_emails_a_token_that_resets_once(
    client: httpx2.AsyncClient, db: AsyncSession, smtp: SMTPServer
) -> None:
    user = await create_random_user(db)
    session = await login(client, user.email)
    response = await client.post(RECOVERY, json={"email": user.email.upper()})
    assert response.status_code == 202
    [message] = smtp.messages
    assert message["To"] == user.email
    assert "reset your password" in message["Subject"]
    token = reset_token_in(message)

    reset = await client.post(RESET, json={"token": token, "new_password": "reset-password-1"})
    assert reset.status_code == 204
    await login(client, user.email, "reset-password-1")
    old = await client.post(LOGIN, data={"username": user.email, "password": DEFAULT_PASSWORD})
    assert old.status_code == 401
    # Sessions from before the reset are over, access tokens included.
    refreshed = await client.post(REFRESH, json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 401

    again = await client.post(RESET, json={"token": token, "new_password": "reset-password-2"})
    assert again.status_code == 400
    assert again.json() == {"detail": "Invalid or expired password reset token"}
    await login(client, user.email, "reset-password-1")


async def test_password_change_ends_unused_reset_tokens(
    client: httpx2.AsyncClient, db: AsyncSession, smtp: SMTPServer
) -> None:
    user = await create_random_user(db)
    await client.post(RECOVERY, json={"email": user.email})
    token = reset_token_in(smtp.messages[0])
    session = await login(client, user.email)
    changed = await client.post(
        PASSWORD,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a-brand-new-password"},
        headers=bearer(session["access_token"]),
    )
    assert changed.status_code == 204
    reset = await client.post(RESET, json={"token": token, "new_password": "reset-password-1"})
    assert reset.status_code == 400
    await login(client, user.email, "a-brand-new-password")


async def test_password_recovery_answers_alike_for_unknown_and_inactive(
    client: httpx2.AsyncClient, db: AsyncSession, smtp: SMTPServer
) -> None:
    known = await create_random_user(db)
    inactive = await create_random_user(db, is_active=False)
    answers = [
        await client.post(RECOVERY, json={"email": email})
        for email in (known.email, random_email(), inactive.email)
    ]
    assert {a.status_code for a in answers} == {202}
    assert answers[0].content == answers[1].content == answers[2].content
    assert answers[0].json() == {"message": RECOVERY_MESSAGE}
    header_names = [sorted(a.headers.keys()) for a in answers]
    assert header_names[0] == header_names[1] == header_names[2]
    # Only the active account got mail.
    assert [m["To"] for m in smtp.messages] == [known.email]


@pytest.mark.usefixtures("login_limiter")
async def test_password_recovery_mails_one_address_at_most_its_limit(
    client: httpx2.AsyncClient, db: AsyncSession, smtp: SMTPServer, configure: Configure
) -> None:
    configure(RATE_LIMIT_RECOVERY_PER_ACCOUNT="2/hour")
    target, bystander = await create_random_user(db), await create_random_user(db)
    # Case and spacing do not make another address: the key is the normalized email's hash.
    emails = [target.email, target.email.upper(), f" {target.email} ", target.email, target.email]
    answers = [await client.post(RECOVERY, json={"email": email}) for email in emails]
    # The same answer whether the limit was hit or not.
    assert {(r.status_code, r.text) for r in answers} == {(202, answers[0].text)}
    assert [m["To"] for m in smtp.messages] == [target.email] * 2
    # Another address has its own count.
    other = await client.post(RECOVERY, json={"email": bystander.email})
    assert (other.status_code, other.text) == (202, answers[0].text)
    assert [m["To"] for m in smtp.messages] == [target.email] * 2 + [bystander.email]


async def test_password_recovery_survives_a_dead_smtp_server(
    client: httpx2.AsyncClient,
    normal_user: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setattr(settings, "SMTP_PORT", free_port())
    monkeypatch.setattr(settings, "SMTP_TLS", False)
    response = await client.post(RECOVERY, json={"email": normal_user.email})
    assert response.status_code == 202
    assert response.json() == {"message": RECOVERY_MESSAGE}
    assert "password reset email failed" in caplog.text


async def test_password_recovery_without_smtp_logs_no_token_outside_local(
    client: httpx2.AsyncClient, normal_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        response = await client.post(RECOVERY, json={"email": normal_user.email})
    assert response.status_code == 202
    assert "was not sent" in caplog.text
    assert "Your reset token" not in caplog.text


@pytest.mark.parametrize("body", [{}, {"email": "not-an-email"}, {"email": "a@b.example", "x": 1}])
async def test_password_recovery_bad_body_is_422(
    client: httpx2.AsyncClient, body: dict[str, object]
) -> None:
    assert (await client.post(RECOVERY, json=body)).status_code == 422


async def test_password_reset_expired_or_unknown_token_is_400(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    token = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    row = await crud.password_reset_token.get_by_token(db, token=token)
    assert row is not None
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    for candidate in (token, "unknown-token", "é" * 10):
        response = await client.post(
            RESET, json={"token": candidate, "new_password": "reset-password-1"}
        )
        assert response.status_code == 400
    await login(client, normal_user.email)


async def test_password_reset_weak_password_is_422_and_keeps_the_token(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    token = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    weak = await client.post(RESET, json={"token": token, "new_password": "Sh0rt!"})
    assert weak.status_code == 422
    assert "Sh0rt!" not in weak.text
    ok = await client.post(RESET, json={"token": token, "new_password": "long-enough-now"})
    assert ok.status_code == 204


# --- Throttling ---------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limits(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Turn rate limits on for one test, counting on a fresh limiter with a hand-moved clock."""
    clock.install(monkeypatch)
    limiter = RateLimiter()
    app.dependency_overrides[get_rate_limiter] = lambda: limiter

    def turn_on(
        *,
        per_ip: str | None = None,
        login_failures: str | None = None,
        per_account: str | None = None,
    ) -> None:
        monkeypatch.setattr(settings, "RATE_LIMIT_AUTH_PER_IP", per_ip)
        monkeypatch.setattr(settings, "RATE_LIMIT_LOGIN_FAILURES", login_failures)
        monkeypatch.setattr(settings, "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT", per_account)

    yield turn_on
    app.dependency_overrides.pop(get_rate_limiter, None)


async def test_login_failures_per_account_and_network_trip_and_recover(
    client: httpx2.AsyncClient,
    normal_user: User,
    limits: Callable[..., None],
    clock: FakeClock,
) -> None:
    limits(login_failures="3/15minutes")
    wrong = {"username": normal_user.email, "password": "wrong-password"}
    right = {"username": normal_user.email, "password": DEFAULT_PASSWORD}
    assert [(await client.post(LOGIN, data=wrong)).status_code for _ in range(3)] == [401] * 3
    # Locked for this network: even the right password waits, so guessing gains nothing.
    locked = await client.post(LOGIN, data=right)
    assert locked.status_code == 429
    assert locked.json() == {"detail": "Too many requests; try again later"}
    assert locked.headers["retry-after"] == str(15 * 60)
    # Other accounts are not affected.
    other = await client.post(LOGIN, data={"username": random_email(), "password": "x-x-x-x-x"})
    assert other.status_code == 401
    # limits counts a hit exactly one window old as still inside it.
    clock.advance(15 * 60 + 0.001)
    assert (await client.post(LOGIN, data=right)).status_code == 200
    # A success clears the count: three more failures are allowed before the lock.
    assert [(await client.post(LOGIN, data=wrong)).status_code for _ in range(4)] == [
        401,
        401,
        401,
        429,
    ]


@pytest.fixture(params=["memory", "redis"])
async def login_limiter(
    request: pytest.FixtureRequest, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RateLimiter]:
    """A fresh limiter counting in memory or in Redis (the suite's: a fake unless configured)."""
    clock.install(monkeypatch)
    store = None
    if request.param == "redis":
        store = RedisStore.from_url(
            TEST_REDIS_URL, prefix=f"test-login-{secrets.token_hex(8)}:", timeout=2.0, cooldown=5.0
        )
    limiter = RateLimiter(store)
    app.dependency_overrides[get_rate_limiter] = lambda: limiter
    try:
        yield limiter
    finally:
        app.dependency_overrides.pop(get_rate_limiter, None)
        if store is not None:
            keys = [k async for k in store.client.scan_iter(f"{store.prefix}*")]
            if keys:
                await store.client.delete(*keys)
            await store.aclose()


async def _login_from(host: str, form: dict[str, str]) -> int:
    transport = httpx2.ASGITransport(app=app, client=(host, 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        return (await c.post(LOGIN, data=form)).status_code


@pytest.mark.usefixtures("client", "login_limiter")
async def test_attacker_exhausting_guesses_does_not_lock_the_owner_out(
    normal_user: User, configure: Configure
) -> None:
    configure(
        RATE_LIMIT_LOGIN_FAILURES="3/15minutes", RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT="50/hour"
    )
    wrong = {"username": normal_user.email, "password": "wrong-password"}
    right = {"username": normal_user.email, "password": DEFAULT_PASSWORD}
    attacker = [await _login_from("203.0.113.5", wrong) for _ in range(4)]
    assert attacker == [401, 401, 401, 429]
    # The owner, from a network of their own, is not locked by it.
    assert await _login_from("198.51.100.9", right) == 200
    assert await _login_from("2001:db8:1:2::7", right) == 200
    # The attacker still is, from any address of that /24.
    assert await _login_from("203.0.113.5", wrong) == 429
    assert await _login_from("203.0.113.77", right) == 429


@pytest.mark.usefixtures("client", "login_limiter")
async def test_per_account_ceiling_stops_a_distributed_attack(
    normal_user: User, configure: Configure
) -> None:
    configure(
        RATE_LIMIT_LOGIN_FAILURES="3/15minutes", RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT="5/hour"
    )
    wrong = {"username": normal_user.email, "password": "wrong-password"}
    # One guess from each of many networks: each network's budget is untouched, the account's
    # ceiling across all of them is not.
    codes = [await _login_from(f"192.0.{n}.1", wrong) for n in range(7)]
    assert codes == [401] * 5 + [429] * 2
    right = {"username": normal_user.email, "password": DEFAULT_PASSWORD}
    assert await _login_from("198.51.100.9", right) == 429


async def test_login_failures_count_for_unknown_accounts_too(
    client: httpx2.AsyncClient, limits: Callable[..., None]
) -> None:
    limits(login_failures="2/15minutes")
    form = {"username": random_email(), "password": "whatever-pw"}
    codes = [(await client.post(LOGIN, data=form)).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


async def test_wrong_current_password_counts_as_a_failure(
    client: httpx2.AsyncClient,
    normal_user_token_headers: dict[str, str],
    limits: Callable[..., None],
) -> None:
    limits(login_failures="2/15minutes")
    body = {"current_password": "not-it-at-all", "new_password": "a-brand-new-password"}
    codes = [
        (await client.post(PASSWORD, json=body, headers=normal_user_token_headers)).status_code
        for _ in range(3)
    ]
    assert codes == [400, 400, 429]


async def test_auth_requests_per_ip_trip_and_recover(
    client: httpx2.AsyncClient, limits: Callable[..., None], clock: FakeClock
) -> None:
    limits(per_ip="3/minute")
    form = {"username": random_email(), "password": "whatever-pw"}
    codes = [(await client.post(LOGIN, data=form)).status_code for _ in range(3)]
    assert codes == [401] * 3
    refused = await client.post(REFRESH, json={"refresh_token": "x"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    # Reads are not auth requests and are never counted here.
    assert (await client.get(RECIPES)).status_code == 200
    clock.advance(60.001)
    assert (await client.post(LOGIN, data=form)).status_code == 401


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        (LOGIN, {"data": {"username": "a@example.com", "password": "whatever-pw"}}),
        (REFRESH, {"json": {"refresh_token": "x"}}),
        (SIGNUP, {"json": {"email": "not-an-email"}}),
        (RECOVERY, {"json": {"email": "a@example.com"}}),
        (RESET, {"json": {"token": "x", "new_password": "whatever-pw"}}),
    ],
)
async def test_every_auth_route_is_limited_per_ip(
    client: httpx2.AsyncClient,
    limits: Callable[..., None],
    path: str,
    kwargs: dict[str, Any],
) -> None:
    limits(per_ip="1/minute")
    first = await client.post(path, **kwargs)
    assert first.status_code != 429
    second = await client.post(path, **kwargs)
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) > 0


async def test_rate_limits_off_never_refuse(
    client: httpx2.AsyncClient, limits: Callable[..., None]
) -> None:
    limits()
    # More than the default budgets: 5 failures per account, 20 requests per IP.
    form = {"username": random_email(), "password": "whatever-pw"}
    logins = {(await client.post(LOGIN, data=form)).status_code for _ in range(6)}
    signups = {(await client.post(SIGNUP, json={})).status_code for _ in range(15)}
    assert (logins, signups) == ({401}, {422})


class HeldHashing:
    """A one-thread hashing gate whose thread is busy until released; counts the checks made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, queue: int) -> None:
        self.gate = security.HashGate(workers=1, queue=queue)
        self.release = threading.Event()
        self.checks = 0
        monkeypatch.setattr(security, "hash_gate", self.gate)
        real = security._verify_dummy

        def counted(password: str) -> tuple[bool, str | None]:
            self.checks += 1
            return real(password)

        monkeypatch.setattr(security, "_verify_dummy", counted)

    async def __aenter__(self) -> "HeldHashing":
        self.holder = asyncio.create_task(self.gate.run(self.release.wait, 10))
        await self.admitted(1)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release.set()
        await self.holder

    async def admitted(self, count: int) -> None:
        for _ in range(500):
            turns = self.gate._turns.get(asyncio.get_running_loop())
            if turns is not None and turns.admitted >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {count} hashes admitted")


async def test_login_beyond_the_hashing_queue_is_503_with_retry_after(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with HeldHashing(monkeypatch, queue=0):
        response = await client.post(LOGIN, data={"username": random_email(), "password": "x" * 9})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(security.HASH_RETRY_AFTER_SECONDS)
    assert response.json() == {"detail": "Too many sign-ins at once; retry shortly"}


async def test_abandoned_logins_are_not_hashed(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 logins dropped at once delayed the next login from 0.12 s to 3 s: each was hashed.
    def abandoned_login() -> Coroutine[Any, Any, None]:
        body = f"username={random_email()}&password=whatever-1".encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": LOGIN,
            "raw_path": LOGIN.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"test"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(_: Any) -> None:
            pass

        return app(scope, receive, send)

    async with HeldHashing(monkeypatch, queue=10) as held:
        logins = []
        for n in range(5):
            logins.append(asyncio.create_task(abandoned_login()))
            await held.admitted(n + 2)  # one at a time: they share the test's session
    await asyncio.gather(*logins)
    assert held.checks == 0
    # A client that stays is still answered.
    response = await client.post(LOGIN, data={"username": random_email(), "password": "x" * 9})
    assert response.status_code == 401
    assert held.checks == 1


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("password", "most common"),
        ("12345678", "most common"),
        ("        ", "different characters"),
        ("{email}!", "email"),
    ],
)
async def test_signup_with_weak_password_is_422_naming_it(
    client: httpx2.AsyncClient, password: str, says: str
) -> None:
    body = signup_body()
    body["password"] = password.format(email=body["email"])
    response = await client.post(SIGNUP, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "password"]
    assert says in error["msg"]
    assert "input" not in error


@pytest.mark.parametrize(("new_password", "says"), [("qwerty123", "common"), ("{email}", "email")])
async def test_change_password_to_a_weak_one_is_422(
    client: httpx2.AsyncClient,
    normal_user: User,
    normal_user_token_headers: dict[str, str],
    new_password: str,
    says: str,
) -> None:
    body = {
        "current_password": DEFAULT_PASSWORD,
        "new_password": new_password.format(email=normal_user.email),
    }
    response = await client.post(PASSWORD, json=body, headers=normal_user_token_headers)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"][0]["msg"]
    await login(client, normal_user.email)


@pytest.mark.parametrize(
    ("new_password", "says"), [("iloveyou", "common"), ("my {email}", "email")]
)
async def test_password_reset_to_a_weak_one_is_422_and_keeps_the_token(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, new_password: str, says: str
) -> None:
    token = await crud.password_reset_token.create_for_user(db, user_id=normal_user.id)
    weak = new_password.format(email=normal_user.email)
    response = await client.post(RESET, json={"token": token, "new_password": weak})
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"][0]["msg"]
    assert normal_user.email not in response.text
    ok = await client.post(RESET, json={"token": token, "new_password": "long-enough-now"})
    assert ok.status_code == 204
