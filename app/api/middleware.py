"""Pure ASGI middleware: request context and security headers, cache headers, request bodies."""

import hashlib
import json
import logging
import re
import time
import uuid
from typing import Protocol

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.cache_policy import route_cache_policy
from app.api.errors import SafeJSONResponse, internal_error_response
from app.core.logging import request_id_var
from app.core.redis import close_budget, open_budget
from app.db.session import write_intent

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

logger = logging.getLogger("app.request")
access_logger = logging.getLogger("app.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestObserver(Protocol):
    """Told of every HTTP request; route is the matched template (see _route_template)."""

    def started(self) -> None: ...

    def finished(self, method: str, route: str, status: int, seconds: float) -> None: ...


# Filled by optional slices (metrics) at install, so this module names none of them.
OBSERVERS: list[RequestObserver] = []


class RequestContextMiddleware:
    """The outermost layer: request id, write intent, the Redis budget, security headers,
    X-Process-Time, the access log line, observers and the last-resort 500. One layer and one
    send wrapper for all of them, since every layer costs each request a call and a closure."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.security = SecurityHeaders(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = _header(scope, b"x-request-id") or ""
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        intent = write_intent.set(scope["method"] not in SAFE_METHODS)
        budget = open_budget()
        status = 500
        started = False
        docs = scope["path"].startswith(SecurityHeaders.DOCS_PATHS)

        async def send_with_context(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message["headers"] = list(message.get("headers", ()))
                self.security.add(headers, docs=docs)
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                process_time = f"{time.perf_counter() - start:.6f}"
                headers.append((b"x-process-time", process_time.encode("latin-1")))
            await send(message)

        for observer in OBSERVERS:
            observer.started()
        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            # The traceback goes to the log only; the client gets the request id to quote.
            logger.exception("unhandled error")
            if started:
                raise
            await internal_error_response(request_id)(scope, receive, send_with_context)
        finally:
            self._record(scope, status, time.perf_counter() - start)
            close_budget(budget)
            write_intent.reset(intent)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        if OBSERVERS:
            route = _route_template(scope)
            for observer in OBSERVERS:
                observer.finished(scope["method"], route, status, seconds)
        if not access_logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        access_logger.info(
            "%s %s %d",
            scope["method"],
            scope["path"],
            status,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client_ip": client[0] if client else None,
            },
        )


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header's value, or None, without building a Headers object (ASGI servers
    give names in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's path template with its router prefix, e.g. /api/v1/users/{user_id}.

    Observers (metrics) label by template, not by raw path, so ids do not explode the label
    set.
    """
    template = getattr(scope.get("route"), "path", None)
    if template is None:
        return "<unmatched>"
    # Included routers keep their own paths; the prefix is what precedes them in the URL.
    static = template.split("{", 1)[0]
    at = scope["path"].find(static) if static else -1
    return scope["path"][:at] + template if at > 0 else str(template)


class SecurityHeaders:
    """Headers that make browsers refuse framing, sniffing and foreign scripts; a response that
    sets one of them itself keeps its own."""

    API_CSP = "default-src 'none'; frame-ancestors 'none'"
    PAGE_CSP = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    # Swagger UI and ReDoc load their bundles from this app, start from an inline script, set
    # inline styles and data: images, and ReDoc searches in a blob: worker. Nothing else.
    DOCS_CSP = (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src blob:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    DOCS_PATHS = ("/docs", "/redoc")

    def __init__(self, *, hsts: bool) -> None:
        common = [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
            ("x-frame-options", "DENY"),
        ]
        if hsts:
            common.append(("strict-transport-security", "max-age=63072000; includeSubDomains"))
        # Encoded once: a response adds them as they are.
        self.common = [(k.encode(), v.encode()) for k, v in common]
        self.csp = {
            kind: (b"content-security-policy", value.encode())
            for kind, value in (
                ("api", self.API_CSP),
                ("page", self.PAGE_CSP),
                ("docs", self.DOCS_CSP),
            )
        }

    def add(self, headers: list[tuple[bytes, bytes]], *, docs: bool) -> None:
        present = {key.lower() for key, _ in headers}
        for header in self.common:
            if header[0] not in present:
                headers.append(header)
        if b"content-security-policy" in present:
            return
        if docs:
            kind = "docs"
        else:
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            kind = "page" if content_type.startswith(b"text/html") else "api"
        headers.append(self.csp[kind])


class CacheHeadersMiddleware:
    """ETag and If-None-Match on API reads; public caching only for anonymous reads of routes
    that declare a CachePolicy."""

    def __init__(self, app: ASGIApp, *, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.api_prefix):
            await self.app(scope, receive, send)
            return
        if scope["method"] != "GET":

            async def send_no_store(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableHeaders(scope=message).setdefault("Cache-Control", "no-store")
                await send(message)

            await self.app(scope, receive, send_no_store)
            return

        anonymous = _header(scope, b"authorization") is None
        start: Message | None = None
        body = bytearray()

        async def send_buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                if message["status"] != 200:
                    MutableHeaders(scope=message).setdefault("Cache-Control", "no-store")
                    await send(message)
                return
            if start is None or start["status"] != 200:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            cache_control = self._cache_control(scope, anonymous=anonymous)
            if_none_match = _header(scope, b"if-none-match") or ""
            await self._finish(start, bytes(body), if_none_match, cache_control, send)

        await self.app(scope, receive, send_buffered)

    @staticmethod
    def _cache_control(scope: Scope, *, anonymous: bool) -> str:
        # Read once the route is matched: the policy is the route's, not the URL's.
        policy = route_cache_policy(scope) if anonymous else None
        if policy is None:
            # Answers that depend on who asks never go into a shared cache.
            return "private, no-cache"
        return f"public, max-age={policy.max_age()}"

    @staticmethod
    async def _finish(
        start: Message, body: bytes, if_none_match: str, cache_control: str, send: Send
    ) -> None:
        etag = f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        headers = MutableHeaders(scope=start)
        headers["ETag"] = etag
        headers.setdefault("Cache-Control", cache_control)
        if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
            del headers["content-length"]
            await send({**start, "status": 304})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(start)
        await send({"type": "http.response.body", "body": body})


# Request bodies are flat objects; anything nested deeper than this is an attack or a mistake.
MAX_JSON_DEPTH = 32
# Arrays, objects and commas a body may hold (counted in strings too, so an upper bound). Every
# body the API takes has a few dozen; the bound keeps parsing and the depth walk to milliseconds
# on the event loop, where 1 MiB of `[],` would build 349k lists first.
MAX_JSON_ITEMS = 4096


class _JSONRejected(ValueError):
    """Why a JSON body is refused, with the offset it was found at when there is one."""

    def __init__(self, msg: str, position: int = 0) -> None:
        super().__init__(msg)
        self.msg = msg
        self.position = position


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _JSONRejected(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> object:
    raise _JSONRejected(f"{name} is not valid JSON")


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _items(body: bytes) -> int:
    # bytes.count runs at memchr speed: the bound costs microseconds even for 1 MiB.
    return body.count(b"[") + body.count(b"{") + body.count(b",")


def check_json_body(body: bytes) -> None:
    """Raise _JSONRejected for what json.loads would accept but a strict reader should not:
    bytes that are not UTF-8, duplicate keys, NaN and Infinity, deep nesting, too many items
    and integers too long to convert."""
    if _items(body) > MAX_JSON_ITEMS:
        raise _JSONRejected(f"JSON has more than {MAX_JSON_ITEMS} arrays, objects and items")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _JSONRejected("body is not UTF-8 text", exc.start) from exc
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _JSONRejected(f"JSON decode error: {exc.msg}", exc.pos) from exc
    except _JSONRejected:
        raise
    except RecursionError as exc:
        raise _JSONRejected(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        # int() refuses more than sys.get_int_max_str_digits() digits (4300 by default).
        raise _JSONRejected("JSON number too long") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise _JSONRejected(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _is_json(content_type: str | None) -> bool:
    # The same rule FastAPI uses to decide that a body is JSON: no type, or application/*json.
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestBodyMiddleware:
    """Request bodies: 413 for one over the limit, whether it declares its length or arrives in
    chunks; 422 with FastAPI's error shape for a JSON body that is malformed, not UTF-8, has
    duplicate keys, NaN or Infinity, or deep nesting, which Python's parser would take or answer
    400 to."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self._detail()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app, so the exception middleware answers 413 as JSON.
                    raise HTTPException(413, detail=self._detail())
            return message

        if scope["method"] in SAFE_METHODS or not _is_json(_header(scope, b"content-type")):
            # No JSON body worth reading: skip the buffering.
            await self.app(scope, limited_receive, send)
            return
        await self._strict_json(scope, limited_receive, send)

    def _detail(self) -> str:
        return f"Request body larger than {self.max_bytes} bytes"

    async def _strict_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # The client is gone.
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:
            # The limit fires inside receive(), before the app (and its exception middleware)
            # has been called.
            response = JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        body = b"".join(chunks)
        if body:
            try:
                check_json_body(body)
            except _JSONRejected as exc:
                error = {"type": "json_invalid", "loc": ["body", exc.position], "msg": exc.msg}
                await SafeJSONResponse({"detail": [error]}, status_code=422)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
