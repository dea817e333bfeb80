"""Recipe idea endpoints: the feed, its failure modes, a swapped-in client, and importing."""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.api.api_v1.endpoints.idea import UNAVAILABLE, get_ideas_client
from app.api.deps import get_current_user, get_writer
from app.clients.ideas import IdeasClient, IdeasError, open_ideas_client
from app.core.cache import MemoryCache, RedisCache
from app.core.config import Settings, settings
from app.db.session import get_db, get_read_db, make_engine, make_sessionmaker
from app.main import app, create_app
from app.models import User
from app.models.recipe import Recipe
from app.schemas.idea import IdeaFeed, IdeaRead
from tests.utils.db import migrate
from tests.utils.idea import SUBREDDITS, IdeaStub, Reply, post
from tests.utils.recipe import create_random_recipe
from tests.utils.server import run_sh, superuser_headers
from tests.utils.user import create_random_user
from tests.utils.utils import Configure, auth_headers, override_sessions

IDEAS = "/api/v1/recipes/ideas"
IMPORT = f"{IDEAS}/import"
IDEA_URL = "https://example.com/easyrecipes/2"
SLOW_REQUESTS = 3
UPSTREAM_DELAY_SECONDS = 2.0


@pytest.fixture
async def ideas_client(idea_stub: IdeaStub) -> AsyncIterator[IdeasClient]:
    """The real client, pointed at the stub, put in place of the app's one."""
    async with open_ideas_client(idea_stub.settings()) as ideas:
        app.dependency_overrides[get_ideas_client] = lambda: ideas
        try:
            yield ideas
        finally:
            app.dependency_overrides.pop(get_ideas_client, None)


class FakeIdeas:
    """What a test or a user would swap in: no network at all."""

    def __init__(self, feed: IdeaFeed) -> None:
        self.feed = feed
        self.limits: list[int] = []

    async def get_ideas(self, limit: int) -> IdeaFeed:
        self.limits.append(limit)
        return self.feed

    async def find(self, url: str) -> tuple[str, IdeaRead] | None:
        for name, ideas in self.feed.ideas.items():
            for idea in ideas:
                if idea.url == url:
                    return name, idea
        if self.feed.errors:
            raise IdeasError("down")
        return None


def use(fake: FakeIdeas) -> None:
    app.dependency_overrides[get_ideas_client] = lambda: fake


FEED = IdeaFeed(
    ideas={"soups": [IdeaRead(title="Leek soup", url="https://example.com/leek", score=7)]},
    errors={"stews": "upstream timed out"},
)


def _as(kind: type[IdeasClient], real: IdeasClient, config: Settings) -> IdeasClient:
    """The same HTTP client and cache as `real`, behind a test's subclass of IdeasClient."""
    return kind(
        real.http,
        real.cache,
        subreddits=config.IDEAS_SUBREDDITS,
        limit_max=config.IDEAS_LIMIT_MAX,
        timeout=config.IDEAS_TIMEOUT_SECONDS,
        cache_seconds=config.IDEAS_CACHE_SECONDS,
    )


async def test_read_ideas_route_is_not_taken_for_a_recipe_id(client: httpx2.AsyncClient) -> None:
    # Were /recipes/{recipe_id} matched first, this would be a 422 for the id "ideas".
    assert (await client.get(IDEAS)).status_code == 401
    assert (await client.post(IMPORT, json={"url": IDEA_URL})).status_code == 401


