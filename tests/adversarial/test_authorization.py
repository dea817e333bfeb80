"""The authorization matrix: every route the app serves, called by every kind of caller.

The matrix is derived, not kept by hand: each route's expected answers come from what it
declares (security scopes, the ownership marker of `owned()`, the superuser dependency, a
public cache policy), and its call from the OpenAPI examples and each resource's factory (see
tests/utils/routes.py). An API route open to anyone that declares no public policy, or a route
the test cannot call, fails `test_matrix_covers_every_served_route`, so a new endpoint cannot
ship without someone deciding who may call it. A refused call must leave the database as it
was, which covers object-level (BOLA) and function-level (BFLA) authorization. Bodies that try
to set fields the caller does not own (mass assignment) are refused and change nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import SCOPES, entitled_scopes, scope_string
from app.db.base_class import Base
from app.main import app, create_app
from app.models import User
from app.models.recipe import Recipe
from tests.utils.routes import PRINCIPALS, Endpoint, Rows, Statuses, endpoints, example_call, owners
from tests.utils.slices import FAKES, collect
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import auth_headers, random_email

RECIPE_BODY = {"label": "Leek soup", "source": "Test Kitchen", "url": "https://example.com/leek"}
STATIC_FILE = "/docs/static/swagger-ui.css"
API = "/api/v1"
SPEC = app.openapi()


@dataclass(frozen=True)
class World:
    """What a row's request refers to, made afresh (and rolled back) for every cell."""

    user: User
    other: User
    superuser: User
    rows: Rows
    refresh_token: str
    reset_token: str


@dataclass(frozen=True)
class Call:
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def at(url: str, **kwargs: Any) -> Callable[[World], Call]:
    return lambda _: Call(url, kwargs)


def _slice_call(request: Callable[[World], tuple[str, dict[str, Any]]], w: World) -> Call:
    return Call(*request(w))


def signup_body() -> dict[str, str]:
    return {
        "email": random_email(),
        "password": "a-new-password",
        "first_name": "A",
        "surname": "B",
    }


# Calls whose inputs are secrets or outside data that no example can hold. Every other route is
# called with its OpenAPI examples.
CALLS: dict[tuple[str, str], Callable[[World], Call]] = {
    ("GET", "/docs/static"): at(STATIC_FILE),
    ("POST", f"{API}/auth/signup"): lambda _: Call(f"{API}/auth/signup", {"json": signup_body()}),
    ("POST", f"{API}/auth/login"): lambda w: Call(
        f"{API}/auth/login", {"data": {"username": w.user.email, "password": DEFAULT_PASSWORD}}
    ),
    ("POST", f"{API}/auth/refresh"): lambda w: Call(
        f"{API}/auth/refresh", {"json": {"refresh_token": w.refresh_token}}
    ),
    ("POST", f"{API}/auth/logout"): lambda w: Call(
        f"{API}/auth/logout", {"json": {"refresh_token": w.refresh_token}}
    ),
    ("POST", f"{API}/auth/password-recovery"): lambda w: Call(
        f"{API}/auth/password-recovery", {"json": {"email": w.user.email}}
    ),
    ("POST", f"{API}/auth/password-reset"): lambda w: Call(
        f"{API}/auth/password-reset",
        {"json": {"token": w.reset_token, "new_password": "another-password"}},
    ),
    ("POST", f"{API}/auth/password"): at(
        f"{API}/auth/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "another-password"},
    ),
    ("PATCH", f"{API}/users/me"): at(f"{API}/users/me", json={"surname": "Z"}),
    ("DELETE", f"{API}/users/me"): at(
        f"{API}/users/me", json={"current_password": DEFAULT_PASSWORD}
    ),
    ("POST", f"{API}/users"): lambda _: Call(f"{API}/users", {"json": signup_body()}),
    # Optional slices' calls, from their tests/utils module.
    **{
        (method, path): partial(_slice_call, request)
        for method, path, request in collect("AUTHORIZATION_CALLS")
    },
}
# Where the answer is not the route's access rule alone. Superusers cannot delete themselves
# (409), so an admin always remains.
EXPECT: dict[tuple[str, str], Statuses] = {
    ("DELETE", f"{API}/users/me"): (401, 204, 204, 409, 204, 409),
}
# Open to anyone by design, though they declare no public cache policy: the auth flows.
OPEN = {
    (e.method, e.path)
    for e in endpoints(app)
    if e.path.startswith(f"{API}/auth/") and (e.method, e.path) in CALLS
}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: Statuses
    call: Callable[[World], Any]


def _generic_call(endpoint: Endpoint) -> Callable[[World], Any]:
    async def call(world: World) -> Call:
        query, body = example_call(SPEC, endpoint)
        kwargs: dict[str, Any] = {"params": query} if query else {}
        if body is not None:
            kwargs["json"] = await world.rows.fill(body)
        return Call(await world.rows.url(endpoint.path), kwargs)

    return call


def matrix(application: FastAPI) -> tuple[list[Row], list[str]]:
    """A row per served route, and what keeps a route from having one."""
    rows, problems = [], []
    for endpoint in endpoints(application):
        key = (endpoint.method, endpoint.path)
        if not endpoint.declared and key not in OPEN:
            problems.append(f"{endpoint.method} {endpoint.path}: open to anyone, not declared")
            continue
        call = CALLS.get(key) or _generic_call(endpoint)
        rows.append(Row(*key, EXPECT.get(key) or endpoint.expect(), call))
    return rows, problems


