"""Faults under load: racing duplicate sign-ups and a PostgreSQL outage against the real service
on loopback, and a burst of password checks on a one-connection pool."""

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, Self, TypeVar

import asyncpg
import httpx2
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.core import security
from app.db.session import make_sessionmaker
from app.main import app
from app.services import user as user_service
from tests.conftest import TEST_DATABASE_URL
from tests.utils.db import create_database, migrate, new_database_url
from tests.utils.postgres import PrivateCluster, find_pg_bin
from tests.utils.server import run_sh, superuser_headers
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import override_sessions, random_email

SIGNUP = "/api/v1/auth/signup"
RACERS = 20
P = ParamSpec("P")
T = TypeVar("T")
RECIPE = {"label": "Load", "source": "Test Kitchen", "url": "https://example.com/load"}


async def _race_signups(base_url: str, email: str) -> Counter[int]:
    body = {"email": email, "password": "a-long-password", "first_name": "R", "surname": "C"}
    limits = httpx2.Limits(max_connections=RACERS)
    async with httpx2.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        responses = await asyncio.gather(*(http.post(SIGNUP, json=body) for _ in range(RACERS)))
    return Counter(r.status_code for r in responses)


def test_concurrent_signups_with_one_email_create_one_account(fresh_database_url: str) -> None:
    with run_sh(fresh_database_url) as service:
        statuses = asyncio.run(_race_signups(service.base_url, "racer@example.com"))
    assert statuses == Counter({201: 1, 409: RACERS - 1})


# The outage tests stop and start a PostgreSQL server of their own, so they need its programs;
# the PostgreSQL leg (TEST_DATABASE_URL=postgresql...) runs them, in CI too.
needs_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgresql"),
    reason="PostgreSQL outage tests run in the PostgreSQL leg (TEST_DATABASE_URL=postgresql...)",
)
POOL_TIMEOUT_SECONDS = 3.0
# What a request may take beyond the pool timeout: a connect attempt and the answer.
SLACK_SECONDS = 2.0
LOAD_WORKERS = 4
RECOVERY_TIMEOUT_SECONDS = 20.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail("the PostgreSQL leg needs the server's programs (initdb, pg_ctl)")
    with PrivateCluster(bin_dir) as private:
        yield private


@dataclass(frozen=True)
class Outcome:
    started: float
    seconds: float
    write: bool
    status: int | None  # None: no HTTP answer at all
    recipe_id: int | None = None


class Load:
    """Threads that submit and read recipes without pause until stopped."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url, self.headers = base_url, headers
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(n,), daemon=True) for n in range(LOAD_WORKERS)
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _work(self, worker: int) -> None:
        with httpx2.Client(base_url=self.base_url, headers=self.headers, timeout=60) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                write = n % 2 == 0
                started = time.monotonic()
                try:
                    if write:
                        body = RECIPE | {"url": f"https://example.com/load/{worker}/{n}"}
                        response = http.post("/api/v1/recipes", json=body)
                    else:
                        response = http.get("/api/v1/recipes", params={"limit": 5})
                except httpx2.TransportError:
                    status, recipe_id = None, None
                else:
                    status = response.status_code
                    recipe_id = response.json()["id"] if status == 201 else None
                self.outcomes.append(
                    Outcome(started, time.monotonic() - started, write, status, recipe_id)
                )

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.started and o.started + o.seconds <= end]


async def _stored_recipe_ids(url: str) -> set[int]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        return {row["id"] for row in await conn.fetch("SELECT id FROM recipe")}
    finally:
        await conn.close()


def _wait_ready(base_url: str) -> float:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if httpx2.get(f"{base_url}/readyz", timeout=10).status_code == 200:
            return time.monotonic()
        time.sleep(0.1)
    pytest.fail("the service did not become ready again after the database came back")


@needs_postgres
def test_database_outage_fails_fast_and_recovers_keeping_acknowledged_writes(
    cluster: PrivateCluster,
) -> None:
    url = new_database_url(cluster.server_url)
    create_database(url)
    env = {"DB_POOL_TIMEOUT": str(POOL_TIMEOUT_SECONDS)}
    with run_sh(url, **env) as service:
        base_url, proc = service.base_url, service.proc
        headers = superuser_headers(base_url)
        with Load(base_url, headers) as load:
            time.sleep(2)
            stopping = time.monotonic()
            cluster.stop()
            down = time.monotonic()
            time.sleep(3)
            readyz_down = httpx2.get(f"{base_url}/readyz", timeout=10)
            starting = time.monotonic()
            cluster.start()
            recovered = _wait_ready(base_url)
            time.sleep(2)
        end = time.monotonic()
        # The same process served throughout: recovery needed no restart.
        assert proc.poll() is None
        errors = [line for line in service.output().splitlines() if "rror" in line]

    outcomes = load.outcomes
    statuses = Counter(o.status for o in outcomes)
    assert set(statuses) <= {200, 201, 503}, (statuses, errors[-20:])
    slowest = max(o.seconds for o in outcomes)
    assert slowest < POOL_TIMEOUT_SECONDS + SLACK_SECONDS
    assert {o.status for o in load.between(0, stopping)} <= {200, 201}
    while_down = load.between(down, starting)
    assert while_down
    assert {o.status for o in while_down} == {503}
    assert readyz_down.status_code == 503
    after = load.between(recovered, end)
    assert any(o.status == 201 for o in after)
    assert {o.status for o in after} <= {200, 201}
    acknowledged = {o.recipe_id for o in outcomes if o.recipe_id is not None}
    assert acknowledged <= asyncio.run(_stored_recipe_ids(url))


HASHERS = 6
HASH_SECONDS = 1.0
TIGHT_POOL_TIMEOUT_SECONDS = 2.0


async def _burst_of_password_checks(url: str) -> Counter[int]:
    # One connection, and a bounded wait for it: were it kept through the (slowed) hashing,
    # requests would queue behind each other's hashes and most would time out with 503.
    engine = create_async_engine(
        url, pool_size=1, max_overflow=0, pool_timeout=TIGHT_POOL_TIMEOUT_SECONDS
    )
    sessions = make_sessionmaker(engine)
    async with sessions() as db, db.begin():
        user = await create_random_user(db)
        email = user.email
    override_sessions(app, sessions)
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            login = {"username": email, "password": DEFAULT_PASSWORD}
            logins = [http.post("/api/v1/auth/login", data=login) for _ in range(HASHERS)]
            signups = [
                http.post(
                    SIGNUP,
                    json={
                        "email": random_email(),
                        "password": "a-long-password",
                        "first_name": "H",
                        "surname": "S",
                    },
                )
                for _ in range(HASHERS)
            ]
            responses = await asyncio.gather(*logins, *signups)
    finally:
        app.dependency_overrides.clear()
        await engine.dispose()
    return Counter(r.status_code for r in responses)


def test_password_hashing_holds_no_database_connection(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slower hash makes the difference plain however busy the machine is.
    def slowed(hashing: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        async def slow(*args: P.args, **kwargs: P.kwargs) -> T:
            await asyncio.sleep(HASH_SECONDS)
            return await hashing(*args, **kwargs)

        return slow

    monkeypatch.setattr(user_service, "get_password_hash", slowed(security.get_password_hash))
    monkeypatch.setattr(user_service, "verify_password", slowed(security.verify_password))
    migrate(fresh_database_url)
    statuses = asyncio.run(_burst_of_password_checks(fresh_database_url))
    assert statuses == Counter({200: HASHERS, 201: HASHERS})
