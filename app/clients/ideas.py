"""The ideas upstream (Reddit's public JSON): fetch, validate, retry, cache."""

import asyncio
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

import httpx2
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError

from app import __version__
from app.clients.cache import SingleFlight
from app.core.cache import Cache, MemoryCache
from app.core.config import Settings, settings
from app.core.redis import RedisStore
from app.schemas.common import HIDDEN, WebUrl
from app.schemas.idea import IdeaFeed, IdeaRead

logger = logging.getLogger(__name__)

USER_AGENT = f"python:{settings.project_slug}:{__version__} (ideas)"
TOP_PERIOD = "day"
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_CONNECTIONS = 20
# A listing of 100 posts is about 0.5 MB; anything far larger is not a listing.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Beside a subreddit's key: why its last fetch failed, kept IDEAS_FAILURE_CACHE_SECONDS.
FAILED_SUFFIX = ":failed"

Sleep = Callable[[float], Awaitable[None]]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
_IDEAS = TypeAdapter(list[IdeaRead])


class IdeasError(Exception):
    """A source gave no usable answer; the message is a reason fit to show to callers."""


def _one_line(title: str) -> str:
    """Titles end up in JSON, HTML and the database: no control characters or lone surrogates."""
    # Bidi controls and invisible characters go too: the label they become refuses them.
    title = " ".join(_UNPRINTABLE.sub(" ", HIDDEN.sub("", title)).split())
    if not title:
        raise ValueError("empty title")
    return title


class _Post(BaseModel):
    title: Annotated[str, AfterValidator(_one_line)]
    url: WebUrl
    score: int


class _Child(BaseModel):
    kind: str
    data: dict[str, Any]


class _ListingData(BaseModel):
    # Each child is validated only when it is reached: a listing may hold 30k posts, 25 are used.
    children: list[Any]


class _Listing(BaseModel):
    kind: Literal["Listing"]
    data: _ListingData


