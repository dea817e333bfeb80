"""Recipe endpoints: listing, search, reads and owner-only writes."""

import asyncio
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app import crud
from app.api.deps import get_cache
from app.core.cache import NoCache
from app.core.config import settings
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import MAX_ID, encode_cursor
from app.db import session as session_module
from app.db.session import ReadSession, make_engine, make_read_engine, make_sessionmaker
from app.main import app
from app.models import User
from app.models.recipe import Recipe
from tests.utils.db import migrate
from tests.utils.recipe import create_random_recipe
from tests.utils.user import create_random_user
from tests.utils.utils import auth_headers, lose_after_loading, override_sessions

RECIPES = "/api/v1/recipes"
MY_RECIPES = "/api/v1/users/me/recipes"
NEW_RECIPE = {"label": "Lemon Tart", "source": "Home", "url": "https://example.com/lemon-tart"}


async def test_read_recipes_pages_through_everything_newest_first(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    created = [await create_random_recipe(db, submitter_id=normal_user.id) for _ in range(5)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2, "submitter_id": normal_user.id}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(RECIPES, params=params)
        assert response.status_code == 200
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted((r.id for r in created), reverse=True)


async def test_read_recipes_without_filter_includes_everyone(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, superuser: User
) -> None:
    mine = await create_random_recipe(db, submitter_id=normal_user.id)
    theirs = await create_random_recipe(db, submitter_id=superuser.id)
    response = await client.get(RECIPES, params={"limit": 100})
    ids = [item["id"] for item in response.json()["items"]]
    assert ids.index(theirs.id) < ids.index(mine.id)


async def test_read_recipes_filters_by_submitter(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, superuser: User
) -> None:
    await create_random_recipe(db, submitter_id=superuser.id)
    mine = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.get(RECIPES, params={"submitter_id": normal_user.id})
    assert [item["id"] for item in response.json()["items"]] == [mine.id]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"limit": 1.5},
        {"limit": 10**30},
        {"cursor": "not-a-cursor!"},
        {"cursor": encode_cursor(0)},
        {"cursor": encode_cursor(MAX_ID + 1)},
        {"cursor": "x" * 65},
        {"submitter_id": 0},
        {"submitter_id": MAX_ID + 1},
    ],
)
async def test_read_recipes_bad_paging_is_422(
    client: httpx2.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get(RECIPES, params=params)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_search_recipes_is_case_insensitive_and_literal(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    soup = await create_random_recipe(db, submitter_id=normal_user.id, label="Tomato SOUP 100%")
    await create_random_recipe(db, submitter_id=normal_user.id, label="Tomato salad")
    response = await client.get(f"{RECIPES}/search", params={"keyword": "soup"})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [soup.id]
    # % and _ are matched as characters, not as wildcards.
    literal = await client.get(f"{RECIPES}/search", params={"keyword": "0%"})
    assert [r["id"] for r in literal.json()["results"]] == [soup.id]
    wildcard = await client.get(f"{RECIPES}/search", params={"keyword": "Tomato_"})
    assert wildcard.json()["results"] == []


async def test_search_recipes_limits_after_filtering(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    matches = [
        await create_random_recipe(db, submitter_id=normal_user.id, label=f"Curry no. {i}")
        for i in range(3)
    ]
    for _ in range(3):
        await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.get(f"{RECIPES}/search", params={"keyword": "CURRY", "max_results": 2})
    assert [r["id"] for r in response.json()["results"]] == [matches[2].id, matches[1].id]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"keyword": ""},
        {"keyword": "x" * 101},
        {"keyword": "a\x00b"},
        {"keyword": "soup", "max_results": 0},
        {"keyword": "soup", "max_results": 101},
    ],
)
async def test_search_recipes_bad_query_is_422(
    client: httpx2.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get(f"{RECIPES}/search", params=params)
    assert response.status_code == 422


async def test_read_recipe_returns_it(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.get(f"{RECIPES}/{recipe.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["label"] == recipe.label
    assert body["submitter_id"] == normal_user.id
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


async def test_read_recipe_unknown_is_404(client: httpx2.AsyncClient) -> None:
    response = await client.get(f"{RECIPES}/{MAX_ID}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Recipe not found"}


@pytest.mark.parametrize("recipe_id", ["0", "-1", "abc", "1.5", str(MAX_ID + 1), "9" * 40])
async def test_read_recipe_bad_id_is_422(client: httpx2.AsyncClient, recipe_id: str) -> None:
    response = await client.get(f"{RECIPES}/{recipe_id}")
    assert response.status_code == 422


async def test_create_recipe_sets_the_caller_as_submitter(
    client: httpx2.AsyncClient, normal_user: User, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.post(RECIPES, json=NEW_RECIPE, headers=normal_user_token_headers)
    assert response.status_code == 201
    body = response.json()
    assert body["submitter_id"] == normal_user.id
    assert body["label"] == "Lemon Tart"
    read = await client.get(f"{RECIPES}/{body['id']}")
    assert read.json() == body


async def test_create_recipe_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    response = await client.post(RECIPES, json=NEW_RECIPE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "javascript:alert(1)"},
        {"url": "ftp://example.com/x"},
        {"url": "https://example.com/" + "a" * 2048},
        {"label": ""},
        {"label": "   "},
        {"label": "x" * 257},
        {"label": "bad\x00label"},
        {"source": "y" * 257},
        {"submitter_id": 1},
        {"id": 5},
    ],
)
async def test_create_recipe_bad_body_is_422(
    client: httpx2.AsyncClient,
    normal_user_token_headers: dict[str, str],
    overrides: dict[str, object],
) -> None:
    response = await client.post(
        RECIPES, json=NEW_RECIPE | overrides, headers=normal_user_token_headers
    )
    assert response.status_code == 422


async def test_update_recipe_by_owner_changes_only_sent_fields(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    before = (await client.get(f"{RECIPES}/{recipe.id}")).json()
    response = await client.patch(
        f"{RECIPES}/{recipe.id}", json={"label": "Renamed"}, headers=auth_headers(normal_user.id)
    )
    assert response.status_code == 200
    after = response.json()
    assert after["label"] == "Renamed"
    assert after["url"] == before["url"]
    assert after["source"] == before["source"]
    assert after["updated_at"] >= before["updated_at"]


async def test_update_recipe_by_superuser_is_allowed(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    superuser_token_headers: dict[str, str],
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.patch(
        f"{RECIPES}/{recipe.id}", json={"source": "Moderated"}, headers=superuser_token_headers
    )
    assert response.status_code == 200
    assert response.json()["source"] == "Moderated"
    assert response.json()["submitter_id"] == normal_user.id


async def test_update_recipe_by_someone_else_is_403(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    other = await create_random_user(db)
    response = await client.patch(
        f"{RECIPES}/{recipe.id}", json={"label": "Mine now"}, headers=auth_headers(other.id)
    )
    assert response.status_code == 403
    assert (await client.get(f"{RECIPES}/{recipe.id}")).json()["label"] == recipe.label


async def test_update_recipe_unknown_is_404(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"{RECIPES}/{MAX_ID}", json={"label": "x"}, headers=normal_user_token_headers
    )
    assert response.status_code == 404


async def test_update_recipe_anonymous_is_401(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.patch(f"{RECIPES}/{recipe.id}", json={"label": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [{"label": None}, {"url": None}, {"url": "mailto:a@b.c"}, {"submitter_id": 2}, {"label": ""}],
)
async def test_update_recipe_bad_body_is_422(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, body: dict[str, object]
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.patch(
        f"{RECIPES}/{recipe.id}", json=body, headers=auth_headers(normal_user.id)
    )
    assert response.status_code == 422


async def test_delete_recipe_by_owner_removes_it(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.delete(f"{RECIPES}/{recipe.id}", headers=auth_headers(normal_user.id))
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{RECIPES}/{recipe.id}")).status_code == 404


async def test_delete_recipe_by_superuser_is_allowed(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    superuser_token_headers: dict[str, str],
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.delete(f"{RECIPES}/{recipe.id}", headers=superuser_token_headers)
    assert response.status_code == 204


async def test_delete_recipe_by_someone_else_is_403(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    other = await create_random_user(db)
    response = await client.delete(f"{RECIPES}/{recipe.id}", headers=auth_headers(other.id))
    assert response.status_code == 403
    assert (await client.get(f"{RECIPES}/{recipe.id}")).status_code == 200


async def test_delete_recipe_unknown_is_404_and_anonymous_is_401(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    missing = await client.delete(f"{RECIPES}/{MAX_ID}", headers=normal_user_token_headers)
    anonymous = await client.delete(f"{RECIPES}/{MAX_ID}")
    assert missing.status_code == 404
    assert anonymous.status_code == 401


def _deleted_after_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe is loaded, then deleted by a concurrent request before this one writes."""
    lose_after_loading(monkeypatch, recipes, Recipe)


@pytest.mark.parametrize(("method", "body"), [("PATCH", {"label": "Too late"}), ("DELETE", None)])
async def test_write_to_a_recipe_deleted_meanwhile_is_404(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    normal_user_token_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    body: dict[str, str] | None,
) -> None:
    # PATCH racing DELETE (the UPDATE matches no row), or the second of two DELETEs.
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    recipe_id = recipe.id
    _deleted_after_loading(monkeypatch)
    response = await client.request(
        method, f"{RECIPES}/{recipe_id}", json=body, headers=normal_user_token_headers
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Recipe not found"}


class _SeeingCache:
    """A cache that, when asked to drop a recipe, reads that recipe through a session of its
    own: what a concurrent GET would see and cache again."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.seen: list[str | None] = []

    async def get(self, key: str) -> bytes | None:  # noqa: ARG002
        return None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        pass

    async def delete(self, key: str) -> None:
        recipe_id = int(key.rsplit(":", 1)[-1])
        async with self.sessions() as other:
            recipe = await other.get(Recipe, recipe_id)
            self.seen.append(None if recipe is None else recipe.label)


async def _invalidations(url: str) -> list[str | None]:
    engine = create_async_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as db:
        user = await create_random_user(db)
        recipe = await create_random_recipe(db, submitter_id=user.id)
        await db.commit()
        recipe_id, headers = recipe.id, auth_headers(user.id)
    cache = _SeeingCache(sessions)
    override_sessions(app, sessions)
    app.dependency_overrides[get_cache] = lambda: cache
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            path = f"/api/v1/recipes/{recipe_id}"
            patched = await http.patch(path, json={"label": "Changed"}, headers=headers)
            assert patched.status_code == 200, patched.text
            deleted = await http.delete(path, headers=headers)
            assert deleted.status_code == 204, deleted.text
    finally:
        app.dependency_overrides.clear()
        await engine.dispose()
    return cache.seen


def test_cache_is_dropped_only_after_the_change_is_committed(fresh_database_url: str) -> None:
    # Dropped before the commit, a read in between would cache the old row (or a deleted one).
    migrate(fresh_database_url)
    assert asyncio.run(_invalidations(fresh_database_url)) == ["Changed", None]


async def test_read_my_recipes_lists_only_mine(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    superuser: User,
    normal_user_token_headers: dict[str, str],
) -> None:
    mine = [await create_random_recipe(db, submitter_id=normal_user.id) for _ in range(3)]
    await create_random_recipe(db, submitter_id=superuser.id)
    first = await client.get(MY_RECIPES, params={"limit": 2}, headers=normal_user_token_headers)
    assert first.status_code == 200
    page = first.json()
    second = await client.get(
        MY_RECIPES,
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=normal_user_token_headers,
    )
    ids = [r["id"] for r in page["items"] + second.json()["items"]]
    assert ids == [r.id for r in reversed(mine)]
    assert second.json()["next_cursor"] is None


async def test_read_my_recipes_anonymous_is_401(client: httpx2.AsyncClient) -> None:
    assert (await client.get(MY_RECIPES)).status_code == 401


CALLER_ROUTES = [("GET", MY_RECIPES, None), ("POST", RECIPES, NEW_RECIPE)]


@pytest.mark.parametrize(("method", "path", "body"), CALLER_ROUTES)
@pytest.mark.parametrize("change", ["deactivated", "token_version", "deleted"])
async def test_own_list_and_create_refuse_a_changed_user_at_once(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    method: str,
    path: str,
    body: dict[str, str] | None,
    change: str,
) -> None:
    headers = auth_headers(normal_user.id)
    assert (await client.request(method, path, json=body, headers=headers)).is_success
    if change == "deleted":
        await crud.user.remove(db, normal_user)
    else:
        changes: dict[str, dict[str, Any]] = {
            "deactivated": {"is_active": False},
            "token_version": {"token_version": 1},
        }
        await crud.user.update(db, normal_user, changes[change])
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401


async def _served_by_one_connection(url: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    # One pooled connection for the whole app (PostgreSQL): a request that held two at once
    # would wait for itself until the pool timeout (503).
    one = {"DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0, "DB_POOL_TIMEOUT": 5}
    engine = make_engine(url, settings.model_copy(update=one))
    monkeypatch.setattr(session_module, "SessionLocal", make_sessionmaker(engine))
    monkeypatch.setattr(session_module, "_reads", ReadSession(make_read_engine(engine)))
    async with make_sessionmaker(engine)() as db:
        user = await create_random_user(db)
        await db.commit()
        headers = auth_headers(user.id)
    app.dependency_overrides[get_cache] = NoCache
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            created = await http.post(RECIPES, json=NEW_RECIPE, headers=headers)
            path = f"{RECIPES}/{created.json()['id']}"
            answers = await asyncio.gather(
                *(http.get(MY_RECIPES, headers=headers) for _ in range(4)),
                *(http.post(RECIPES, json=NEW_RECIPE, headers=headers) for _ in range(4)),
                http.patch(path, json={"label": "Changed"}, headers=headers),
            )
            mine = await http.get(MY_RECIPES, headers=headers)
    finally:
        app.dependency_overrides.clear()
        await engine.dispose()
    assert len(mine.json()["items"]) == 5
    return [created.status_code, *(a.status_code for a in answers)]


def test_caller_routes_hold_one_pooled_connection_at_a_time(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller is read on the app's own read path (a row, not a model), its connection
    returned before the route's work takes one."""
    migrate(fresh_database_url)
    statuses = asyncio.run(_served_by_one_connection(fresh_database_url, monkeypatch))
    assert statuses == [201, *[200] * 4, *[201] * 4, 200]


async def test_create_recipe_reads_the_caller_once(
    client: httpx2.AsyncClient, normal_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The idempotency dependency takes the id from the token, not a second user check.
    reads: list[int] = []
    get = crud.user.get

    async def counted(db: Any, id: int) -> User | None:
        reads.append(id)
        return await get(db, id)

    monkeypatch.setattr(crud.user, "get", counted)
    headers = {**auth_headers(normal_user.id), "Idempotency-Key": "once"}
    response = await client.post(RECIPES, json=NEW_RECIPE, headers=headers)
    assert response.status_code == 201
    assert reads == [normal_user.id]
