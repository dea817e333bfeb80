"""User endpoints: your own account, administration, scopes on every route."""

import re
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import SCOPES
from app.crud.pagination import MAX_ID
from app.main import app
from app.models import User
from tests.utils.mail import Mailbox
from tests.utils.recipe import create_random_recipe
from tests.utils.routes import Endpoint, Rows, endpoints, example_call, owners
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import (
    auth_headers,
    lose_after_loading,
    random_email,
    random_lower_string,
)

USERS = "/api/v1/users"
SPEC = app.openapi()


async def test_read_users_as_superuser_pages_without_secrets(
    client: httpx2.AsyncClient, db: AsyncSession, superuser_token_headers: dict[str, str]
) -> None:
    extra = [await create_random_user(db) for _ in range(2)]
    response = await client.get(USERS, params={"limit": 2}, headers=superuser_token_headers)
    assert response.status_code == 200
    body = response.json()
    assert [u["id"] for u in body["items"]] == [extra[1].id, extra[0].id]
    assert body["next_cursor"] is not None
    assert all("hashed_password" not in u for u in body["items"])


async def test_read_users_as_normal_user_is_403(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.get(USERS, headers=normal_user_token_headers)
    assert response.status_code == 403
    assert response.json() == {"detail": "Not enough permissions"}
    assert response.headers["www-authenticate"] == 'Bearer scope="users:admin"'


async def test_read_users_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    assert (await client.get(USERS)).status_code == 401


async def test_read_user_as_superuser(
    client: httpx2.AsyncClient, normal_user: User, superuser_token_headers: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/{normal_user.id}", headers=superuser_token_headers)
    assert response.status_code == 200
    assert response.json()["email"] == normal_user.email


async def test_read_user_unknown_is_404(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/{MAX_ID}", headers=superuser_token_headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


async def test_read_user_as_normal_user_is_403(
    client: httpx2.AsyncClient, superuser: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/{superuser.id}", headers=normal_user_token_headers)
    assert response.status_code == 403


async def test_read_user_bad_id_is_422(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/{MAX_ID + 1}", headers=superuser_token_headers)
    assert response.status_code == 422


# --- Your own account ---------------------------------------------------------------------------

ME = f"{USERS}/me"


async def test_read_me_returns_the_caller(
    client: httpx2.AsyncClient, normal_user: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.get(ME, headers=normal_user_token_headers)
    assert response.status_code == 200
    assert response.json()["id"] == normal_user.id
    assert "hashed_password" not in response.json()


async def test_read_me_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    assert (await client.get(ME)).status_code == 401


async def test_update_me_changes_names_without_password(
    client: httpx2.AsyncClient, normal_user: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.patch(
        ME, json={"first_name": "Grace", "surname": "Hopper"}, headers=normal_user_token_headers
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["surname"], body["email"]) == (
        "Grace",
        "Hopper",
        normal_user.email,
    )


async def test_update_me_email_needs_the_current_password(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    new_email = random_email()
    missing = await client.patch(ME, json={"email": new_email}, headers=normal_user_token_headers)
    assert missing.status_code == 400
    wrong = await client.patch(
        ME,
        json={"email": new_email, "current_password": "not-my-password"},
        headers=normal_user_token_headers,
    )
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "Incorrect password"}
    right = await client.patch(
        ME,
        json={"email": new_email.upper(), "current_password": DEFAULT_PASSWORD},
        headers=normal_user_token_headers,
    )
    assert right.status_code == 200
    assert right.json()["email"] == new_email
    login = await client.post(
        "/api/v1/auth/login", data={"username": new_email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200


async def test_update_me_same_email_needs_no_password(
    client: httpx2.AsyncClient, normal_user: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.patch(
        ME, json={"email": normal_user.email}, headers=normal_user_token_headers
    )
    assert response.status_code == 200


async def test_update_me_taken_email_is_409(
    client: httpx2.AsyncClient, superuser: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.patch(
        ME,
        json={"email": superuser.email, "current_password": DEFAULT_PASSWORD},
        headers=normal_user_token_headers,
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this email already exists"}


@pytest.mark.parametrize(
    "body",
    [
        {"email": None},
        {"first_name": None},
        {"first_name": ""},
        {"email": "nope"},
        {"is_superuser": True},
        {"is_active": False},
        {"password": "a-new-password"},
        {"current_password": "x" * 129},
    ],
)
async def test_update_me_bad_or_privileged_body_is_422(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = await client.patch(ME, json=body, headers=normal_user_token_headers)
    assert response.status_code == 422


async def test_update_me_422_does_not_echo_the_password(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.patch(
        ME,
        json={"email": None, "current_password": "my-secret-pw"},
        headers=normal_user_token_headers,
    )
    assert response.status_code == 422
    assert "my-secret-pw" not in response.text


async def test_delete_me_removes_user_recipes_and_sessions(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    login = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD}
    )
    tokens = login.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await client.request(
        "DELETE", ME, json={"current_password": DEFAULT_PASSWORD}, headers=headers
    )
    assert response.status_code == 204
    db.expunge_all()
    assert await crud.user.get(db, user.id) is None
    assert (await client.get(f"/api/v1/recipes/{recipe.id}")).status_code == 404
    assert await crud.refresh_token.get_by_token(db, token=tokens["refresh_token"]) is None
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_delete_me_as_superuser_is_409(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str]
) -> None:
    body = {"current_password": DEFAULT_PASSWORD}
    response = await client.request("DELETE", ME, json=body, headers=superuser_token_headers)
    assert response.status_code == 409
    assert (await client.get(ME, headers=superuser_token_headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (None, 422),
        ({}, 422),
        ({"current_password": ""}, 422),
        ({"current_password": "not-my-password"}, 400),
    ],
)
async def test_delete_me_needs_the_current_password(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    normal_user_token_headers: dict[str, str],
    body: dict[str, str] | None,
    status: int,
) -> None:
    # A stolen access token alone cannot delete the account (issue 15 #13).
    response = await client.request("DELETE", ME, json=body, headers=normal_user_token_headers)
    assert response.status_code == status
    assert "not-my-password" not in response.text
    db.expunge_all()
    assert await crud.user.get(db, normal_user.id) is not None


async def test_email_change_ends_reset_tokens_and_tells_the_old_address(
    client: httpx2.AsyncClient, db: AsyncSession, mailbox: Mailbox
) -> None:
    user = await create_random_user(db)
    old_email = user.email
    await client.post("/api/v1/auth/password-recovery", json={"email": old_email})
    [reset_mail] = mailbox.messages
    token = re.search(r"^ {4}(\S+)\s*$", reset_mail.get_content(), re.MULTILINE)
    assert token is not None
    new_email = random_email()
    response = await client.patch(
        ME,
        json={"email": new_email, "current_password": DEFAULT_PASSWORD},
        headers=auth_headers(user.id),
    )
    assert response.status_code == 200
    # The token mailed to the old address no longer works (issue 15 #5).
    reset = await client.post(
        "/api/v1/auth/password-reset", json={"token": token[1], "new_password": "taken-over-pw"}
    )
    assert reset.status_code == 400
    [_, notice] = mailbox.messages
    assert notice["To"] == old_email
    assert "email address was changed" in notice["Subject"]
    assert new_email not in notice.get_content()


async def test_admin_email_change_tells_the_old_address(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    superuser_token_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    user = await create_random_user(db)
    old_email = user.email
    response = await client.patch(
        f"{USERS}/{user.id}", json={"email": random_email()}, headers=superuser_token_headers
    )
    assert response.status_code == 200
    [notice] = mailbox.messages
    assert notice["To"] == old_email
    # Same address again: no change, no mail.
    same = await client.patch(
        f"{USERS}/{user.id}",
        json={"email": response.json()["email"]},
        headers=superuser_token_headers,
    )
    assert same.status_code == 200
    assert len(mailbox.messages) == 1


# --- Administration -----------------------------------------------------------------------------


async def test_read_users_filters_by_email_and_status(
    client: httpx2.AsyncClient, db: AsyncSession, superuser_token_headers: dict[str, str]
) -> None:
    tag = random_lower_string(10)
    active = await create_random_user(db, email=f"{tag}.on@example.com")
    inactive = await create_random_user(db, email=f"{tag}.off@example.com", is_active=False)
    await create_random_user(db)

    async def ids(**params: Any) -> list[int]:
        response = await client.get(USERS, params=params, headers=superuser_token_headers)
        assert response.status_code == 200
        return [u["id"] for u in response.json()["items"]]

    assert await ids(email=tag.upper()) == [inactive.id, active.id]
    assert await ids(email=tag, is_active=True) == [active.id]
    assert await ids(email=tag, is_active=False) == [inactive.id]
    assert await ids(email=f"{tag}%") == []
    assert await ids(email=f"{tag}_") == []


@pytest.mark.parametrize(
    "params", [{"email": ""}, {"email": "a\x00b"}, {"email": "x" * 321}, {"is_active": "maybe"}]
)
async def test_read_users_bad_filter_is_422(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = await client.get(USERS, params=params, headers=superuser_token_headers)
    assert response.status_code == 422


async def test_create_user_as_superuser(
    client: httpx2.AsyncClient, db: AsyncSession, superuser_token_headers: dict[str, str]
) -> None:
    email = random_email()
    body = {
        "email": email.upper(),
        "password": "an-admin-made-pw",
        "first_name": "New",
        "surname": "Admin",
        "is_superuser": True,
    }
    response = await client.post(USERS, json=body, headers=superuser_token_headers)
    assert response.status_code == 201
    created = response.json()
    assert (created["email"], created["is_superuser"]) == (email, True)
    assert "password" not in response.text
    stored = await crud.user.get(db, created["id"])
    assert stored is not None
    assert stored.hashed_password.startswith("$argon2id$")
    duplicate = await client.post(USERS, json=body, headers=superuser_token_headers)
    assert duplicate.status_code == 409


async def test_create_user_bad_body_is_422(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str]
) -> None:
    body = {"email": "bad", "password": "an-admin-made-pw", "first_name": "A", "surname": "B"}
    response = await client.post(USERS, json=body, headers=superuser_token_headers)
    assert response.status_code == 422
    assert "an-admin-made-pw" not in response.text


async def test_update_user_fields_and_password(
    client: httpx2.AsyncClient, db: AsyncSession, superuser_token_headers: dict[str, str]
) -> None:
    user = await create_random_user(db)
    _, session = await crud.refresh_token.create_for_user(db, user_id=user.id, scope="")
    response = await client.patch(
        f"{USERS}/{user.id}",
        json={"surname": "Renamed", "is_superuser": True, "password": "set-by-admin-1"},
        headers=superuser_token_headers,
    )
    assert response.status_code == 200
    assert (response.json()["surname"], response.json()["is_superuser"]) == ("Renamed", True)
    await db.refresh(session)
    assert session.revoked_at is not None
    login = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": "set-by-admin-1"}
    )
    assert login.status_code == 200


async def test_deactivating_a_user_ends_their_access_at_once(
    client: httpx2.AsyncClient, db: AsyncSession, superuser_token_headers: dict[str, str]
) -> None:
    user = await create_random_user(db)
    login = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD}
    )
    tokens = login.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get(ME, headers=headers)).status_code == 200
    response = await client.patch(
        f"{USERS}/{user.id}", json={"is_active": False}, headers=superuser_token_headers
    )
    assert response.status_code == 200
    assert (await client.get(ME, headers=headers)).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_update_user_taken_email_is_409(
    client: httpx2.AsyncClient,
    normal_user: User,
    superuser: User,
    superuser_token_headers: dict[str, str],
) -> None:
    response = await client.patch(
        f"{USERS}/{normal_user.id}",
        json={"email": superuser.email},
        headers=superuser_token_headers,
    )
    assert response.status_code == 409


@pytest.mark.parametrize("body", [{"is_superuser": False}, {"is_active": False}])
async def test_superuser_cannot_demote_or_deactivate_themselves(
    client: httpx2.AsyncClient,
    superuser: User,
    superuser_token_headers: dict[str, str],
    body: dict[str, Any],
) -> None:
    response = await client.patch(
        f"{USERS}/{superuser.id}", json=body, headers=superuser_token_headers
    )
    assert response.status_code == 409
    me = await client.get(ME, headers=superuser_token_headers)
    assert (me.json()["is_superuser"], me.json()["is_active"]) == (True, True)
    # Renaming yourself is fine.
    renamed = await client.patch(
        f"{USERS}/{superuser.id}", json={"first_name": "Root"}, headers=superuser_token_headers
    )
    assert renamed.status_code == 200


async def test_delete_user_as_superuser(
    client: httpx2.AsyncClient, db: AsyncSession, superuser_token_headers: dict[str, str]
) -> None:
    user = await create_random_user(db)
    recipe = await create_random_recipe(db, submitter_id=user.id)
    response = await client.delete(f"{USERS}/{user.id}", headers=superuser_token_headers)
    assert response.status_code == 204
    # The database cascaded the delete; the shared test session must not answer from memory.
    db.expunge_all()
    gone = await client.get(f"{USERS}/{user.id}", headers=superuser_token_headers)
    assert gone.status_code == 404
    assert (await client.get(f"/api/v1/recipes/{recipe.id}")).status_code == 404


async def test_superuser_cannot_delete_themselves(
    client: httpx2.AsyncClient, superuser: User, superuser_token_headers: dict[str, str]
) -> None:
    response = await client.delete(f"{USERS}/{superuser.id}", headers=superuser_token_headers)
    assert response.status_code == 409
    assert response.json() == {"detail": "A superuser cannot delete their own account"}


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_admin_routes_unknown_user_is_404(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str], method: str
) -> None:
    response = await client.request(
        method, f"{USERS}/{MAX_ID}", json={"surname": "X"}, headers=superuser_token_headers
    )
    assert response.status_code == 404


# --- Scopes on every write and admin route ------------------------------------------------------

# Derived from the routes: every route that declares a scope, and every superuser route.
SCOPED_ROUTES = [e for e in endpoints(app) if e.scopes]
ADMIN_ROUTES = [e for e in SCOPED_ROUTES if e.superuser]


def _ids(routes: list[Endpoint]) -> list[Any]:
    return [pytest.param(e, id=f"{e.method} {e.path}") for e in routes]


async def _call(db: AsyncSession, owner: User, endpoint: Endpoint) -> tuple[str, Any]:
    rows = Rows(db, owner, owners(app))
    _, body = example_call(SPEC, endpoint)
    return await rows.url(endpoint.path), await rows.fill(body)


def test_scoped_routes_are_found() -> None:
    # The derivation sees the scopes through every alias and dependency.
    assert {scope for e in SCOPED_ROUTES for scope in e.scopes} == set(SCOPES)
    assert len(ADMIN_ROUTES) >= 5


@pytest.mark.parametrize("endpoint", _ids(SCOPED_ROUTES))
async def test_routes_refuse_a_token_without_their_scope(
    client: httpx2.AsyncClient, db: AsyncSession, superuser: User, endpoint: Endpoint
) -> None:
    url, body = await _call(db, superuser, endpoint)
    # A superuser's token holding every scope but the ones the route needs.
    other_scopes = [s for s in SCOPES if s not in endpoint.scopes]
    response = await client.request(
        endpoint.method, url, json=body, headers=auth_headers(superuser.id, scopes=other_scopes)
    )
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer scope="')
    assert set(challenge.removeprefix('Bearer scope="').rstrip('"').split()) == endpoint.scopes
    anonymous = await client.request(endpoint.method, url, json=body)
    assert anonymous.status_code == 401


@pytest.mark.parametrize("endpoint", _ids(ADMIN_ROUTES))
async def test_admin_routes_refuse_ordinary_users(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, endpoint: Endpoint
) -> None:
    # Even a forged claim of users:admin does not help a user who is not a superuser.
    url, body = await _call(db, normal_user, endpoint)
    headers = auth_headers(normal_user.id, scopes=SCOPES)
    response = await client.request(endpoint.method, url, json=body, headers=headers)
    assert response.status_code == 403


async def test_superuser_flag_without_scope_in_database_still_needs_is_superuser(
    client: httpx2.AsyncClient, db: AsyncSession
) -> None:
    # A token minted while the user was a superuser stops working for admin routes at demotion.
    admin = await create_random_user(db, is_superuser=True)
    headers = auth_headers(admin.id, scopes=SCOPES)
    assert (await client.get(USERS, headers=headers)).status_code == 200
    await crud.user.update(db, admin, {"is_superuser": False})
    assert (await client.get(USERS, headers=headers)).status_code == 403


def test_openapi_declares_scopes_per_route() -> None:
    schema = app.openapi()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert set(flows["password"]["scopes"]) == set(SCOPES) >= {"recipes:write", "users:admin"}
    paths = schema["paths"]

    def scopes(method: str, path: str) -> list[str]:
        [requirement] = paths[path][method]["security"]
        return list(requirement["OAuth2PasswordBearer"])

    assert scopes("post", "/api/v1/recipes") == ["recipes:write"]
    assert scopes("delete", "/api/v1/recipes/{recipe_id}") == ["recipes:write"]
    assert scopes("get", "/api/v1/users") == ["users:admin"]
    assert scopes("patch", "/api/v1/users/{user_id}") == ["users:admin"]
    assert scopes("get", "/api/v1/users/me") == []


async def test_update_me_racing_the_accounts_deletion_is_404(
    client: httpx2.AsyncClient,
    normal_user_token_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deleted by another request after this one authenticated.
    lose_after_loading(monkeypatch, crud.user, User)
    response = await client.patch(
        f"{USERS}/me", json={"first_name": "Late"}, headers=normal_user_token_headers
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


async def test_signup_with_an_nfkc_equal_email_is_409(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    # Fullwidth letters are the same address under NFKC: not a second account.
    local, domain = normal_user.email.split("@")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in local.upper())
    response = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": f"{fullwidth}@{domain}",
            "password": "a-long-test-password",
            "first_name": "Twin",
            "surname": "Account",
        },
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this email already exists"}
    login = await client.post(
        "/api/v1/auth/login",
        data={"username": f" {fullwidth}@{domain} ", "password": DEFAULT_PASSWORD},
    )
    assert login.status_code == 200
