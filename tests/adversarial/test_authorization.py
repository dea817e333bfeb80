"""The authorization matrix: every route the app serves, called by every kind of caller.

Each row names one (method, path) and the status each principal must get. A route the app
serves without a row fails `test_matrix_covers_every_served_route`, so a new endpoint cannot
ship without someone deciding who may call it. A refused call must leave the database as it
was, which covers object-level (BOLA) and function-level (BFLA) authorization. Bodies that
try to set fields the caller does not own (mass assignment) are refused and change nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Mount, Route

from app import crud
from app.api.deps import get_ideas_client
from app.core.security import SCOPE_RECIPES_WRITE, SCOPES
from app.db.base_class import Base
from app.main import app, create_app
from app.models import Recipe, User
from app.schemas import IdeaFeed, IdeaRead
from tests.utils.recipe import create_random_recipe
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import auth_headers, random_email

# The callers. "user" owns the recipe every row works on; the last two hold correctly signed
# access tokens that lack a scope: the user's without recipes:write, the superuser's without
# users:admin.
PRINCIPALS = ("anonymous", "user", "other", "superuser", "user_no_scope", "admin_no_scope")
Statuses = tuple[int, int, int, int, int, int]

IDEA_URL = "https://example.com/ideas/leek-soup"
STATIC_FILE = "/docs/static/swagger-ui.css"


@dataclass(frozen=True)
class World:
    """What a row's request refers to, made afresh (and rolled back) for every cell."""

    user: User
    other: User
    superuser: User
    recipe: Recipe
    refresh_token: str
    reset_token: str


@dataclass(frozen=True)
class Call:
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: Statuses
    call: Callable[[World], Call]


def public(code: int) -> Statuses:
    return (code, code, code, code, code, code)


def logged_in(code: int) -> Statuses:
    return (401, code, code, code, code, code)


def writer(code: int) -> Statuses:
    """Needs recipes:write, which the superuser's admin-less token still has."""
    return (401, code, code, code, 403, code)


def owner(code: int) -> Statuses:
    """The recipe's submitter or a superuser, with recipes:write; 403 for anyone else."""
    return (401, code, 403, code, 403, code)


def admin(code: int) -> Statuses:
    """Superusers whose token carries users:admin."""
    return (401, 403, 403, code, 403, 403)


def at(url: str, **kwargs: Any) -> Callable[[World], Call]:
    return lambda _: Call(url, kwargs)


def signup_body() -> dict[str, str]:
    return {
        "email": random_email(),
        "password": "a-new-password",
        "first_name": "A",
        "surname": "B",
    }


RECIPE_BODY = {"label": "Leek soup", "source": "Test Kitchen", "url": "https://example.com/leek"}
API = "/api/v1"