def parse_listing(body: bytes, limit: int) -> list[IdeaRead]:
    """The posts of a listing as ideas. A post that is not a usable link is skipped; a body
    that is not a listing at all is an error."""
    try:
        # The standard parser, not pydantic's: it lets one title with a lone surrogate escape
        # through to be cleaned, where pydantic's would refuse the whole listing.
        listing = _Listing.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError) as exc:
        raise IdeasError("unexpected answer from upstream") from exc
    ideas: list[IdeaRead] = []
    for raw in listing.data.children:
        if len(ideas) == limit:
            break
        try:
            child = _Child.model_validate(raw)
        except ValidationError as exc:
            raise IdeasError("unexpected answer from upstream") from exc
        if child.kind != "t3":
            continue
        try:
            post = _Post.model_validate(child.data)
        except ValidationError:
            logger.debug("skipped a post without a usable title, url or score")
            continue
        ideas.append(IdeaRead(title=post.title, url=str(post.url), score=post.score))
    return ideas


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), if it says any."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so that workers retrying together spread out."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class IdeasClient:
    """Top posts of some subreddits, fetched concurrently, cached per subreddit."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        cache: Cache,
        *,
        subreddits: Sequence[str],
        limit_max: int,
        timeout: float,
        cache_seconds: float,
        failure_seconds: float = 0.0,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = http
        self.cache = cache
        self.subreddits = list(subreddits)
        self.limit_max = limit_max
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.failure_seconds = failure_seconds
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._flight: SingleFlight[list[IdeaRead]] = SingleFlight()

    async def get_ideas(self, limit: int) -> IdeaFeed:
        """Every subreddit at once: the answer takes as long as the slowest, not the sum."""
        results = await asyncio.gather(*(self._settle(name) for name in self.subreddits))
        ideas: dict[str, list[IdeaRead]] = {}
        errors: dict[str, str] = {}
        for name, result in zip(self.subreddits, results, strict=True):
            if isinstance(result, IdeasError):
                errors[name] = str(result)
            else:
                ideas[name] = result[:limit]
        return IdeaFeed(ideas=ideas, errors=errors)

    async def find(self, url: str) -> tuple[str, IdeaRead] | None:
        """The subreddit and idea with this url; IdeasError when it may be in a source that
        did not answer."""
        feed = await self.get_ideas(self.limit_max)
        for name, ideas in feed.ideas.items():
            for idea in ideas:
                if idea.url == url:
                    return name, idea
        if feed.errors:
            raise IdeasError("some sources did not answer")
        return None

    async def get_subreddit(self, name: str) -> list[IdeaRead]:
        """From the cache, else from upstream; concurrent misses share one fetch."""
        key = name.lower()
        cached = await self._cached(key)
        if cached is not None:
            return cached
        return await self._flight.do(key, lambda: self._refresh(name, key))

    async def fetch_subreddit(self, name: str) -> list[IdeaRead]:
        """Straight from upstream, retried, within the timeout budget."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch_with_retries(name)
        except TimeoutError as exc:
            raise IdeasError("upstream timed out") from exc

    async def aclose(self) -> None:
        await self._flight.cancel()
        await self.http.aclose()

    async def _settle(self, name: str) -> list[IdeaRead] | IdeasError:
        try:
            return await self.get_subreddit(name)
        except IdeasError as exc:
            logger.warning("ideas from r/%s failed: %s", name, exc)
            return exc

    async def _cached(self, key: str) -> list[IdeaRead] | None:
        value = await self.cache.get(key)
        if value is None:
            return None
        try:
            return _IDEAS.validate_json(value)
        except ValidationError:
            return None  # written by an older release; fetch afresh

    async def _refresh(self, name: str, key: str) -> list[IdeaRead]:
        # Another worker sharing the cache may have filled it since this one looked.
        cached = await self._cached(key)
        if cached is not None:
            return cached
        # A source that just failed fails again at once: a hanging upstream must not make every
        # call wait the whole budget.
        failed = await self.cache.get(key + FAILED_SUFFIX)
        if failed is not None:
            raise IdeasError(failed.decode("utf-8", "replace"))
        try:
            ideas = await self.fetch_subreddit(name)
        except IdeasError as exc:
            await self._store(key + FAILED_SUFFIX, str(exc).encode(), self.failure_seconds)
            raise
        await self._store(key, _IDEAS.dump_json(ideas), self.cache_seconds)
        return ideas

    async def _store(self, key: str, value: bytes, ttl: float) -> None:
        # The request's Redis budget ran out while the upstream answered: a write of its own.
        async with RedisStore.budget():
            await self.cache.set(key, value, ttl)

    async def _fetch_with_retries(self, name: str) -> list[IdeaRead]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = await self._get(name)
            except httpx2.TimeoutException:
                reason = "upstream timed out"
            except httpx2.TransportError:
                reason = "upstream unreachable"
            except httpx2.HTTPError as exc:
                # A body that will not decode (a false Content-Encoding) will not decode next time.
                raise IdeasError("unexpected answer from upstream") from exc
            else:
                status, headers, body = response
                if status == 200:
                    return parse_listing(body, self.limit_max)
                if status != 429 and status < 500:
                    # 3xx (Reddit's answer for a missing subreddit) and 4xx will not change.
                    raise IdeasError(f"upstream answered {status}")
                reason = f"upstream answered {status}"
                if status == 429:
                    reason = "rate limited by upstream"
                wait = retry_after(headers.get("retry-after"))
            delay = backoff(attempt) if wait is None else wait
            # Waiting past the budget would only make the caller wait too: answer now instead.
            if attempt >= self.max_attempts or loop.time() + delay >= deadline:
                raise IdeasError(reason)
            await self._sleep(delay)

    async def _get(self, name: str) -> tuple[int, httpx2.Headers, bytes]:
        params: dict[str, str | int] = {"limit": self.limit_max, "t": TOP_PERIOD, "raw_json": 1}
        async with self.http.stream("GET", f"/r/{name}/top.json", params=params) as response:
            if response.status_code != 200:
                return response.status_code, response.headers, b""
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise IdeasError("upstream answer too large")
            return response.status_code, response.headers, bytes(body)


@asynccontextmanager
async def open_ideas_client(
    config: Settings = settings, *, cache: Cache | None = None
) -> AsyncIterator[IdeasClient]:
    """One pooled HTTP client for the app's life, closed on the way out. The cache is the
    lifespan's (Redis when configured); without one, this process's memory."""
    budget = config.IDEAS_TIMEOUT_SECONDS
    http = httpx2.AsyncClient(
        base_url=config.IDEAS_BASE_URL,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        timeout=httpx2.Timeout(budget, connect=min(CONNECT_TIMEOUT_SECONDS, budget)),
        limits=httpx2.Limits(max_connections=MAX_CONNECTIONS),
        follow_redirects=False,
    )
    client = IdeasClient(
        http,
        cache if cache is not None else MemoryCache(),
        subreddits=config.IDEAS_SUBREDDITS,
        limit_max=config.IDEAS_LIMIT_MAX,
        timeout=budget,
        cache_seconds=config.IDEAS_CACHE_SECONDS,
        failure_seconds=config.IDEAS_FAILURE_CACHE_SECONDS,
    )
    try:
        yield client
    finally:
        await client.aclose()
