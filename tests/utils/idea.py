"""A stand-in for the recipe ideas upstream: a real HTTP server on 127.0.0.1, scripted per
subreddit, that counts what it is asked; and what the ideas slice adds to the shared tests
(see tests/utils/slices.py)."""

import json
import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

from app.api.api_v1.endpoints.idea import get_ideas_client
from app.core.config import Settings
from app.schemas.idea import IdeaFeed, IdeaRead
from tests.utils.utils import AuthorizationCall

SUBREDDITS = ["recipes", "easyrecipes", "TopSecretRecipes"]
# Longer than any client budget in the tests, so a client that does not fetch concurrently
# fails by timing out instead of being let through.
HOLD_SECONDS = 10.0


def post(subreddit: str, n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "title": f"{subreddit} idea {n}",
        "url": f"https://example.com/{subreddit.lower()}/{n}",
        "score": 1000 - n,
        "permalink": f"/r/{subreddit}/comments/{n}/",
    } | overrides


def listing(posts: list[dict[str, Any]], kind: str = "t3") -> bytes:
    children = [{"kind": kind, "data": p} for p in posts]
    return json.dumps({"kind": "Listing", "data": {"after": None, "children": children}}).encode()


@dataclass
class Reply:
    """One scripted answer, sent after `delay` seconds (never, if it hangs). body None means
    the subreddit's posts as a listing."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False


@dataclass
class Seen:
    subreddit: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class IdeaStub:
    """Serves GET /r/<name>/top.json. Replies are scripted per subreddit and fall back to a
    listing of `posts[name]` (three posts unless set)."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.scripts: dict[str, deque[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._cond = threading.Condition()
        self._open = True
        self._release_at: int | None = None
        self._closing = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on close, so none outlives its test.
        self._server.daemon_threads = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def settings(self, **values: Any) -> Settings:
        """Settings that point the ideas client at this stub."""
        base: dict[str, Any] = {
            "IDEAS_BASE_URL": self.url,
            "IDEAS_SUBREDDITS": SUBREDDITS,
            "IDEAS_TIMEOUT_SECONDS": 5.0,
        }
        return Settings(_env_file=None, **(base | values))

    def script(self, subreddit: str, *replies: Reply) -> None:
        with self._cond:
            self.scripts.setdefault(subreddit, deque()).extend(replies)

    def hold(self, until_in_flight: int | None = None) -> None:
        """Keep requests waiting until `until_in_flight` are waiting at once, or release()."""
        with self._cond:
            self._open = False
            self._release_at = until_in_flight

    def release(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=HOLD_SECONDS)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) != 3 or segments[0] != "r" or segments[2] != "top.json":
            self._send(request, 404, b"{}", {})
            return
        name = segments[1]
        query = parse_qs(parts.query)
        with self._cond:
            self.hits[name] += 1
            self.seen.append(Seen(name, query, dict(request.headers.items())))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._release_at is not None and self.in_flight >= self._release_at:
                self._open = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._open, timeout=HOLD_SECONDS)
            script = self.scripts.get(name)
            reply = script.popleft() if script else Reply()
        try:
            if reply.hang:
                self._closing.wait(HOLD_SECONDS)
                return
            self._closing.wait(reply.delay)
            body = reply.body
            if body is None:
                posts = self.posts.get(name, [post(name, n) for n in range(1, 4)])
                limit = int(query.get("limit", ["25"])[0])
                body = listing(posts[:limit])
            self._send(request, reply.status, body, reply.headers)
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def wait_in_flight(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.in_flight >= count, timeout=HOLD_SECONDS)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first, which is what some tests want


@pytest.fixture
def idea_stub() -> Iterator[IdeaStub]:
    """A real HTTP stand-in for the recipe ideas upstream on 127.0.0.1, on a free port."""
    with IdeaStub() as stub:
        yield stub


IDEAS = "/api/v1/recipes/ideas"
IDEA_URL = "https://example.com/ideas/leek-soup"


class FakeIdeas:
    """One idea, no network: the client the shared tests' apps get."""

    feed = IdeaFeed(
        ideas={"soups": [IdeaRead(title="Leek soup", url=IDEA_URL, score=7)]}, errors={}
    )

    async def get_ideas(self, _limit: int) -> IdeaFeed:
        return self.feed

    async def find(self, url: str) -> tuple[str, IdeaRead] | None:
        return ("soups", self.feed.ideas["soups"][0]) if url == IDEA_URL else None


FAKES = {get_ideas_client: FakeIdeas}

# Calls the authorization matrix cannot make from OpenAPI examples: (method, path, the request
# as (url, httpx keyword arguments) made from the matrix's World).
AUTHORIZATION_CALLS: list[AuthorizationCall] = [
    ("POST", f"{IDEAS}/import", lambda _: (f"{IDEAS}/import", {"json": {"url": IDEA_URL}})),
]
# (method, path, body, principal, field the caller must not set, its value, honest status)
SMUGGLES = [
    (
        "POST",
        "/api/v1/recipes/ideas/import",
        {"url": IDEA_URL},
        "user",
        "submitter_id",
        lambda w: w.other.id,
        201,
    ),
]
