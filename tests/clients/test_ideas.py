"""The ideas client against a real local stub: parsing, concurrency, retries, caching."""

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest

from app.clients import ideas as ideas_module
from app.clients.cache import SingleFlight
from app.clients.ideas import (
    BACKOFF_MAX_SECONDS,
    BACKOFF_SECONDS,
    USER_AGENT,
    IdeasClient,
    IdeasError,
    backoff,
    open_ideas_client,
    retry_after,
)
from app.core import redis as redis_module
from app.core.cache import Cache, MemoryCache, RedisCache
from app.core.redis import RedisStore
from tests.conftest import TEST_REDIS_URL
from tests.utils.idea import SUBREDDITS, IdeaStub, Reply, listing, post

REDIS_URL = TEST_REDIS_URL  # a fake unless TEST_REDIS_URL names a real server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def ideas_client(
    base_url: str,
    *,
    sleeps: list[float] | None = None,
    cache: Cache | None = None,
    timeout: float = 5.0,
    cache_seconds: float = 300.0,
    failure_seconds: float = 0.0,
    subreddits: list[str] = SUBREDDITS,
) -> AsyncIterator[IdeasClient]:
    """A client whose backoff waits are recorded instead of slept, unless sleeps is None."""

    async def record(delay: float) -> None:
        assert sleeps is not None
        sleeps.append(delay)

    client = IdeasClient(
        httpx2.AsyncClient(base_url=base_url),
        cache if cache is not None else MemoryCache(),
        subreddits=subreddits,
        limit_max=25,
        timeout=timeout,
        cache_seconds=cache_seconds,
        failure_seconds=failure_seconds,
        sleep=asyncio.sleep if sleeps is None else record,
    )
    try:
        yield client
    finally:
        await client.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_get_ideas_returns_top_posts_per_subreddit(idea_stub: IdeaStub) -> None:
    async with open_ideas_client(idea_stub.settings(IDEAS_LIMIT_MAX=10)) as client:
        feed = await client.get_ideas(limit=2)
    assert feed.errors == {}
    assert list(feed.ideas) == SUBREDDITS
    assert [idea.model_dump() for idea in feed.ideas["easyrecipes"]] == [
        {"title": "easyrecipes idea 1", "url": "https://example.com/easyrecipes/1", "score": 999},
        {"title": "easyrecipes idea 2", "url": "https://example.com/easyrecipes/2", "score": 998},
    ]
    # One upstream call per subreddit, for the most any caller may ask, with our User-Agent.
    assert idea_stub.hits == dict.fromkeys(SUBREDDITS, 1)
    for seen in idea_stub.seen:
        assert seen.query == {"limit": ["10"], "t": ["day"], "raw_json": ["1"]}
        assert seen.headers["User-Agent"] == USER_AGENT


async def test_get_ideas_fetches_the_subreddits_concurrently(idea_stub: IdeaStub) -> None:
    # The stub answers nobody until all three requests are waiting at once; one after the
    # other, the first would wait past the client's budget and time out.
    idea_stub.hold(until_in_flight=len(SUBREDDITS))
    async with ideas_client(idea_stub.url, timeout=5.0) as client:
        feed = await client.get_ideas(limit=5)
    assert feed.errors == {}
    assert idea_stub.max_in_flight == len(SUBREDDITS)


async def test_fetch_retries_server_errors_with_growing_backoff(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(500), Reply(503))
    sleeps: list[float] = []
    async with ideas_client(idea_stub.url, sleeps=sleeps) as client:
        ideas = await client.fetch_subreddit("recipes")
    assert [idea.title for idea in ideas] == ["recipes idea 1", "recipes idea 2", "recipes idea 3"]
    assert idea_stub.hits["recipes"] == 3
    assert len(sleeps) == 2
    assert BACKOFF_SECONDS / 2 <= sleeps[0] <= BACKOFF_SECONDS
    assert BACKOFF_SECONDS <= sleeps[1] <= 2 * BACKOFF_SECONDS


