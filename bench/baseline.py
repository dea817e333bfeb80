"""The raw baseline: the service's benchmarked endpoints as one bare ASGI app on asyncpg.

Same SQL, same JSON, same password hashing and tokens; no framework, ORM, validation or
middleware. `uvicorn bench.baseline:app`, configured by BENCH_DSN and BENCH_SECRET_KEY.
"""

import asyncio
import base64
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

COLUMNS = "id, label, source, url, submitter_id, created_at, updated_at"
PREFIX = "/api/v1/recipes"
SCOPE_WRITE = "recipes:write"
ACCESS_MINUTES = 15
REFRESH_DAYS = 14
# The service's defaults: its access tokens carry and require both (JWT_ISSUER, JWT_AUDIENCE).
ISSUER = os.environ.get("JWT_ISSUER", "recipe-service")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "recipe-api")

_hasher = PasswordHash((Argon2Hasher(),))
_hash_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
_pool: asyncpg.Pool | None = None


def _secret() -> str:
    return os.environ["BENCH_SECRET_KEY"]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _recipe(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "label": row["label"],
        "source": row["source"],
        "url": row["url"],
        "submitter_id": row["submitter_id"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def _before_id(cursor: str) -> int:
    return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


async def _send_json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}


def _like(keyword: str) -> str:
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _list(pool: asyncpg.Pool, scope: Scope) -> tuple[int, Any]:
    query = _query(scope)
    limit = int(query.get("limit", "20"))
    if "cursor" in query:
        rows = await pool.fetch(
            f"SELECT {COLUMNS} FROM recipe WHERE id < $1 ORDER BY id DESC LIMIT $2",
            _before_id(query["cursor"]),
            limit + 1,
        )
    else:
        rows = await pool.fetch(
            f"SELECT {COLUMNS} FROM recipe ORDER BY id DESC LIMIT $1", limit + 1
        )
    next_cursor = _cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return 200, {"items": [_recipe(r) for r in rows[:limit]], "next_cursor": next_cursor}


async def _search(pool: asyncpg.Pool, scope: Scope) -> tuple[int, Any]:
    query = _query(scope)
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM recipe WHERE label ILIKE $1 ESCAPE '\\' ORDER BY id DESC LIMIT $2",
        _like(query["keyword"]),
        int(query.get("max_results", "10")),
    )
    return 200, {"results": [_recipe(r) for r in rows]}


async def _get(pool: asyncpg.Pool, recipe_id: int) -> tuple[int, Any]:
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM recipe WHERE id = $1", recipe_id)
    if row is None:
        return 404, {"detail": "Recipe not found"}
    return 200, _recipe(row)


async def _user(
    pool: asyncpg.Pool, scope: Scope, scope_needed: str | None
) -> asyncpg.Record | None:
    """The active user the bearer token names, as the service checks it; None when refused."""
    auth = dict(scope["headers"]).get(b"authorization", b"").decode()
    try:
        claims = jwt.decode(
            auth.removeprefix("Bearer "),
            _secret(),
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
        )
    except jwt.PyJWTError:
        return None
    user = await pool.fetchrow(
        'SELECT id, is_active, token_version FROM "user" WHERE id = $1', int(claims["sub"])
    )
    if (
        user is None
        or not user["is_active"]
        or claims.get("ver", 0) != user["token_version"]
        or (scope_needed is not None and scope_needed not in claims["scope"].split())
    ):
        return None
    return user


async def _own_list(pool: asyncpg.Pool, scope: Scope) -> tuple[int, Any]:
    user = await _user(pool, scope, None)
    if user is None:
        return 401, {"detail": "Could not validate credentials"}
    limit = int(_query(scope).get("limit", "20"))
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM recipe WHERE submitter_id = $1 ORDER BY id DESC LIMIT $2",
        user["id"],
        limit + 1,
    )
    next_cursor = _cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return 200, {"items": [_recipe(r) for r in rows[:limit]], "next_cursor": next_cursor}


async def _create(pool: asyncpg.Pool, scope: Scope, receive: Receive) -> tuple[int, Any]:
    user = await _user(pool, scope, SCOPE_WRITE)
    if user is None:
        return 401, {"detail": "Could not validate credentials"}
    try:
        body = json.loads(await _body(receive))
    except ValueError:  # also a client gone mid-request (wrk stopping)
        return 422, {"detail": "Invalid JSON body"}
    now = datetime.now(UTC)
    row = await pool.fetchrow(
        f"INSERT INTO recipe (label, source, url, submitter_id, created_at, updated_at) "
        f"VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}",
        body["label"],
        body["source"],
        body["url"],
        user["id"],
        now,
    )
    return 201, _recipe(row)


async def _login(pool: asyncpg.Pool, receive: Receive) -> tuple[int, Any]:
    form = {k: v[-1] for k, v in parse_qs((await _body(receive)).decode()).items()}
    user = await pool.fetchrow(
        'SELECT id, hashed_password, is_active, token_version FROM "user" WHERE email = $1',
        form["username"].strip().lower(),
    )
    loop = asyncio.get_running_loop()
    valid = await loop.run_in_executor(
        _hash_pool, _hasher.verify, form["password"], user["hashed_password"]
    )
    if not valid or not user["is_active"]:
        return 401, {"detail": "Incorrect email or password"}
    now = datetime.now(UTC)
    await pool.execute(
        "DELETE FROM refresh_token WHERE user_id = $1 AND expires_at < $2", user["id"], now
    )
    raw = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO refresh_token (user_id, family_id, token_hash, scope, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        user["id"],
        uuid.uuid4().hex,
        hashlib.sha256(raw.encode()).hexdigest(),
        SCOPE_WRITE,
        now,
        now + timedelta(days=REFRESH_DAYS),
    )
    payload = {
        "sub": str(user["id"]),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=ACCESS_MINUTES),
        "type": "access",
        "scope": SCOPE_WRITE,
        "ver": user["token_version"],
    }
    return 200, {
        "access_token": jwt.encode(payload, _secret(), algorithm="HS256"),
        "token_type": "bearer",
        "expires_in": ACCESS_MINUTES * 60,
        "refresh_token": raw,
        "scope": SCOPE_WRITE,
    }


async def _lifespan(receive: Receive, send: Send) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=1, max_size=10)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    assert _pool is not None
    path, method = scope["path"], scope["method"]
    result: tuple[int, Any]
    if path == "/healthz":
        result = 200, {"status": "ok"}
    elif path == PREFIX and method == "GET":
        result = await _list(_pool, scope)
    elif path == PREFIX and method == "POST":
        result = await _create(_pool, scope, receive)
    elif path == f"{PREFIX}/search":
        result = await _search(_pool, scope)
    elif path.startswith(f"{PREFIX}/") and path[len(PREFIX) + 1 :].isdigit():
        result = await _get(_pool, int(path[len(PREFIX) + 1 :]))
    elif path == "/api/v1/users/me/recipes" and method == "GET":
        result = await _own_list(_pool, scope)
    elif path == "/api/v1/auth/login" and method == "POST":
        result = await _login(_pool, receive)
    else:
        result = 404, {"detail": "Not Found"}
    await _send_json(send, *result)
