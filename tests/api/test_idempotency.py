"""Idempotency-Key on create routes (POST /recipes): a retry gets the first answer, never a
second row; another body is 422; a duplicate while the first runs is 409; per user; expiring."""

import asyncio
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import SessionDep
from app.api.idempotency import idempotent
from app.crud.crud_recipe import recipe as recipes
from app.models import IdempotencyKey, User
from app.models.recipe import Recipe
from app.services.errors import Conflict
from tests.adversarial.test_races import _serving
from tests.utils.db import migrate
from tests.utils.user import create_random_user
from tests.utils.utils import Configure, auth_headers, serve_session

RECIPES = "/api/v1/recipes"


def _body(label: str = "Soup of the day") -> dict[str, str]:
    return {"label": label, "source": "Test Kitchen", "url": "https://example.com/soup"}


def _headers(user: User, key: str) -> dict[str, str]:
    return {**auth_headers(user.id), "Idempotency-Key": key}


async def _count(db: AsyncSession, user_id: int) -> int:
    query = select(func.count()).select_from(Recipe).where(Recipe.submitter_id == user_id)
    return int(await db.scalar(query) or 0)


async def test_retry_with_the_same_key_gets_the_first_answer_and_no_second_row(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    key = f'"{secrets.token_hex(16)}"'
    first = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    retry = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    assert first.status_code == 201
    assert (retry.status_code, retry.content) == (201, first.content)
    assert await _count(db, normal_user.id) == 1
    # A quoted key (the draft's structured-field string) and the bare one are the same key.
    bare = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key.strip('"')))
    assert bare.content == first.content
    # Without a key every request is a new recipe.
    plain = await client.post(RECIPES, json=_body(), headers=auth_headers(normal_user.id))
    assert plain.status_code == 201
    assert plain.json()["id"] != first.json()["id"]
    assert await _count(db, normal_user.id) == 2


async def test_answers_keep_the_headers_other_dependencies_set(
    client: httpx2.AsyncClient, normal_user: User, configure: Configure
) -> None:
    configure(RATE_LIMIT_DEFAULT="100/minute")
    key = secrets.token_hex(16)
    first = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    retry = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    # Counted by the API's limit, and said so on the replay too.
    remaining = [int(r.headers["ratelimit-remaining"]) for r in (first, retry)]
    assert remaining[1] == remaining[0] - 1