async def test_fetch_gives_up_after_the_last_attempt(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(500), Reply(502), Reply(500), Reply(200))
    sleeps: list[float] = []
    async with ideas_client(idea_stub.url, sleeps=sleeps) as client:
        with pytest.raises(IdeasError, match=r"^upstream answered 500$"):
            await client.fetch_subreddit("recipes")
    assert idea_stub.hits["recipes"] == ideas_module.MAX_ATTEMPTS
    assert len(sleeps) == ideas_module.MAX_ATTEMPTS - 1


async def test_fetch_honours_retry_after_on_429(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(429, headers={"Retry-After": "2"}))
    sleeps: list[float] = []
    async with ideas_client(idea_stub.url, sleeps=sleeps, timeout=5.0) as client:
        ideas = await client.fetch_subreddit("recipes")
    assert len(ideas) == 3
    assert sleeps == [2.0]
    assert idea_stub.hits["recipes"] == 2


async def test_fetch_honours_retry_after_on_503(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(503, headers={"Retry-After": "1"}))
    sleeps: list[float] = []
    async with ideas_client(idea_stub.url, sleeps=sleeps) as client:
        await client.fetch_subreddit("recipes")
    assert sleeps == [1.0]


async def test_fetch_stops_when_retry_after_is_past_the_budget(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(429, headers={"Retry-After": "120"}))
    sleeps: list[float] = []
    async with ideas_client(idea_stub.url, sleeps=sleeps, timeout=5.0) as client:
        with pytest.raises(IdeasError, match=r"^rate limited by upstream$"):
            await client.fetch_subreddit("recipes")
    assert sleeps == []
    assert idea_stub.hits["recipes"] == 1


