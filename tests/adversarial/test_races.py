"""Account security races (issue 15): revocation racing token rotation, and two superusers
demoting each other, driven concurrently through the app on a database of their own. On
PostgreSQL the requests run on separate pooled connections; SQLite serializes writers."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx2
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app import crud
from app.core.security import SCOPES, get_password_hash, verify_password
from app.db.session import make_engine, make_sessionmaker
from app.main import app
from app.models import RefreshToken, User
from app.services import auth
from app.services import user as users
from app.services.errors import IncorrectLogin, IncorrectPassword
from tests.utils.db import migrate
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import auth_headers, override_sessions

API = "/api/v1"
ROUNDS = 15
NEW_PASSWORD = "a-brand-new-password"


@asynccontextmanager
async def _serving(
    url: str,
) -> AsyncIterator[tuple[httpx2.AsyncClient, async_sessionmaker[AsyncSession]]]:
    """The app on its own engine (a pool large enough that racers never wait for a connection)."""
    engine = (
        make_engine(url)
        if url.startswith("sqlite")
        else create_async_engine(url, pool_size=10, max_overflow=0)
    )
    sessions = make_sessionmaker(engine)
    override_sessions(app, sessions)
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http, sessions
    finally:
        app.dependency_overrides.clear()
        await engine.dispose()


async def _live_refresh_tokens(sessions: async_sessionmaker[AsyncSession], user_id: int) -> int:
    async with sessions() as db:
        query = select(func.count()).where(
            RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
        )
        return int(await db.scalar(query) or 0)


Revocation = Callable[[httpx2.AsyncClient, dict[str, str]], Awaitable[httpx2.Response]]


async def _logout(http: httpx2.AsyncClient, grant: dict[str, str]) -> httpx2.Response:
    return await http.post(f"{API}/auth/logout", json={"refresh_token": grant["refresh_token"]})


async def _logout_all(http: httpx2.AsyncClient, grant: dict[str, str]) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    return await http.post(f"{API}/auth/logout-all", headers=headers)


async def _race_revocation(url: str, revoke: Revocation, rounds: int) -> list[str]:
    """Each round: log in, then refresh and revoke at once. Afterwards no refresh token of the
    user may be live, and no access token from the refresh may work. Returns the failures."""
    failures: list[str] = []
    async with _serving(url) as (http, sessions):
        async with sessions() as db, db.begin():
            user = await create_random_user(db)
            email, user_id = user.email, user.id
        for n in range(rounds):
            login = await http.post(
                f"{API}/auth/login", data={"username": email, "password": DEFAULT_PASSWORD}
            )
            grant = login.json()
            refreshed, revoked = await asyncio.gather(
                http.post(f"{API}/auth/refresh", json={"refresh_token": grant["refresh_token"]}),
                revoke(http, grant),
            )
            assert revoked.status_code == 204, revoked.text
            assert refreshed.status_code in {200, 401}, refreshed.text
            if live := await _live_refresh_tokens(sessions, user_id):
                failures.append(f"round {n}: {live} live refresh token(s)")
            if refreshed.status_code == 200:
                again = await http.post(
                    f"{API}/auth/refresh",
                    json={"refresh_token": refreshed.json()["refresh_token"]},
                )
                if again.status_code != 401:
                    failures.append(f"round {n}: the rotated token refreshed again")
    return failures


def test_logout_racing_refresh_leaves_no_live_token(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    assert asyncio.run(_race_revocation(fresh_database_url, _logout, ROUNDS)) == []


def test_logout_all_racing_refresh_leaves_no_live_token(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    assert asyncio.run(_race_revocation(fresh_database_url, _logout_all, ROUNDS)) == []


async def _refresh_until(
    http: httpx2.AsyncClient, grant: dict[str, str], stop: asyncio.Event
) -> dict[str, str]:
    """The attacker: refresh a stolen login in a loop; the last grant it got."""
    while not stop.is_set():
        answer = await http.post(
            f"{API}/auth/refresh", json={"refresh_token": grant["refresh_token"]}
        )
        if answer.status_code != 200:
            break
        grant = answer.json()
    return grant


async def _change_password(
    http: httpx2.AsyncClient, access_token: str, old: str, new: str, done: asyncio.Event
) -> httpx2.Response:
    try:
        return await http.post(
            f"{API}/auth/password",
            json={"current_password": old, "new_password": new},
            headers={"Authorization": f"Bearer {access_token}"},
        )
    finally:
        done.set()


async def _race_password_change(url: str, rounds: int) -> list[str]:
    """An attacker refreshing in a loop while the owner changes the password: once the change
    is answered, neither the attacker's refresh tokens nor access tokens may work."""
    failures: list[str] = []
    async with _serving(url) as (http, sessions):
        async with sessions() as db, db.begin():
            user = await create_random_user(db)
            email, user_id = user.email, user.id
        old, new = DEFAULT_PASSWORD, NEW_PASSWORD
        for n in range(rounds):
            form = {"username": email, "password": old}
            stolen = (await http.post(f"{API}/auth/login", data=form)).json()
            owner = (await http.post(f"{API}/auth/login", data=form)).json()
            done = asyncio.Event()
            last, response = await asyncio.gather(
                _refresh_until(http, stolen, done),
                _change_password(http, owner["access_token"], old, new, done),
            )
            assert response.status_code == 204, response.text
            old, new = new, old
            if live := await _live_refresh_tokens(sessions, user_id):
                failures.append(f"round {n}: {live} live refresh token(s)")
            me = await http.get(
                f"{API}/users/me", headers={"Authorization": f"Bearer {last['access_token']}"}
            )
            if me.status_code != 401:
                failures.append(f"round {n}: the attacker's access token still works")
    return failures