MATRIX, PROBLEMS = matrix(app)


def test_matrix_covers_every_served_route() -> None:
    assert len({(row.method, row.path) for row in MATRIX}) == len(MATRIX), "duplicate rows"
    assert not PROBLEMS, PROBLEMS
    stale = (CALLS.keys() | EXPECT.keys()) - {(row.method, row.path) for row in MATRIX}
    assert not stale, f"special cases for routes the app does not serve: {sorted(stale)}"


def test_matrix_check_fails_for_an_undeclared_open_route() -> None:
    application = create_app()
    assert matrix(application)[1] == []

    @application.get("/api/v1/forgotten/{thing_id}")
    async def forgotten(thing_id: int) -> int:
        return thing_id

    async def raw(_: Request) -> Response:
        return Response()

    application.router.add_route("/api/v1/raw", raw, methods=["PUT"])
    assert matrix(application)[1] == [
        "GET /api/v1/forgotten/{thing_id}: open to anyone, not declared",
        "PUT /api/v1/raw: open to anyone, not declared",
    ]


@pytest.fixture
async def world(db: AsyncSession) -> World:
    user = await create_random_user(db)
    other = await create_random_user(db)
    superuser = await create_random_user(db, is_superuser=True)
    refresh_token, _ = await crud.refresh_token.create_for_user(
        db, user_id=user.id, scope=scope_string(entitled_scopes(is_superuser=False))
    )
    reset_token = await crud.password_reset_token.create_for_user(db, user_id=user.id)
    rows = Rows(db, user, owners(app))
    return World(user, other, superuser, rows, refresh_token, reset_token)


def headers_for(principal: str, world: World) -> dict[str, str]:
    tokens: dict[str, dict[str, str]] = {
        "anonymous": {},
        "user": auth_headers(world.user.id),
        "other": auth_headers(world.other.id),
        "superuser": auth_headers(world.superuser.id, scopes=SCOPES),
        "user_no_scope": auth_headers(world.user.id, scopes=()),
        "admin_no_scope": auth_headers(
            world.superuser.id, scopes=entitled_scopes(is_superuser=False)
        ),
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
    app.dependency_overrides.update(FAKES)
    call = row.call(world)
    if not isinstance(call, Call):
        call = await call
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

    async def url(self, w: World) -> str:
        return await w.rows.url(self.path)


RECIPE_PATH = f"{API}/recipes/{{recipe_id}}"


def _copy(body: dict[str, Any], _: World) -> dict[str, Any]:
    return dict(body)


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
            ("id", lambda w: w.rows.ids["recipe_id"] + 1000),
            ("created_at", lambda _: "2000-01-01T00:00:00Z"),
        )
    ),
    *(
        Smuggle("PATCH", RECIPE_PATH, lambda _: {"label": "Mine now"}, "user", f, v, 200)
        for f, v in (
            ("submitter_id", lambda w: w.other.id),
            ("id", lambda w: w.rows.ids["recipe_id"] + 1000),
        )
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
    *(
        Smuggle(method, path, partial(_copy, body), principal, extra, value, ok)
        for method, path, body, principal, extra, value, ok in collect("SMUGGLES")
    ),
]


@pytest.mark.parametrize(
    "smuggle", [pytest.param(s, id=f"{s.method} {s.path} {s.extra}") for s in SMUGGLES]
)
async def test_write_with_a_field_the_caller_does_not_own_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, world: World, smuggle: Smuggle
) -> None:
    app.dependency_overrides.update(FAKES)
    await world.rows.id_for("recipe_id")  # what the forged values point at
    url, body, headers = (
        await smuggle.url(world),
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
    recipe_id = await world.rows.id_for("recipe_id")
    response = await client.patch(
        RECIPE_PATH.format(recipe_id=recipe_id),
        headers=headers_for("superuser", world),
        json={"label": "Edited"},
    )

    assert response.status_code == 200
    stored = await db.get(Recipe, recipe_id, populate_existing=True)
    assert stored is not None
    assert (stored.label, stored.submitter_id) == ("Edited", world.user.id)


async def test_other_users_recipe_is_not_revealed_as_missing_or_changed(
    client: httpx2.AsyncClient, world: World
) -> None:
    recipe_id = await world.rows.id_for("recipe_id")
    label = (await client.get(RECIPE_PATH.format(recipe_id=recipe_id))).json()["label"]
    # 403 for someone else's recipe, 404 only for one that does not exist: ids are public
    # (recipes are readable by anyone), so the difference discloses nothing.
    other = headers_for("other", world)
    denied = await client.patch(
        RECIPE_PATH.format(recipe_id=recipe_id), headers=other, json={"label": "Mine"}
    )
    missing = await client.patch(
        f"{API}/recipes/{recipe_id + 1000}", headers=other, json={"label": "Mine"}
    )
    assert (denied.status_code, missing.status_code) == (403, 404)
    assert (await client.get(RECIPE_PATH.format(recipe_id=recipe_id))).json()["label"] == label