@pytest.mark.parametrize("status", [301, 302, 400, 403, 404])
async def test_fetch_does_not_retry_answers_that_will_not_change(
    idea_stub: IdeaStub, status: int
) -> None:
    idea_stub.script("recipes", Reply(status, headers={"Location": "/subreddits/search"}))
    async with ideas_client(idea_stub.url, sleeps=[]) as client:
        with pytest.raises(IdeasError, match=rf"^upstream answered {status}$"):
            await client.fetch_subreddit("recipes")
    assert idea_stub.hits["recipes"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "Listing", "data": {"children": [',
        b"<html>Too many requests</html>",
        b"",
        b"[]",
        b'{"kind": "Listing", "data": {}}',
        b'{"kind": "t3", "data": {"children": []}}',
        b'{"kind": "Listing", "data": {"children": [{"data": {}}]}}',
        b"\xff\xfe\x00",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
async def test_fetch_unexpected_body_is_an_error_without_retry(
    idea_stub: IdeaStub, body: bytes
) -> None:
    idea_stub.script("recipes", Reply(200, body=body))
    async with ideas_client(idea_stub.url, sleeps=[]) as client:
        with pytest.raises(IdeasError, match=r"^unexpected answer from upstream$"):
            await client.fetch_subreddit("recipes")
    assert idea_stub.hits["recipes"] == 1


async def test_fetch_body_that_does_not_decode_is_an_error_without_retry(
    idea_stub: IdeaStub,
) -> None:
    idea_stub.script("recipes", Reply(200, body=b"not gzip", headers={"Content-Encoding": "gzip"}))
    async with ideas_client(idea_stub.url, sleeps=[]) as client:
        with pytest.raises(IdeasError, match=r"^unexpected answer from upstream$"):
            await client.fetch_subreddit("recipes")
    assert idea_stub.hits["recipes"] == 1


async def test_fetch_skips_posts_it_cannot_use(idea_stub: IdeaStub) -> None:
    good = post("recipes", 1)
    body = listing(
        [
            good,
            post("recipes", 2, url="javascript:alert(1)"),
            post("recipes", 3, url="/r/recipes/comments/3/"),
            post("recipes", 4, url="https://example.com/" + "a" * 2048),
            post("recipes", 5, score="lots"),
            post("recipes", 6, title=" \n\t "),
            {"title": "no url", "score": 1},
        ]
    )
    comment = json.loads(listing([post("recipes", 7)], kind="t1"))["data"]["children"]
    document = json.loads(body)
    document["data"]["children"] += comment
    idea_stub.script("recipes", Reply(200, body=json.dumps(document).encode()))
    async with ideas_client(idea_stub.url) as client:
        ideas = await client.fetch_subreddit("recipes")
    assert [idea.url for idea in ideas] == [good["url"]]


async def test_fetch_makes_titles_safe_to_store_and_show(idea_stub: IdeaStub) -> None:
    # json.dumps escapes the lone surrogate and NUL, as a hostile upstream could.
    title = "Cr\u00e8me\x00 br\u00fbl\u00e9e\n\t tart \ud800 &amp; <b>\u202e\u200b"
    idea_stub.script("recipes", Reply(200, body=listing([post("recipes", 1, title=title)])))
    async with ideas_client(idea_stub.url) as client:
        ideas = await client.fetch_subreddit("recipes")
    # raw_json=1 asks for unescaped titles, so entities are left as the upstream wrote them.
    assert [idea.title for idea in ideas] == ["Cr\u00e8me br\u00fbl\u00e9e tart &amp; <b>"]


async def test_fetch_waits_for_a_slow_answer_within_the_budget(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(delay=0.3))
    async with ideas_client(idea_stub.url, sleeps=[], timeout=5.0) as client:
        assert len(await client.fetch_subreddit("recipes")) == 3
    assert idea_stub.hits["recipes"] == 1


async def test_fetch_gives_up_on_an_answer_slower_than_the_budget(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(delay=2.0))
    sleeps: list[float] = []
    async with ideas_client(idea_stub.url, sleeps=sleeps, timeout=0.3) as client:
        with pytest.raises(IdeasError, match=r"^upstream timed out$"):
            await client.fetch_subreddit("recipes")
    assert idea_stub.hits["recipes"] == 1


async def test_fetch_times_out_within_the_budget(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(hang=True))
    async with ideas_client(idea_stub.url, sleeps=[], timeout=0.5) as client:
        with pytest.raises(IdeasError, match=r"^upstream timed out$"):
            await client.fetch_subreddit("recipes")


async def test_fetch_retries_an_unreachable_upstream_then_gives_up() -> None:
    sleeps: list[float] = []
    async with ideas_client(f"http://127.0.0.1:{closed_port()}", sleeps=sleeps) as client:
        with pytest.raises(IdeasError, match=r"^upstream unreachable$"):
            await client.fetch_subreddit("recipes")
    assert len(sleeps) == ideas_module.MAX_ATTEMPTS - 1


async def test_fetch_refuses_an_oversized_answer(
    idea_stub: IdeaStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ideas_module, "MAX_BODY_BYTES", 1024)
    idea_stub.script("recipes", Reply(200, body=listing([post("recipes", n) for n in range(50)])))
    async with ideas_client(idea_stub.url) as client:
        with pytest.raises(IdeasError, match=r"^upstream answer too large$"):
            await client.fetch_subreddit("recipes")


async def test_get_ideas_returns_what_answered_and_why_the_rest_failed(
    idea_stub: IdeaStub,
) -> None:
    idea_stub.script("easyrecipes", Reply(404))
    idea_stub.script("TopSecretRecipes", Reply(200, body=b"not json"))
    async with ideas_client(idea_stub.url) as client:
        feed = await client.get_ideas(limit=1)
    assert list(feed.ideas) == ["recipes"]
    assert feed.errors == {
        "easyrecipes": "upstream answered 404",
        "TopSecretRecipes": "unexpected answer from upstream",
    }


async def test_get_subreddit_concurrent_misses_share_one_fetch(idea_stub: IdeaStub) -> None:
    idea_stub.hold()
    async with ideas_client(idea_stub.url, cache_seconds=0) as client:
        calls = [asyncio.create_task(client.get_subreddit("recipes")) for _ in range(20)]
        assert await asyncio.to_thread(idea_stub.wait_in_flight, 1)
        # Every call has started by now: the loop ran them all before the socket answered.
        idea_stub.release()
        results = await asyncio.gather(*calls)
        assert idea_stub.hits["recipes"] == 1
        assert all(result == results[0] for result in results)
        # With no cache, the next call after the fetch finished fetches again.
        await client.get_subreddit("recipes")
    assert idea_stub.hits["recipes"] == 2


async def test_get_subreddit_concurrent_misses_share_one_failure(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(404))
    idea_stub.hold()
    async with ideas_client(idea_stub.url) as client:
        calls = [asyncio.create_task(client.get_subreddit("recipes")) for _ in range(5)]
        assert await asyncio.to_thread(idea_stub.wait_in_flight, 1)
        idea_stub.release()
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, IdeasError) for r in results)
    assert idea_stub.hits["recipes"] == 1


async def test_get_subreddit_a_caller_leaving_does_not_cancel_the_fetch(
    idea_stub: IdeaStub,
) -> None:
    idea_stub.hold()
    async with ideas_client(idea_stub.url) as client:
        leaving = asyncio.create_task(client.get_subreddit("recipes"))
        staying = asyncio.create_task(client.get_subreddit("recipes"))
        assert await asyncio.to_thread(idea_stub.wait_in_flight, 1)
        leaving.cancel()
        idea_stub.release()
        assert len(await staying) == 3
    assert leaving.cancelled()
    assert idea_stub.hits["recipes"] == 1


async def test_get_subreddit_caches_for_the_configured_seconds(idea_stub: IdeaStub) -> None:
    clock = Clock()
    async with ideas_client(
        idea_stub.url, cache=MemoryCache(clock=clock), cache_seconds=60
    ) as client:
        first = await client.get_subreddit("recipes")
        clock.now += 59
        assert await client.get_subreddit("Recipes") == first
        assert idea_stub.hits["recipes"] == 1
        clock.now += 1
        await client.get_subreddit("recipes")
    assert idea_stub.hits["recipes"] == 2


async def test_get_subreddit_answers_a_recent_failure_without_asking_again(
    idea_stub: IdeaStub,
) -> None:
    # A hanging source made every call wait the whole budget; now one call in 15 s does.
    idea_stub.script("recipes", Reply(hang=True))
    clock = Clock()
    cache = MemoryCache(clock=clock)
    async with ideas_client(
        idea_stub.url, cache=cache, timeout=0.5, failure_seconds=15, sleeps=[]
    ) as client:
        with pytest.raises(IdeasError, match="timed out"):
            await client.get_subreddit("recipes")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(IdeasError, match="timed out"):
            await client.get_subreddit("recipes")
        assert loop.time() - started < 0.25
        assert idea_stub.hits["recipes"] == 1
        clock.now += 15
        assert len(await client.get_subreddit("recipes")) == 3
    assert idea_stub.hits["recipes"] == 2


async def test_open_ideas_client_keeps_failures_for_the_configured_seconds(
    idea_stub: IdeaStub,
) -> None:
    async with open_ideas_client(idea_stub.settings(IDEAS_FAILURE_CACHE_SECONDS=7)) as client:
        assert client.failure_seconds == 7


async def test_get_subreddit_without_failure_seconds_asks_again(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(404))
    async with ideas_client(idea_stub.url) as client:
        with pytest.raises(IdeasError):
            await client.get_subreddit("recipes")
        assert len(await client.get_subreddit("recipes")) == 3
    assert idea_stub.hits["recipes"] == 2


async def test_get_subreddit_unreadable_cache_entry_is_a_miss(idea_stub: IdeaStub) -> None:
    cache = MemoryCache()
    await cache.set("recipes", b'[{"title": "from an older release"}]', ttl=60)
    async with ideas_client(idea_stub.url, cache=cache) as client:
        ideas = await client.get_subreddit("recipes")
    assert ideas[0].title == "recipes idea 1"
    assert idea_stub.hits["recipes"] == 1


async def test_find_names_the_subreddit_of_an_idea(idea_stub: IdeaStub) -> None:
    async with ideas_client(idea_stub.url) as client:
        found = await client.find("https://example.com/topsecretrecipes/2")
        missing = await client.find("https://example.com/nowhere")
    assert found is not None
    assert found[0] == "TopSecretRecipes"
    assert found[1].title == "TopSecretRecipes idea 2"
    assert missing is None


async def test_find_cannot_say_not_found_while_a_source_is_down(idea_stub: IdeaStub) -> None:
    idea_stub.script("easyrecipes", Reply(404))
    async with ideas_client(idea_stub.url) as client:
        with pytest.raises(IdeasError):
            await client.find("https://example.com/nowhere")
        # What it did find it still finds.
        idea_stub.script("easyrecipes", Reply(404))
        assert await client.find("https://example.com/recipes/1") is not None


def redis_store(url: str, prefix: str, timeout: float = 1.0) -> RedisStore:
    return RedisStore.from_url(url, prefix=prefix, timeout=timeout, cooldown=5.0)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no one else uses on the shared Redis; its keys are deleted afterwards."""
    prefix = f"recipe-service-tests:{secrets.token_hex(8)}:"
    yield prefix
    redis = redis_module.create_redis(REDIS_URL, timeout=1.0)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        assert [key async for key in redis.scan_iter(match=f"{prefix}*")] == []
    finally:
        await redis.aclose()


async def test_redis_cache_is_shared_by_workers(idea_stub: IdeaStub, redis_prefix: str) -> None:
    # Two clients with one Redis behind them stand for two worker processes. A generous
    # timeout: 60 concurrent first connections on a loaded machine must not read as an outage.
    first = redis_store(REDIS_URL, redis_prefix, timeout=5.0)
    second = redis_store(REDIS_URL, redis_prefix, timeout=5.0)
    try:
        async with ideas_client(
            idea_stub.url, cache=RedisCache(first, "ideas:"), cache_seconds=30
        ) as client:
            feeds = await asyncio.gather(*(client.get_ideas(limit=3) for _ in range(20)))
        assert idea_stub.hits == dict.fromkeys(SUBREDDITS, 1)
        async with ideas_client(
            idea_stub.url, cache=RedisCache(second, "ideas:"), cache_seconds=30
        ) as client:
            assert await client.get_ideas(limit=3) == feeds[0]
        assert idea_stub.hits == dict.fromkeys(SUBREDDITS, 1)
        # Under the app's REDIS_KEY_PREFIX, like every other key.
        ttl = await first.client.pttl(f"{redis_prefix}ideas:topsecretrecipes")
    finally:
        await first.aclose()
        await second.aclose()
    assert 0 < ttl <= 30_000


async def test_redis_cache_down_means_fetching_every_time(
    idea_stub: IdeaStub, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(redis_store(f"redis://127.0.0.1:{closed_port()}/0", "unused:"))
    async with ideas_client(idea_stub.url, cache=cache, subreddits=["recipes"]) as client:
        assert len((await client.get_ideas(limit=5)).ideas["recipes"]) == 3
        assert len((await client.get_ideas(limit=5)).ideas["recipes"]) == 3
    assert idea_stub.hits["recipes"] == 2
    assert "cache read failed" in caplog.text
    assert "cache write failed" in caplog.text


async def test_redis_cache_that_never_answers_is_a_miss(
    idea_stub: IdeaStub, caplog: pytest.LogCaptureFixture
) -> None:
    # Accepts connections (the kernel completes the handshake) and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cache = RedisCache(redis_store(f"redis://127.0.0.1:{port}/0", "unused:", timeout=0.2))
        async with ideas_client(idea_stub.url, cache=cache, subreddits=["recipes"]) as client:
            feed = await client.get_ideas(limit=5)
    assert len(feed.ideas["recipes"]) == 3
    assert "cache read failed" in caplog.text


async def test_memory_cache_ignores_zero_ttl_and_drops_stale_entries() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("a", b"1", ttl=0)
    assert await cache.get("a") is None
    await cache.set("a", b"1", ttl=5)
    clock.now += 10
    await cache.set("b", b"2", ttl=5)
    assert cache._items.keys() == {"b"}
    await cache.delete("b")
    assert await cache.get("b") is None


async def test_redis_cache_ignores_zero_ttl(redis_prefix: str) -> None:
    store = redis_store(REDIS_URL, redis_prefix)
    cache = RedisCache(store)
    try:
        await cache.set("a", b"1", ttl=0)
        assert await cache.get("a") is None
        await cache.set("a", b"1", ttl=5)
        assert await cache.get("a") == b"1"
        await cache.delete("a")
        assert await cache.get("a") is None
    finally:
        await store.aclose()


async def test_single_flight_cancel_stops_runs_in_progress() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started = asyncio.Event()

    async def forever() -> int:
        started.set()
        await asyncio.Event().wait()
        return 1

    waiter = asyncio.create_task(flight.do("k", forever))
    await started.wait()
    await flight.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_parse_listing_validates_only_the_posts_it_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    # 30k posts took ~0.9 s of the event loop to validate when 25 were used.
    validated = 0
    real = ideas_module._Post.model_validate

    def counting(data: Any) -> Any:
        nonlocal validated
        validated += 1
        return real(data)

    monkeypatch.setattr(ideas_module._Post, "model_validate", counting)
    body = listing([post("recipes", n) for n in range(30_000)])
    ideas = ideas_module.parse_listing(body, 25)
    assert [idea.title for idea in ideas] == [f"recipes idea {n}" for n in range(25)]
    assert validated == 25


async def test_open_ideas_client_closes_what_it_opened(idea_stub: IdeaStub) -> None:
    async with open_ideas_client(idea_stub.settings()) as client:
        assert not client.http.is_closed
        assert isinstance(client.cache, MemoryCache)
    assert client.http.is_closed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Wed, 01 Jan 2031 00:00:30 GMT", 30.0),
        ("Tue, 31 Dec 2030 23:59:00 GMT", 0.0),
        ("Wed, 01 Jan 2031 00:00:30 -0000", None),
        ("-5", None),
        ("1.5", None),
        ("\u00b2", None),
        ("9" * 400, float("inf")),
        ("soon", None),
    ],
)
def test_retry_after_reads_seconds_and_dates(header: str | None, expected: Any) -> None:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    assert retry_after(header, now=now) == expected


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(1, 12):
        ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff(attempt) <= ceiling


async def test_fetch_retries_an_attempt_that_timed_out(idea_stub: IdeaStub) -> None:
    idea_stub.script("recipes", Reply(hang=True))
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    http = httpx2.AsyncClient(base_url=idea_stub.url, timeout=httpx2.Timeout(0.3))
    client = IdeasClient(
        http,
        MemoryCache(),
        subreddits=["recipes"],
        limit_max=5,
        timeout=5.0,
        cache_seconds=0,
        sleep=record,
    )
    try:
        assert len(await client.fetch_subreddit("recipes")) == 3
    finally:
        await client.aclose()
    assert idea_stub.hits["recipes"] == 2
    assert len(sleeps) == 1


class FilledMeanwhile(MemoryCache):
    """A cache another worker fills between this one's first look and its fetch."""

    def __init__(self, value: bytes) -> None:
        super().__init__()
        self.value = value
        self.filled = False

    async def get(self, key: str) -> bytes | None:
        value = await super().get(key)
        if value is None and not self.filled:
            self.filled = True
            await self.set(key, self.value, ttl=60)  # the other worker's write lands now
        return value


async def test_get_subreddit_uses_what_another_worker_cached_meanwhile(
    idea_stub: IdeaStub,
) -> None:
    cached = b'[{"title": "From the other worker", "url": "https://example.com/o", "score": 1}]'
    async with ideas_client(idea_stub.url, cache=FilledMeanwhile(cached)) as client:
        ideas = await client.get_subreddit("recipes")
    assert [idea.title for idea in ideas] == ["From the other worker"]
    assert idea_stub.hits["recipes"] == 0


@pytest.mark.parametrize("outcome", ["ideas", "failure"])
async def test_a_fetch_slower_than_the_redis_budget_still_caches(
    idea_stub: IdeaStub, redis_prefix: str, outcome: str
) -> None:
    # The request's budget (0.2 s) starts at its cache read; the writes come after the fetch.
    if outcome == "ideas":
        idea_stub.script("recipes", Reply(delay=0.4))
    else:
        idea_stub.script("recipes", Reply(hang=True))
    store = redis_store(REDIS_URL, redis_prefix, timeout=0.2)
    cache = RedisCache(store, "ideas:")
    try:
        async with (
            ideas_client(
                idea_stub.url, cache=cache, timeout=1.0, failure_seconds=15, sleeps=[]
            ) as client,
            RedisStore.budget(),
        ):
            if outcome == "ideas":
                assert len(await client.get_subreddit("recipes")) == 3
            else:
                with pytest.raises(IdeasError, match="timed out"):
                    await client.get_subreddit("recipes")
        key = "recipes" if outcome == "ideas" else "recipes:failed"
        assert await cache.get(key) is not None
        assert store.available
    finally:
        await store.aclose()