MATRIX: tuple[Row, ...] = (
    # Probes, metrics, documentation and the HTML pages are public.
    Row("GET", "/healthz", public(200), at("/healthz")),
    Row("GET", "/readyz", public(200), at("/readyz")),
    Row("GET", "/metrics", public(200), at("/metrics")),
    Row("GET", "/openapi.json", public(200), at("/openapi.json")),
    Row("HEAD", "/openapi.json", public(200), at("/openapi.json")),
    Row("GET", "/docs", public(200), at("/docs")),
    Row("GET", "/docs/oauth2-redirect", public(200), at("/docs/oauth2-redirect")),
    Row("GET", "/redoc", public(200), at("/redoc")),
    Row("GET", "/docs/static", public(200), at(STATIC_FILE)),
    Row("GET", "/", public(200), at("/")),
    Row("GET", "/favicon.ico", public(200), at("/favicon.ico")),
    Row("GET", "/recipes/{recipe_id}", public(200), lambda w: Call(f"/recipes/{w.recipe.id}")),
    # Authentication: open to anyone, whatever token they send.
    Row(
        "POST",
        f"{API}/auth/signup",
        public(201),
        lambda _: Call(f"{API}/auth/signup", {"json": signup_body()}),
    ),
    Row(
        "POST",
        f"{API}/auth/login",
        public(200),
        lambda w: Call(
            f"{API}/auth/login", {"data": {"username": w.user.email, "password": DEFAULT_PASSWORD}}
        ),
    ),
    Row(
        "POST",
        f"{API}/auth/refresh",
        public(200),
        lambda w: Call(f"{API}/auth/refresh", {"json": {"refresh_token": w.refresh_token}}),
    ),
    Row(
        "POST",
        f"{API}/auth/logout",
        public(204),
        lambda w: Call(f"{API}/auth/logout", {"json": {"refresh_token": w.refresh_token}}),
    ),
    Row(
        "POST",
        f"{API}/auth/password-recovery",
        public(202),
        lambda w: Call(f"{API}/auth/password-recovery", {"json": {"email": w.user.email}}),
    ),
    Row(
        "POST",
        f"{API}/auth/password-reset",
        public(204),
        lambda w: Call(
            f"{API}/auth/password-reset",
            {"json": {"token": w.reset_token, "new_password": "another-password"}},
        ),
    ),
    # Your own account: any valid access token, whatever its scopes.
    Row("POST", f"{API}/auth/logout-all", logged_in(204), at(f"{API}/auth/logout-all")),
    Row(
        "POST",
        f"{API}/auth/password",
        logged_in(204),
        at(
            f"{API}/auth/password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": "another-password"},
        ),
    ),
    Row("GET", f"{API}/auth/me", logged_in(200), at(f"{API}/auth/me")),
    # Single sign-on: with no provider configured, every provider is unknown (404); identities
    # are the caller's own (tests/api/api_v1/test_sso.py covers ownership with real ones).
    Row("GET", f"{API}/auth/sso/providers", public(200), at(f"{API}/auth/sso/providers")),
    Row(
        "GET",
        f"{API}/auth/sso/{{provider}}/authorize",
        public(404),
        at(f"{API}/auth/sso/nope/authorize"),
    ),
    Row(
        "GET",
        f"{API}/auth/sso/{{provider}}/callback",
        public(404),
        at(f"{API}/auth/sso/nope/callback?code=c&state=s"),
    ),
    Row(
        "POST",
        f"{API}/auth/sso/exchange",
        public(400),
        at(f"{API}/auth/sso/exchange", json={"code": "not-a-code"}),
    ),
    Row("GET", f"{API}/auth/sso/identities", logged_in(200), at(f"{API}/auth/sso/identities")),
    Row(
        "DELETE",
        f"{API}/auth/sso/identities/{{identity_id}}",
        logged_in(404),
        at(f"{API}/auth/sso/identities/999999"),
    ),
    Row("GET", f"{API}/users/me", logged_in(200), at(f"{API}/users/me")),
    Row("PATCH", f"{API}/users/me", logged_in(200), at(f"{API}/users/me", json={"surname": "Z"})),
    # Superusers cannot delete themselves (409), so an admin always remains.
    Row(
        "DELETE",
        f"{API}/users/me",
        (401, 204, 204, 409, 204, 409),
        at(f"{API}/users/me", json={"current_password": DEFAULT_PASSWORD}),
    ),
    Row("GET", f"{API}/users/me/recipes", logged_in(200), at(f"{API}/users/me/recipes")),
    Row("GET", f"{API}/recipes/ideas", logged_in(200), at(f"{API}/recipes/ideas")),
    # Recipes: public reads; writes need recipes:write and, on an existing one, ownership.
    Row("GET", f"{API}/recipes", public(200), at(f"{API}/recipes")),
    Row("GET", f"{API}/recipes/search", public(200), at(f"{API}/recipes/search?keyword=e")),
    Row(
        "GET",
        f"{API}/recipes/{{recipe_id}}",
        public(200),
        lambda w: Call(f"{API}/recipes/{w.recipe.id}"),
    ),
    Row("POST", f"{API}/recipes", writer(201), at(f"{API}/recipes", json=RECIPE_BODY)),
    Row(
        "POST",
        f"{API}/recipes/ideas/import",
        writer(201),
        at(f"{API}/recipes/ideas/import", json={"url": IDEA_URL}),
    ),
    Row(
        "PATCH",
        f"{API}/recipes/{{recipe_id}}",
        owner(200),
        lambda w: Call(f"{API}/recipes/{w.recipe.id}", {"json": {"label": "Changed"}}),
    ),
    Row(
        "DELETE",
        f"{API}/recipes/{{recipe_id}}",
        owner(204),
        lambda w: Call(f"{API}/recipes/{w.recipe.id}"),
    ),
    # User administration: superusers with users:admin only.
    Row("GET", f"{API}/users", admin(200), at(f"{API}/users")),
    Row(
        "POST", f"{API}/users", admin(201), lambda _: Call(f"{API}/users", {"json": signup_body()})
    ),
    Row("GET", f"{API}/users/{{user_id}}", admin(200), lambda w: Call(f"{API}/users/{w.user.id}")),
    Row(
        "PATCH",
        f"{API}/users/{{user_id}}",
        admin(200),
        lambda w: Call(f"{API}/users/{w.user.id}", {"json": {"first_name": "Q"}}),
    ),
    Row(
        "DELETE", f"{API}/users/{{user_id}}", admin(204), lambda w: Call(f"{API}/users/{w.user.id}")
    ),
)