async def test_same_key_with_another_body_is_422(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    key = secrets.token_hex(16)
    await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    other = await client.post(RECIPES, json=_body("Other"), headers=_headers(normal_user, key))
    assert other.status_code == 422
    [error] = other.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert error["msg"] == "This Idempotency-Key was used for a different request"
    assert await _count(db, normal_user.id) == 1


async def test_key_is_per_user(client: httpx2.AsyncClient, db: AsyncSession) -> None:
    alice, bob = await create_random_user(db), await create_random_user(db)
    key = secrets.token_hex(16)
    mine = await client.post(RECIPES, json=_body(), headers=_headers(alice, key))
    theirs = await client.post(RECIPES, json=_body(), headers=_headers(bob, key))
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["submitter_id"] == bob.id
    assert (await _count(db, alice.id), await _count(db, bob.id)) == (1, 1)


async def test_expired_key_is_a_new_request(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    key = secrets.token_hex(16)
    first = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    stored = select(IdempotencyKey).where(IdempotencyKey.user_id == normal_user.id)
    [row] = (await db.scalars(stored)).all()
    expected = row.created_at + timedelta(hours=24)
    assert abs((row.expires_at - expected).total_seconds()) < 60
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.execute(
        update(IdempotencyKey).where(IdempotencyKey.id == row.id).values(expires_at=past)
    )
    again = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert await _count(db, normal_user.id) == 2


async def test_failed_write_keeps_no_answer(
    client: httpx2.AsyncClient,
    normal_user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = secrets.token_hex(16)
    insert = recipes.insert

    async def refuse(*_: Any, **__: Any) -> Recipe:
        raise Conflict

    monkeypatch.setattr(recipes, "insert", refuse)
    failed = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    assert failed.status_code == 409
    monkeypatch.setattr(recipes, "insert", insert)
    # Rolled back with the write: the retry runs.
    retry = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    assert retry.status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_malformed_key_is_422(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, key: str
) -> None:
    response = await client.post(RECIPES, json=_body(), headers=_headers(normal_user, key))
    assert response.status_code == 422
    # The shape FastAPI gives a malformed header it parses itself.
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert error["type"] in {"string_too_short", "string_too_long", "string_pattern_mismatch"}
    assert await _count(db, normal_user.id) == 0


async def test_header_is_documented_in_openapi(client: httpx2.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"][RECIPES]["post"]
    [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header"
    assert header["required"] is False
    assert "retry" in header["description"]
    assert header["schema"]["maxLength"] == 255
    assert "409" in operation["responses"]


def test_a_route_without_the_session_cannot_be_idempotent() -> None:
    # The answer is kept in the route's own transaction: without its session there is none.
    async def handler(label: str) -> dict[str, str]:
        return {"label": label}

    with pytest.raises(TypeError, match="takes no session"):
        idempotent(handler)

    # Annotations written as strings (`from __future__ import annotations`) are read as FastAPI
    # reads them: the session is found.
    async def quoted(db: "SessionDep") -> dict[str, bool]:
        return {"session": db is not None}

    assert idempotent(quoted).__name__ == "quoted"


async def test_a_route_keeps_its_own_request_and_response(
    db: AsyncSession, normal_user: User
) -> None:
    """FastAPI fills one Request and one Response parameter per route: the decorator shares
    the handler's own instead of adding a second, which would leave the handler's empty."""
    runs: list[str] = []
    made = FastAPI()

    @made.post("/notes", status_code=201)
    @idempotent
    async def add_note(session: SessionDep, request: Request, response: Response) -> dict[str, str]:
        runs.append(f"{request.method} {session is db}")
        response.headers["X-Handler"] = "ran"
        return {"note": "kept"}

    serve_session(made, db)
    transport = httpx2.ASGITransport(app=made)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
        plain = await http.post("/notes", headers=auth_headers(normal_user.id))
        headers = _headers(normal_user, secrets.token_hex(16))
        first = await http.post("/notes", headers=headers)
        retry = await http.post("/notes", headers=headers)
    assert (plain.status_code, plain.headers["x-handler"]) == (201, "ran")
    assert (first.status_code, first.headers["x-handler"], first.json()) == (
        201,
        "ran",
        {"note": "kept"},
    )
    assert (retry.status_code, retry.content) == (201, first.content)
    # The request's session; the retry got the first answer, without running again.
    assert runs == ["POST True", "POST True"]


async def _user(sessions: async_sessionmaker[AsyncSession]) -> User:
    async with sessions() as db, db.begin():
        return await create_random_user(db)


async def _rows(sessions: async_sessionmaker[AsyncSession], user_id: int) -> int:
    async with sessions() as db:
        return await _count(db, user_id)


async def _duplicate_while_the_first_runs(url: str) -> tuple[int, httpx2.Response, int, int]:
    async with _serving(url) as (http, sessions):
        user = await _user(sessions)
        headers = _headers(user, secrets.token_hex(16))
        entered, release = asyncio.Event(), asyncio.Event()
        insert = recipes.insert

        async def slow_insert(db: AsyncSession, values: Mapping[str, Any]) -> Recipe:
            entered.set()
            await release.wait()
            return await insert(db, values)

        recipes.insert = slow_insert  # type: ignore[method-assign]
        try:
            first = asyncio.create_task(http.post(RECIPES, json=_body(), headers=headers))
            await asyncio.wait_for(entered.wait(), 30)  # fails, not hangs, without insert()
            second = asyncio.create_task(http.post(RECIPES, json=_body(), headers=headers))
            # PostgreSQL answers the duplicate at once; SQLite makes it wait for the write lock.
            done, _ = await asyncio.wait({second}, timeout=2.0)
            early = second.result().status_code if done else 0
            release.set()
            answered = await first
        finally:
            recipes.insert = insert  # type: ignore[method-assign]
        late = await second
        assert answered.status_code == 201, answered.text
        assert late.status_code in {201, 409}
        if late.status_code == 201:
            assert late.content == answered.content
        return early, late, await _rows(sessions, user.id), answered.json()["id"]


def test_duplicate_while_the_first_runs_is_409_or_waits_for_its_answer(
    fresh_database_url: str,
) -> None:
    migrate(fresh_database_url)
    early, late, rows, _ = asyncio.run(_duplicate_while_the_first_runs(fresh_database_url))
    assert rows == 1
    if fresh_database_url.startswith("postgresql"):
        assert (early, late.status_code) == (409, 409)
        assert late.json() == {
            "detail": "A request with this Idempotency-Key is still being processed; retry later"
        }
    else:
        # SQLite serializes writers: the duplicate runs after the first commits and replays it.
        assert (early, late.status_code) == (0, 201)


async def _race(url: str, rounds: int, racers: int) -> list[str]:
    failures: list[str] = []
    async with _serving(url) as (http, sessions):
        user = await _user(sessions)
        for n in range(rounds):
            headers = _headers(user, secrets.token_hex(16))
            answers = await asyncio.gather(
                *(
                    http.post(RECIPES, json=_body(f"Race {n}"), headers=headers)
                    for _ in range(racers)
                )
            )
            created = {r.content for r in answers if r.status_code == 201}
            codes = sorted(r.status_code for r in answers)
            if len(created) != 1 or not set(codes) <= {201, 409}:
                failures.append(f"round {n}: {codes}, {len(created)} distinct answers")
        if (rows := await _rows(sessions, user.id)) != rounds:
            failures.append(f"{rows} rows for {rounds} keys")
    return failures


def test_concurrent_requests_with_one_key_make_one_row(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    assert asyncio.run(_race(fresh_database_url, rounds=8, racers=4)) == []