def test_password_change_racing_refreshes_leaves_no_live_token(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    assert asyncio.run(_race_password_change(fresh_database_url, rounds=6)) == []


async def _race_demotions(url: str, rounds: int) -> Counter[int]:
    """Two superusers demote each other at once, round after round; after each round at least
    one active superuser remains."""
    statuses: Counter[int] = Counter()
    async with _serving(url) as (http, sessions):
        async with sessions() as db, db.begin():
            first = await create_random_user(db, is_superuser=True)
            second = await create_random_user(db, is_superuser=True)
            ids = (first.id, second.id)
        for n in range(rounds):
            answers = await asyncio.gather(
                *(
                    http.patch(
                        f"{API}/users/{target}",
                        json={"is_superuser": False},
                        headers=auth_headers(actor, scopes=SCOPES),
                    )
                    for actor, target in (ids, ids[::-1])
                )
            )
            statuses.update(a.status_code for a in answers)
            async with sessions() as db, db.begin():
                admins = await db.scalar(
                    select(func.count()).where(
                        User.is_superuser.is_(True), User.is_active.is_(True)
                    )
                )
                assert admins == 1, f"round {n}: {admins} active superusers left"
                await db.execute(update(User).where(User.id.in_(ids)).values(is_superuser=True))
    return statuses


def test_superusers_demoting_each_other_at_once_leave_an_admin(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    statuses = asyncio.run(_race_demotions(fresh_database_url, ROUNDS))
    # One of each pair wins; the other is refused: 409 if it got past authorization before the
    # winner committed (PostgreSQL), 403 if it was no longer a superuser by then.
    assert statuses[200] == ROUNDS
    assert statuses[409] + statuses[403] == ROUNDS


Act = Callable[[AsyncSession, User], Awaitable[object]]
Interloper = Callable[[AsyncSession, int], Awaitable[None]]


async def _new_password(db: AsyncSession, user_id: int) -> None:
    await db.execute(
        update(User).where(User.id == user_id).values(hashed_password=await get_password_hash("x"))
    )


async def _logout_everywhere(db: AsyncSession, user_id: int) -> None:
    user = await crud.user.lock(db, user_id)
    assert user is not None
    await users.end_sessions(db, user)


async def _checked_then_changed(
    url: str, monkeypatch: pytest.MonkeyPatch, act: Act, interlope: Interloper
) -> tuple[Exception | None, User | None, int]:
    """Run `act` with the right password, while another session commits `interlope` (a
    password change, a logout-all) between the password check and the act. Returns what the
    act raised, the user afterwards and how many refresh tokens of theirs are live."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)

    async def verify_then_interlope(password: str, hashed: str | None) -> tuple[bool, str | None]:
        verdict = await verify_password(password, hashed)
        async with sessions() as other, other.begin():
            await interlope(other, user_id)
        return verdict

    try:
        async with sessions() as db, db.begin():
            user_id = (await create_random_user(db)).id
        monkeypatch.setattr(users, "verify_password", verify_then_interlope)
        raised: Exception | None = None
        async with sessions() as db:
            user = await db.get(User, user_id)
            assert user is not None
            try:
                await act(db, user)
                await db.commit()
            except (IncorrectLogin, IncorrectPassword) as exc:
                raised = exc
                await db.rollback()
        monkeypatch.undo()
        async with sessions() as db:
            after = await db.get(User, user_id)
        return raised, after, await _live_refresh_tokens(sessions, user_id)
    finally:
        await engine.dispose()


async def _login(db: AsyncSession, user: User) -> object:
    return await auth.login(
        db, email=user.email, password=DEFAULT_PASSWORD, scopes=(), throttle=_NoThrottle()
    )


async def _change_own_password(db: AsyncSession, user: User) -> None:
    await users.change_password(
        db, user, current=DEFAULT_PASSWORD, new=NEW_PASSWORD, throttle=_NoThrottle()
    )


async def _change_own_email(db: AsyncSession, user: User) -> object:
    data = {"email": "moved@example.com", "current_password": DEFAULT_PASSWORD}
    return await users.update_me(db, user, data, _NoThrottle())


async def _delete_own_account(db: AsyncSession, user: User) -> None:
    await users.remove_me(db, user, password=DEFAULT_PASSWORD, throttle=_NoThrottle())


class _NoThrottle:
    async def attempt(self, email: str) -> None:
        pass

    async def succeeded(self, email: str) -> None:
        pass


@pytest.mark.parametrize("interlope", [_new_password, _logout_everywhere])
def test_login_checked_before_a_password_change_opens_no_session(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, interlope: Interloper
) -> None:
    migrate(fresh_database_url)
    raised, _, live = asyncio.run(
        _checked_then_changed(fresh_database_url, monkeypatch, _login, interlope)
    )
    assert isinstance(raised, IncorrectLogin)
    assert live == 0


@pytest.mark.parametrize("interlope", [_new_password, _logout_everywhere])
@pytest.mark.parametrize("act", [_change_own_password, _change_own_email, _delete_own_account])
def test_own_account_change_checked_before_a_password_change_is_refused(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, act: Act, interlope: Interloper
) -> None:
    migrate(fresh_database_url)
    raised, after, _ = asyncio.run(
        _checked_then_changed(fresh_database_url, monkeypatch, act, interlope)
    )
    assert isinstance(raised, IncorrectPassword)
    assert after is not None  # not deleted
    assert after.email != "moved@example.com"
    assert not asyncio.run(verify_password(NEW_PASSWORD, after.hashed_password))[0]