async def test_import_idea_needs_the_recipes_write_scope(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    use(FakeIdeas(FEED))
    response = await client.post(
        IMPORT, json={"url": IDEA_URL}, headers=auth_headers(normal_user.id, scopes=())
    )
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer scope="recipes:write"'


async def test_read_ideas_with_a_fake_client(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    fake = FakeIdeas(FEED)
    use(fake)
    response = await client.get(IDEAS, params={"limit": 3}, headers=normal_user_token_headers)
    assert response.status_code == 200
    assert response.json() == {
        "ideas": {"soups": [{"title": "Leek soup", "url": "https://example.com/leek", "score": 7}]},
        "errors": {"stews": "upstream timed out"},
    }
    assert fake.limits == [3]


async def test_read_ideas_default_limit_is_five(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    fake = FakeIdeas(FEED)
    use(fake)
    await client.get(IDEAS, headers=normal_user_token_headers)
    assert fake.limits == [5]


@pytest.mark.parametrize("limit", ["0", "-1", str(settings.IDEAS_LIMIT_MAX + 1), "five", "1.5"])
async def test_read_ideas_bad_limit_is_422(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str], limit: str
) -> None:
    use(FakeIdeas(FEED))
    response = await client.get(IDEAS, params={"limit": limit}, headers=normal_user_token_headers)
    assert response.status_code == 422


@pytest.mark.usefixtures("ideas_client")
async def test_read_ideas_from_the_stub_through_the_real_client(
    client: httpx2.AsyncClient,
    normal_user_token_headers: dict[str, str],
) -> None:
    response = await client.get(IDEAS, params={"limit": 2}, headers=normal_user_token_headers)
    assert response.status_code == 200
    body = response.json()
    assert list(body["ideas"]) == SUBREDDITS
    assert [i["title"] for i in body["ideas"]["recipes"]] == ["recipes idea 1", "recipes idea 2"]
    assert body["errors"] == {}


@pytest.mark.usefixtures("ideas_client")
async def test_read_ideas_partial_failure_still_answers(
    client: httpx2.AsyncClient,
    idea_stub: IdeaStub,
    normal_user_token_headers: dict[str, str],
) -> None:
    idea_stub.script("recipes", Reply(404))
    idea_stub.script("TopSecretRecipes", Reply(200, body=b"{"))
    response = await client.get(IDEAS, headers=normal_user_token_headers)
    assert response.status_code == 200
    assert list(response.json()["ideas"]) == ["easyrecipes"]
    assert response.json()["errors"] == {
        "recipes": "upstream answered 404",
        "TopSecretRecipes": "unexpected answer from upstream",
    }


@pytest.mark.usefixtures("ideas_client")
async def test_read_ideas_every_source_failing_is_502(
    client: httpx2.AsyncClient,
    idea_stub: IdeaStub,
    normal_user_token_headers: dict[str, str],
) -> None:
    for name in SUBREDDITS:
        idea_stub.script(name, Reply(403))
    response = await client.get(IDEAS, headers=normal_user_token_headers)
    assert response.status_code == 502
    assert response.json() == {"detail": UNAVAILABLE}


async def test_read_ideas_twenty_concurrent_calls_fetch_each_subreddit_once(
    client: httpx2.AsyncClient, idea_stub: IdeaStub, normal_user: User
) -> None:
    entered = 0

    class Counting(IdeasClient):
        async def get_subreddit(self, name: str) -> list[IdeaRead]:
            nonlocal entered
            entered += 1
            return await super().get_subreddit(name)

    config = idea_stub.settings()
    async with open_ideas_client(config) as real:
        ideas = _as(Counting, real, config)
        app.dependency_overrides[get_ideas_client] = lambda: ideas
        # The test's one database session cannot serve 20 requests at once; auth has its own tests.
        app.dependency_overrides[get_current_user] = lambda: normal_user
        app.dependency_overrides[get_writer] = lambda: normal_user

        async def idle_session() -> AsyncIterator[AsyncSession]:
            # One session per request, which runs no SQL here (auth is overridden above).
            async with AsyncSession() as session:
                yield session

        app.dependency_overrides[get_db] = idle_session
        idea_stub.hold()
        calls = [asyncio.create_task(client.get(IDEAS)) for _ in range(20)]
        assert await asyncio.to_thread(idea_stub.wait_in_flight, len(SUBREDDITS))
        for _ in range(200):
            if entered == 20 * len(SUBREDDITS):
                break
            await asyncio.sleep(0.01)
        assert entered == 20 * len(SUBREDDITS)
        idea_stub.release()
        responses = await asyncio.gather(*calls)
        assert {r.status_code for r in responses} == {200}
        assert all(r.json() == responses[0].json() for r in responses)
        assert idea_stub.hits == dict.fromkeys(SUBREDDITS, 1)
        # Later calls are served from the cache.
        assert (await client.get(IDEAS)).status_code == 200
        assert idea_stub.hits == dict.fromkeys(SUBREDDITS, 1)


@pytest.mark.usefixtures("ideas_client")
async def test_import_idea_creates_a_recipe_for_the_caller(
    client: httpx2.AsyncClient,
    normal_user: User,
    normal_user_token_headers: dict[str, str],
) -> None:
    response = await client.post(IMPORT, json={"url": IDEA_URL}, headers=normal_user_token_headers)
    assert response.status_code == 201
    body = response.json()
    assert body["label"] == "easyrecipes idea 2"
    assert body["source"] == "r/easyrecipes"
    assert body["url"] == IDEA_URL
    assert body["submitter_id"] == normal_user.id
    assert (await client.get(f"/api/v1/recipes/{body['id']}")).json() == body


@pytest.mark.usefixtures("ideas_client")
async def test_import_idea_twice_is_409_but_another_user_may(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user_token_headers: dict[str, str],
) -> None:
    first = await client.post(IMPORT, json={"url": IDEA_URL}, headers=normal_user_token_headers)
    again = await client.post(IMPORT, json={"url": IDEA_URL}, headers=normal_user_token_headers)
    assert first.status_code == 201
    assert again.status_code == 409
    assert again.json() == {"detail": "You already have a recipe with this url"}
    other = await create_random_user(db)
    theirs = await client.post(IMPORT, json={"url": IDEA_URL}, headers=auth_headers(other.id))
    assert theirs.status_code == 201


@pytest.mark.usefixtures("ideas_client")
async def test_import_idea_already_saved_by_hand_is_409(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    normal_user: User,
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.post(
        IMPORT, json={"url": recipe.url}, headers=auth_headers(normal_user.id)
    )
    assert response.status_code == 409


@pytest.mark.usefixtures("ideas_client")
async def test_import_idea_truncates_a_long_title_to_a_label(
    client: httpx2.AsyncClient,
    idea_stub: IdeaStub,
    normal_user_token_headers: dict[str, str],
) -> None:
    idea_stub.posts["recipes"] = [post("recipes", 1, title="Soup " * 60)]
    response = await client.post(
        IMPORT, json={"url": "https://example.com/recipes/1"}, headers=normal_user_token_headers
    )
    assert response.status_code == 201
    label = response.json()["label"]
    assert len(label) <= 256
    assert label.startswith("Soup Soup")
    assert label == label.strip()


@pytest.mark.usefixtures("ideas_client")
async def test_import_idea_unknown_url_is_404(
    client: httpx2.AsyncClient,
    normal_user_token_headers: dict[str, str],
) -> None:
    response = await client.post(
        IMPORT, json={"url": "https://example.com/not-an-idea"}, headers=normal_user_token_headers
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "No current idea has this url"}


async def test_import_idea_while_sources_are_down_is_502(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    use(FakeIdeas(FEED))
    response = await client.post(
        IMPORT, json={"url": "https://example.com/not-soup"}, headers=normal_user_token_headers
    )
    assert response.status_code == 502
    assert response.json() == {"detail": UNAVAILABLE}
    # An idea from a source that did answer can still be imported.
    found = await client.post(
        IMPORT, json={"url": "https://example.com/leek"}, headers=normal_user_token_headers
    )
    assert found.status_code == 201
    assert found.json()["source"] == "r/soups"


@pytest.mark.usefixtures("ideas_client")
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": None},
        {"url": "not a url"},
        {"url": "javascript:alert(1)"},
        {"url": "https://example.com/" + "a" * 2048},
        {"url": IDEA_URL, "label": "mine"},
        [IDEA_URL],
    ],
)
async def test_import_idea_bad_body_is_422(
    client: httpx2.AsyncClient,
    idea_stub: IdeaStub,
    normal_user_token_headers: dict[str, str],
    body: Any,
) -> None:
    response = await client.post(IMPORT, json=body, headers=normal_user_token_headers)
    assert response.status_code == 422
    assert sum(idea_stub.hits.values()) == 0


async def test_ideas_are_in_the_openapi_document(client: httpx2.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths[IDEAS]["get"]["responses"]) == {"200", "401", "422", "429", "502", "503"}
    import_codes = {"201", "401", "403", "404", "409", "413", "422", "429", "502", "503"}
    assert set(paths[IMPORT]["post"]["responses"]) == import_codes
    assert paths[IDEAS]["get"]["tags"] == ["ideas"]


# One pooled connection, waited for at most this long: a route that kept it through the fetch
# would make the bystander below answer 503 (and on SQLite, wait for the write lock) instead.
POOL_TIMEOUT_SECONDS = 1.0
HANGING_BUDGET_SECONDS = 4.0


async def _bystander_during_a_hanging_fetch(
    url: str, stub: IdeaStub, method: str, path: str
) -> tuple[int, int, float]:
    engine = create_async_engine(
        url, pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT_SECONDS
    )
    sessions = make_sessionmaker(engine)

    async with sessions() as db:
        user_id = (await create_random_user(db)).id
        await db.commit()
    headers = auth_headers(user_id)
    override_sessions(app, sessions)
    config = stub.settings(IDEAS_TIMEOUT_SECONDS=HANGING_BUDGET_SECONDS)
    try:
        async with open_ideas_client(config) as ideas:
            app.dependency_overrides[get_ideas_client] = lambda: ideas
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(
                transport=transport, base_url="http://test", timeout=30
            ) as http:
                body = {"url": IDEA_URL} if method == "POST" else None
                waiting = asyncio.create_task(
                    http.request(method, path, json=body, headers=headers)
                )
                assert await asyncio.to_thread(stub.wait_in_flight, len(SUBREDDITS))
                loop = asyncio.get_running_loop()
                started = loop.time()
                recipe = {"label": "Bystander", "source": "Me", "url": "https://example.com/b"}
                bystander = await http.post("/api/v1/recipes", json=recipe, headers=headers)
                took = loop.time() - started
                answer = await waiting
    finally:
        for dependency in (get_db, get_read_db, get_ideas_client):
            app.dependency_overrides.pop(dependency, None)
        await engine.dispose()
    return answer.status_code, bystander.status_code, took


@pytest.mark.parametrize(("method", "path"), [("GET", IDEAS), ("POST", IMPORT)])
def test_ideas_routes_hold_no_database_connection_while_the_upstream_hangs(
    fresh_database_url: str, idea_stub: IdeaStub, method: str, path: str
) -> None:
    for name in SUBREDDITS:
        idea_stub.script(name, *[Reply(hang=True)] * 3)
    migrate(fresh_database_url)
    answer, bystander, took = asyncio.run(
        _bystander_during_a_hanging_fetch(fresh_database_url, idea_stub, method, path)
    )
    assert answer == 502
    assert bystander == 201
    # Not held up by the upstream's budget (a 503 above would mean it waited out the pool).
    assert took < HANGING_BUDGET_SECONDS


async def _two_imports_of_one_url(url: str, stub: IdeaStub) -> tuple[list[int], int]:
    # The app's engine: on SQLite, a write request's transactions begin with the write lock.
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as db:
        user_id = (await create_random_user(db)).id
        await db.commit()
    headers = auth_headers(user_id)
    override_sessions(app, sessions)
    entered = 0

    class Counting(IdeasClient):
        async def find(self, url: str) -> tuple[str, IdeaRead] | None:
            nonlocal entered
            entered += 1
            return await super().find(url)

    config = stub.settings()
    try:
        async with open_ideas_client(config) as real:
            ideas = _as(Counting, real, config)
            app.dependency_overrides[get_ideas_client] = lambda: ideas
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(
                transport=transport, base_url="http://test", timeout=30
            ) as http:
                stub.hold()
                calls = [
                    asyncio.create_task(http.post(IMPORT, json={"url": IDEA_URL}, headers=headers))
                    for _ in range(2)
                ]
                # Both have passed the first duplicate check and wait on the upstream.
                for _ in range(500):
                    if entered == 2:
                        break
                    await asyncio.sleep(0.01)
                assert entered == 2
                stub.release()
                responses = await asyncio.gather(*calls)
        async with sessions() as db:
            query = select(Recipe).where(Recipe.submitter_id == user_id)
            rows = len((await db.scalars(query)).all())
    finally:
        for dependency in (get_db, get_read_db, get_ideas_client):
            app.dependency_overrides.pop(dependency, None)
        await engine.dispose()
    return sorted(r.status_code for r in responses), rows


def test_two_concurrent_imports_of_one_url_make_one_recipe(
    fresh_database_url: str, idea_stub: IdeaStub
) -> None:
    migrate(fresh_database_url)
    statuses, rows = asyncio.run(_two_imports_of_one_url(fresh_database_url, idea_stub))
    assert statuses == [201, 409]
    assert rows == 1


async def test_lifespan_opens_the_ideas_client_and_closes_it(idea_stub: IdeaStub) -> None:
    application = create_app()
    async with application.router.lifespan_context(application):
        ideas = application.state.ideas
        assert isinstance(ideas, IdeasClient)
        assert not ideas.http.is_closed
        # Handlers reach the client through the dependency.
        async with open_ideas_client(idea_stub.settings()) as stubbed:
            application.state.ideas = stubbed
            user = User(id=1, email="cook@example.com", is_active=True)
            application.dependency_overrides[get_current_user] = lambda: user
            application.dependency_overrides[get_writer] = lambda: user
            transport = httpx2.ASGITransport(app=application)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
                response = await c.get(IDEAS, params={"limit": 1})
            application.state.ideas = ideas
        assert response.status_code == 200
        assert idea_stub.hits["recipes"] == 1
    assert ideas.http.is_closed


async def test_lifespan_caches_ideas_in_the_apps_redis_when_set(
    configure: Configure, redis_url: str
) -> None:
    application = create_app()
    async with application.router.lifespan_context(application):
        assert isinstance(application.state.ideas.cache, MemoryCache)
    configure(REDIS_URL=redis_url)
    application = create_app()
    async with application.router.lifespan_context(application):
        assert isinstance(application.state.ideas.cache, RedisCache)


def test_sigterm_lets_requests_waiting_on_the_upstream_finish(
    fresh_database_url: str, idea_stub: IdeaStub
) -> None:
    # Slow on the server's side: every upstream answer for the idea feed takes this long.
    for name in SUBREDDITS:
        idea_stub.script(name, *[Reply(delay=UPSTREAM_DELAY_SECONDS)] * SLOW_REQUESTS)
    env = {
        "IDEAS_BASE_URL": idea_stub.url,
        "IDEAS_SUBREDDITS": ",".join(SUBREDDITS),
        "IDEAS_TIMEOUT_SECONDS": "30",
    }
    with run_sh(fresh_database_url, **env) as service, ThreadPoolExecutor(SLOW_REQUESTS) as pool:
        base_url, proc = service.base_url, service.proc
        headers = superuser_headers(base_url)
        slow = [
            pool.submit(httpx2.get, f"{base_url}{IDEAS}", headers=headers, timeout=30)
            for _ in range(SLOW_REQUESTS)
        ]
        assert idea_stub.wait_in_flight(SLOW_REQUESTS)
        time.sleep(0.5)  # let the server start on the requests before it is told to stop
        os.killpg(proc.pid, signal.SIGTERM)
        answers = [future.result() for future in slow]
        assert [a.status_code for a in answers] == [200] * SLOW_REQUESTS
        assert all(a.json()["ideas"] for a in answers)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