def served_routes(application: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, seen through included routers and mounts."""
    served: set[tuple[str, str]] = set()
    for context in iter_route_contexts(application.routes):
        route, path = context.original_route, str(context.path)
        if isinstance(route, Mount):
            served.add(("GET", path))
        elif isinstance(route, APIRoute | Route):
            served.update((method, path) for method in route.methods or ())
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return served


def matrix_gaps(application: FastAPI) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Routes served without a row, and rows for routes no longer served."""
    rows = {(row.method, row.path) for row in MATRIX}
    served = served_routes(application)
    return served - rows, rows - served


def test_matrix_covers_every_served_route() -> None:
    assert len({(row.method, row.path) for row in MATRIX}) == len(MATRIX), "duplicate rows"
    missing, stale = matrix_gaps(app)
    assert not missing, f"routes without a row in MATRIX: {sorted(missing)}"
    assert not stale, f"rows for routes the app does not serve: {sorted(stale)}"


def test_matrix_check_fails_for_a_route_without_a_row() -> None:
    application = create_app()
    assert matrix_gaps(application) == (set(), set())

    @application.get("/api/v1/forgotten/{thing_id}")
    async def forgotten(thing_id: int) -> int:
        return thing_id

    async def raw(_: Request) -> Response:
        return Response()

    application.router.add_route("/raw", raw, methods=["PUT"])
    missing, _ = matrix_gaps(application)
    assert missing == {("GET", "/api/v1/forgotten/{thing_id}"), ("PUT", "/raw")}


class FakeIdeas:
    """One idea, no network."""

    feed = IdeaFeed(
        ideas={"soups": [IdeaRead(title="Leek soup", url=IDEA_URL, score=7)]}, errors={}
    )

    async def get_ideas(self, _limit: int) -> IdeaFeed:
        return self.feed

    async def find(self, url: str) -> tuple[str, IdeaRead] | None:
        return ("soups", self.feed.ideas["soups"][0]) if url == IDEA_URL else None


@pytest.fixture
async def world(db: AsyncSession) -> World:
    user = await create_random_user(db)
    other = await create_random_user(db)
    superuser = await create_random_user(db, is_superuser=True)
    recipe = await create_random_recipe(db, submitter_id=user.id, label="Leek and potato")
    refresh_token, _ = await crud.refresh_token.create_for_user(
        db, user_id=user.id, scope=SCOPE_RECIPES_WRITE
    )
    reset_token = await crud.password_reset_token.create_for_user(db, user_id=user.id)
    return World(user, other, superuser, recipe, refresh_token, reset_token)


def headers_for(principal: str, world: World) -> dict[str, str]:
    tokens: dict[str, dict[str, str]] = {
        "anonymous": {},
        "user": auth_headers(world.user.id),
        "other": auth_headers(world.other.id),
        "superuser": auth_headers(world.superuser.id, scopes=SCOPES),
        "user_no_scope": auth_headers(world.user.id, scopes=()),
        "admin_no_scope": auth_headers(world.superuser.id, scopes=[SCOPE_RECIPES_WRITE]),
    }
    return tokens[principal]


async def snapshot(db: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read afresh from the database."""
    state = {}
    for table in Base.metadata.sorted_tables:
        rows = await db.execute(select(table).order_by(*table.primary_key.columns))
        state[table.name] = [tuple(row) for row in rows]
    return state


CELLS = [
    pytest.param(row, principal, row.expect[i], id=f"{row.method} {row.path} as {principal}")
    for row in MATRIX
    for i, principal in enumerate(PRINCIPALS)
]


@pytest.mark.parametrize(("row", "principal", "expected"), CELLS)
async def test_route_answers_each_principal_as_the_matrix_says(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    world: World,
    row: Row,
    principal: str,
    expected: int,
) -> None:
    app.dependency_overrides[get_ideas_client] = FakeIdeas
    call = row.call(world)
    before = await snapshot(db)
    response = await client.request(
        row.method, call.url, headers=headers_for(principal, world), **call.kwargs
    )
    assert response.status_code == expected, response.text
    if expected >= 400:
        # A refused call has no effect: nothing read-then-written, nothing half done.
        assert await snapshot(db) == before


@dataclass(frozen=True)
class Smuggle:
    """A valid body plus one field the caller must not set, sent by `principal`."""

    method: str
    path: str
    body: Callable[[World], dict[str, Any]]
    principal: str
    extra: str
    value: Callable[[World], Any]
    ok: int

    def url(self, w: World) -> str:
        return self.path.format(recipe_id=w.recipe.id, user_id=w.user.id)


RECIPE_PATH = f"{API}/recipes/{{recipe_id}}"


SMUGGLES = [
    *(
        Smuggle("POST", f"{API}/auth/signup", lambda _: signup_body(), "anonymous", f, v, 201)
        for f, v in (
            ("is_superuser", lambda _: True),
            ("is_active", lambda _: False),
            ("id", lambda w: w.superuser.id + 1000),
            ("hashed_password", lambda _: "$argon2id$forged"),
        )
    ),
    *(
        Smuggle("POST", f"{API}/recipes", lambda _: dict(RECIPE_BODY), "user", f, v, 201)
        for f, v in (
            ("submitter_id", lambda w: w.other.id),
            ("id", lambda w: w.recipe.id + 1000),
            ("created_at", lambda _: "2000-01-01T00:00:00Z"),
        )
    ),
    Smuggle(
        "POST",
        f"{API}/recipes/ideas/import",
        lambda _: {"url": IDEA_URL},
        "user",
        "submitter_id",
        lambda w: w.other.id,
        201,
    ),
    *(
        Smuggle("PATCH", RECIPE_PATH, lambda _: {"label": "Mine now"}, "user", f, v, 200)
        for f, v in (("submitter_id", lambda w: w.other.id), ("id", lambda w: w.recipe.id + 1000))
    ),
    *(
        Smuggle("PATCH", f"{API}/users/me", lambda _: {"surname": "Z"}, "user", f, v, 200)
        for f, v in (
            ("is_superuser", lambda _: True),
            ("is_active", lambda _: False),
            ("id", lambda w: w.superuser.id + 1000),
            ("hashed_password", lambda _: "$argon2id$forged"),
            ("password", lambda _: "a-password-set-without-the-old-one"),
        )
    ),
    *(
        Smuggle(
            "PATCH", f"{API}/users/{{user_id}}", lambda _: {"surname": "Z"}, "superuser", f, v, 200
        )
        for f, v in (
            ("id", lambda w: w.superuser.id + 1000),
            ("hashed_password", lambda _: "$argon2id$forged"),
            ("created_at", lambda _: "2000-01-01T00:00:00Z"),
        )
    ),
    Smuggle(
        "POST",
        f"{API}/users",
        lambda _: signup_body(),
        "superuser",
        "hashed_password",
        lambda _: "$argon2id$forged",
        201,
    ),
]


@pytest.mark.parametrize(
    "smuggle", [pytest.param(s, id=f"{s.method} {s.path} {s.extra}") for s in SMUGGLES]
)
async def test_write_with_a_field_the_caller_does_not_own_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, world: World, smuggle: Smuggle
) -> None:
    app.dependency_overrides[get_ideas_client] = FakeIdeas
    url, body, headers = (
        smuggle.url(world),
        smuggle.body(world),
        headers_for(smuggle.principal, world),
    )
    before = await snapshot(db)

    forged = await client.request(
        smuggle.method, url, headers=headers, json=body | {smuggle.extra: smuggle.value(world)}
    )

    assert forged.status_code == 422, forged.text
    assert [e["loc"] for e in forged.json()["detail"]] == [["body", smuggle.extra]]
    assert "forged" not in forged.text
    assert await snapshot(db) == before
    # The same body without the extra field is accepted, so the field alone was refused.
    honest = await client.request(smuggle.method, url, headers=headers, json=body)
    assert honest.status_code == smuggle.ok, honest.text


async def test_created_rows_belong_to_the_caller_and_are_ordinary(
    client: httpx2.AsyncClient, db: AsyncSession, world: World
) -> None:
    signup = await client.post(f"{API}/auth/signup", json=signup_body())
    recipe = await client.post(
        f"{API}/recipes", headers=headers_for("other", world), json=RECIPE_BODY
    )

    new_user = await db.get(User, signup.json()["id"], populate_existing=True)
    assert new_user is not None
    assert (new_user.is_superuser, new_user.is_active) == (False, True)
    stored = await db.get(Recipe, recipe.json()["id"], populate_existing=True)
    assert stored is not None
    assert stored.submitter_id == world.other.id


async def test_superuser_edit_keeps_a_recipe_with_its_submitter(
    client: httpx2.AsyncClient, db: AsyncSession, world: World
) -> None:
    response = await client.patch(
        RECIPE_PATH.format(recipe_id=world.recipe.id),
        headers=headers_for("superuser", world),
        json={"label": "Edited"},
    )

    assert response.status_code == 200
    stored = await db.get(Recipe, world.recipe.id, populate_existing=True)
    assert stored is not None
    assert (stored.label, stored.submitter_id) == ("Edited", world.user.id)


async def test_other_users_recipe_is_not_revealed_as_missing_or_changed(
    client: httpx2.AsyncClient, world: World
) -> None:
    # 403 for someone else's recipe, 404 only for one that does not exist: ids are public
    # (recipes are readable by anyone), so the difference discloses nothing.
    other = headers_for("other", world)
    denied = await client.patch(
        RECIPE_PATH.format(recipe_id=world.recipe.id), headers=other, json={"label": "Mine"}
    )
    missing = await client.patch(
        f"{API}/recipes/{world.recipe.id + 1000}", headers=other, json={"label": "Mine"}
    )
    assert (denied.status_code, missing.status_code) == (403, 404)
    assert (await client.get(RECIPE_PATH.format(recipe_id=world.recipe.id))).json()[
        "label"
    ] == world.recipe.label
