"""User endpoints: your own recipes, and lookups for superusers."""

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pagination import MAX_ID
from app.models import User
from tests.utils.recipe import create_random_recipe
from tests.utils.user import create_random_user

USERS = "/api/v1/users"


async def test_read_my_recipes_lists_only_mine(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    superuser: User,
    normal_user_token_headers: dict[str, str],
) -> None:
    mine = [await create_random_recipe(db, submitter_id=normal_user.id) for _ in range(3)]
    await create_random_recipe(db, submitter_id=superuser.id)
    first = await client.get(
        f"{USERS}/me/recipes", params={"limit": 2}, headers=normal_user_token_headers
    )
    assert first.status_code == 200
    page = first.json()
    second = await client.get(
        f"{USERS}/me/recipes",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=normal_user_token_headers,
    )
    ids = [r["id"] for r in page["items"] + second.json()["items"]]
    assert ids == [r.id for r in reversed(mine)]
    assert second.json()["next_cursor"] is None


async def test_read_my_recipes_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    assert (await client.get(f"{USERS}/me/recipes")).status_code == 401


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
