"""Odd input on every endpoint is a 4xx with a detail, never a 500, on SQLite and PostgreSQL."""

from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User
from tests.utils.recipe import create_random_recipe
from tests.utils.utils import auth_headers

HUGE = 10**40
JSON = {"content-type": "application/json"}

BODIES: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"12",
    b'"text"',
    b'{"label": 1e999}',
    b'{"label": "\x00"}',
    b'{"label": "\\u0000", "source": "s", "url": "https://x.example"}',
    b'{"label": "\\ud800", "source": "s", "url": "https://x.example"}',
    b'{"label": "' + b"x" * 100_000 + b'", "source": "s", "url": "https://x.example"}',
    b'{"label": ' + str(HUGE).encode() + b', "source": "s", "url": "https://x.example"}',
    b'{"label": "a", "source": "s", "url": "https://x.example", "submitter_id": -1}',
    b"\xff\xfe\xfd",
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_odd_recipe_bodies_are_4xx(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
    method: str,
    body: bytes,
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    path = "/api/v1/recipes" if method == "POST" else f"/api/v1/recipes/{recipe.id}"
    response = await client.request(
        method, path, content=body, headers=JSON | auth_headers(normal_user.id)
    )
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize("body", BODIES)
async def test_odd_signup_bodies_are_4xx(client: httpx2.AsyncClient, body: bytes) -> None:
    response = await client.post("/api/v1/auth/signup", content=body, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"label=x"),
        ("application/xml", b"<recipe/>"),
        ("multipart/form-data; boundary=zz", b"--zz\r\n\r\n--zz--"),
        ("application/x-www-form-urlencoded", b"label=x&source=y"),
    ],
)
async def test_wrong_content_types_are_4xx(
    client: httpx2.AsyncClient, normal_user: User, content_type: str, body: bytes
) -> None:
    response = await client.post(
        "/api/v1/recipes",
        content=body,
        headers={"content-type": content_type} | auth_headers(normal_user.id),
    )
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/recipes/{HUGE}",
        "/api/v1/recipes/-5",
        "/api/v1/recipes/1e3",
        "/api/v1/recipes/%00",
        f"/api/v1/recipes?limit={HUGE}",
        "/api/v1/recipes?limit=-1",
        f"/api/v1/recipes?submitter_id={HUGE}",
        "/api/v1/recipes?cursor=%00",
        "/api/v1/recipes?cursor=" + "A" * 5000,
        "/api/v1/recipes/search?keyword=%00",
        "/api/v1/recipes/search?keyword=%ED%A0%80",
        "/api/v1/recipes/search?keyword=" + "k" * 5000,
        f"/api/v1/recipes/search?keyword=a&max_results={HUGE}",
        f"/api/v1/users/{HUGE}",
        "/api/v1/users?cursor=%FF%FE",
    ],
)
async def test_odd_paths_and_queries_are_4xx_or_empty(
    client: httpx2.AsyncClient, superuser_token_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=superuser_token_headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "detail" in response.json()


@pytest.mark.parametrize(
    "form",
    [
        {"username": "a\x00@example.com", "password": "whatever1"},
        {"username": "x" * 100_000, "password": "whatever1"},
        {"username": "a@example.com", "password": "p" * 100_000},
        {"username": "", "password": ""},
        {"password": "only"},
    ],
)
async def test_odd_logins_are_4xx(client: httpx2.AsyncClient, form: dict[str, Any]) -> None:
    response = await client.post("/api/v1/auth/login", data=form)
    assert 400 <= response.status_code < 500, response.text
