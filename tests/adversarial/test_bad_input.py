"""Odd input on every endpoint is a 4xx with a detail, never a 500, on SQLite and PostgreSQL."""

import json
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import middleware
from app.core.config import settings
from app.models import User
from tests.utils.recipe import create_random_recipe
from tests.utils.utils import auth_headers

HUGE = 10**40
JSON = {"content-type": "application/json"}
RECIPES = "/api/v1/recipes"
VALID = b'"label": "Soup", "source": "Grandma", "url": "https://example.com/soup"'


def _messages(response: httpx2.Response) -> str:
    """Every message of a 422 (or the one detail of another 4xx), to check it says why."""
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(f"{e['loc']}: {e['msg']}" for e in detail)


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


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{" + VALID + b', "label": "Stew"}', "duplicate key 'label'"),
        (b'{"label": NaN, "source": "s", "url": "https://example.com"}', "NaN"),
        (b'{"label": Infinity, "source": "s", "url": "https://example.com"}', "Infinity"),
        (b'{"label": -Infinity, "source": "s", "url": "https://example.com"}', "-Infinity"),
        (b'{"label": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32"),
        (b"[" * 200_000 + b"]" * 200_000, "more than 4096 arrays, objects and items"),
        (b'{"label": ' + b"9" * 5000 + b"}", "JSON number too long"),
        (b"{" + VALID + b"", "JSON decode error"),
        (b"{" + VALID + b"}}", "JSON decode error"),
        (b"{'label': 'x'}", "JSON decode error"),
        (b'{"label": "caf\xe9"}'.replace(b"\\xe9", b"\xe9"), "not UTF-8"),
        (b"\xff\xfe\xfd", "not UTF-8"),
    ],
)
async def test_create_recipe_with_unsound_json_is_422(
    client: httpx2.AsyncClient, normal_user: User, body: bytes, says: str
) -> None:
    response = await client.post(RECIPES, content=body, headers=JSON | auth_headers(normal_user.id))
    assert response.status_code == 422, response.text
    assert says in _messages(response)
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "body",
    [
        b"[" + b"[]," * 349_000 + b"[]]",  # 349k empty arrays in 1 MiB
        b"[" + b"{}," * 349_000 + b"{}]",
        b"[" + b"1," * 500_000 + b"1]",
    ],
)
async def test_flood_of_items_to_unknown_path_is_422_before_parsing(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    # Parsing such a body (and walking it for depth) held the event loop for 0.6-3 s; the count
    # refuses it first, so the parser must never see it.
    def parse(*_: object, **__: object) -> object:
        raise AssertionError("an over-count body reached the JSON parser")

    monkeypatch.setattr(
        middleware, "json", SimpleNamespace(loads=parse, JSONDecodeError=json.JSONDecodeError)
    )
    response = await client.post("/no-such-path", content=body)
    assert response.status_code == 422, response.text
    assert "more than 4096" in _messages(response)


async def test_long_integer_anywhere_in_a_body_is_422(client: httpx2.AsyncClient) -> None:
    response = await client.post("/no-such-path", content=b'{"a": [' + b"1" * 5000 + b"]}")
    assert response.status_code == 422, response.text
    assert "JSON number too long" in _messages(response)


@pytest.mark.parametrize(
    "content_type", [None, "application/json; charset=utf-8", "application/merge-patch+json"]
)
async def test_update_me_with_duplicate_keys_is_422_for_any_json_type(
    client: httpx2.AsyncClient, normal_user: User, content_type: str | None
) -> None:
    headers = auth_headers(normal_user.id) | (
        {"content-type": content_type} if content_type else {}
    )
    response = await client.patch(
        "/api/v1/users/me", content=b'{"first_name": "A", "first_name": "B"}', headers=headers
    )
    assert response.status_code == 422, response.text
    assert "duplicate key 'first_name'" in _messages(response)


async def test_create_recipe_with_sound_json_still_works(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    response = await client.post(
        RECIPES, content=b"{" + VALID + b"}", headers=JSON | auth_headers(normal_user.id)
    )
    assert response.status_code == 201, response.text
    assert response.json()["label"] == "Soup"


async def test_login_form_is_not_read_as_json(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", data={"username": "nobody@example.com", "password": "wrong-one"}
    )
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("chunked", [False, True])
async def test_create_recipe_over_the_body_limit_is_413(
    client: httpx2.AsyncClient, normal_user: User, chunked: bool
) -> None:
    body = b'{"label": "' + b"x" * settings.MAX_REQUEST_BODY_BYTES + b'"}'

    async def stream() -> Any:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = await client.post(
        RECIPES,
        content=stream() if chunked else body,
        headers=JSON | auth_headers(normal_user.id),
    )
    assert response.status_code == 413, response.text
    assert str(settings.MAX_REQUEST_BODY_BYTES) in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("label", "x" * 257, "at most 256 characters"),
        ("label", "a\u0000b", "NUL"),
        ("label", "a\nb", "control characters"),
        ("label", "   ", "at least 1 character"),
        ("source", 12, "valid string"),
        ("url", "https://example.com/" + "a" * 2040, "at most 2048"),
        ("url", "javascript:alert(1)", "URL scheme"),
        ("url", "https://exa mple.com/", "URL"),
    ],
)
async def test_create_recipe_with_bad_field_is_422_naming_it(
    client: httpx2.AsyncClient, normal_user: User, field: str, value: object, says: str
) -> None:
    body = {"label": "Soup", "source": "Grandma", "url": "https://example.com/soup"}
    body[field] = value  # type: ignore[assignment]
    response = await client.post(RECIPES, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 422, response.text
    messages = _messages(response)
    assert f"'body', '{field}'" in messages
    assert says in messages


async def test_create_recipe_with_url_that_grows_when_normalized_is_422(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    # 2,021 characters fit the limit as sent; each space becomes %20, so 4,021 are stored.
    url = "https://example.com/" + "a " * 1000 + "z"
    body = {"label": "Soup", "source": "Grandma", "url": url}
    response = await client.post(RECIPES, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 422, response.text
    assert "2048" in _messages(response)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/api/v1/recipes?limit=1.5", "valid integer"),
        ("/api/v1/recipes?limit=1e2", "valid integer"),
        (f"/api/v1/recipes?limit={HUGE}", "less than or equal to 100"),
        ("/api/v1/recipes?limit=-1", "greater than or equal to 1"),
        ("/api/v1/recipes/2.5", "valid integer"),
        ("/api/v1/recipes/-1", "greater than or equal to 1"),
        (f"/api/v1/recipes/{2**63}", "less than or equal to"),
        (f"/api/v1/recipes?submitter_id={2**63}", "less than or equal to"),
        ("/api/v1/recipes/search?keyword=a%00b", "NUL"),
        ("/api/v1/recipes/search?keyword=" + "k" * 101, "at most 100 characters"),
    ],
)
async def test_read_with_bad_number_or_text_is_422_naming_it(
    client: httpx2.AsyncClient, path: str, says: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 422, response.text
    assert says in _messages(response)


@pytest.mark.parametrize("field", ["label", "source"])
@pytest.mark.parametrize(
    ("text", "code_point"),
    [
        ("Safe \u202egnp.exe", "U+202E"),  # shown as "Safe exe.png"
        ("\u2066isolated\u2069", "U+2066"),
        ("zero\u200bwidth", "U+200B"),
        ("\ufeffbom", "U+FEFF"),
        ("word\u2060joiner", "U+2060"),
    ],
)
async def test_create_recipe_with_bidi_control_or_invisible_character_is_422(
    client: httpx2.AsyncClient, normal_user: User, field: str, text: str, code_point: str
) -> None:
    body = {"label": "Soup", "source": "Grandma", "url": "https://example.com/soup"}
    body[field] = text
    response = await client.post(RECIPES, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 422, response.text
    messages = _messages(response)
    assert f"'body', '{field}'" in messages
    assert code_point in messages


@pytest.mark.parametrize("field", ["first_name", "surname"])
async def test_update_me_with_bidi_override_in_a_name_is_422(
    client: httpx2.AsyncClient, normal_user: User, field: str
) -> None:
    response = await client.patch(
        "/api/v1/users/me", json={field: "Ada \u202eecalevol"}, headers=auth_headers(normal_user.id)
    )
    assert response.status_code == 422, response.text
    assert "U+202E" in _messages(response)


@pytest.mark.parametrize(
    "label",
    [
        "Crème brûlée",
        "e\u0301clair",  # a combining accent
        "\U0001f35c ramen",  # outside the Basic Multilingual Plane
        "\U0001f468\u200d\U0001f373 chef's choice",  # an emoji sequence joined by ZWJ
        "\u05de\u05e8\u05e7 \u200fsoup",  # Hebrew with a right-to-left mark
        "\u00a0nbsp\u00a0",
    ],
)
async def test_create_recipe_with_unicode_edge_case_keeps_it_exactly(
    client: httpx2.AsyncClient, normal_user: User, label: str
) -> None:
    # Valid text is not a bad input: it is stored and given back code point for code point.
    body = {"label": label, "source": "Grandma", "url": "https://example.com/soup"}
    response = await client.post(RECIPES, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 201, response.text
    read = await client.get(f"{RECIPES}/{response.json()['id']}")
    assert read.json()["label"] == label.strip()
