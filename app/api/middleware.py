"""Pure ASGI middleware: request context, security and cache headers, body limit, strict JSON."""

import hashlib
import json
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.cache_policy import route_cache_policy
from app.api.errors import SafeJSONResponse, internal_error_response
from app.core import metrics
from app.core.logging import request_id_var
from app.db.session import write_intent

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

logger = logging.getLogger("app.request")
access_logger = logging.getLogger("app.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Request id, write intent, X-Process-Time, access log line, metrics, the last-resort 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        intent = write_intent.set(scope["method"] not in SAFE_METHODS)
        status = 500
        started = False

        async def send_with_context(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Process-Time"] = f"{time.perf_counter() - start:.6f}"
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            # The traceback goes to the log only; the client gets the request id to quote.
            logger.exception("unhandled error")
            if started:
                raise
            await internal_error_response(request_id)(scope, receive, send_with_context)
        finally:
            metrics.IN_FLIGHT.dec()
            self._record(scope, status, time.perf_counter() - start)
            write_intent.reset(intent)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        metrics.observe_request(scope["method"], _route_template(scope), status, seconds)
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


def _route_template(scope: Scope) -> str:
    """The matched route's path template with its router prefix, e.g. /api/v1/recipes/{id}.

    Metrics are labelled by template, not by raw path, so ids do not explode the label set.
    """
    template = getattr(scope.get("route"), "path", None)
    if template is None:
        return "<unmatched>"
    # Included routers keep their own paths; the prefix is what precedes them in the URL.
    static = template.split("{", 1)[0]
    at = scope["path"].find(static) if static else -1
    return scope["path"][:at] + template if at > 0 else str(template)


class SecurityHeadersMiddleware:
    """Headers that make browsers refuse framing, sniffing and foreign scripts."""

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

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(self.DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                is_html = headers.get("content-type", "").startswith("text/html")
                csp = self.DOCS_CSP if docs else self.PAGE_CSP if is_html else self.API_CSP
                headers.setdefault("Content-Security-Policy", csp)
                if self.hsts:
                    headers.setdefault(
                        "Strict-Transport-Security", "max-age=63072000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
        request_headers = Headers(scope=scope)
        if scope["method"] != "GET":

            async def send_no_store(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableHeaders(scope=message).setdefault("Cache-Control", "no-store")
                await send(message)

            await self.app(scope, receive, send_no_store)
            return

        anonymous = "authorization" not in request_headers
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
            await self._finish(start, bytes(body), request_headers, cache_control, send)

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
        start: Message, body: bytes, request_headers: Headers, cache_control: str, send: Send
    ) -> None:
        etag = f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        headers = MutableHeaders(scope=start)
        headers["ETag"] = etag
        headers.setdefault("Cache-Control", cache_control)
        if etag in {t.strip() for t in request_headers.get("if-none-match", "").split(",")}:
            del headers["content-length"]
            await send({**start, "status": 304})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(start)
        await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """413 for a body over the limit, whether it declares its length or arrives in chunks."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
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

        await self.app(scope, limited_receive, send)

    def _detail(self) -> str:
        return f"Request body larger than {self.max_bytes} bytes"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": self._detail()}, status_code=413)(scope, receive, send)


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


class StrictJSONMiddleware:
    """422 with FastAPI's error shape for a JSON body that is malformed, not UTF-8, has duplicate
    keys, NaN or Infinity, or deep nesting, which Python's parser would take or answer 400 to."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS  # no body worth reading: skip the buffering
            or not _is_json(Headers(scope=scope).get("content-type"))
        ):
            await self.app(scope, receive, send)
            return
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
            # The body limit fires inside receive(); this layer sits outside the exception
            # middleware that would answer it otherwise.
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
