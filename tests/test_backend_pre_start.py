"""Waiting for the database before start-up."""

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import backend_pre_start
from app.backend_pre_start import wait_for_db
from app.db.session import make_engine
from tests.api.test_health import unreachable_url


async def test_wait_for_db_succeeds_when_database_answers(engine: AsyncEngine) -> None:
    assert await wait_for_db(engine, max_tries=1, wait_seconds=0) is True


async def test_wait_for_db_gives_up_after_bounded_tries(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = make_engine(unreachable_url(database_url, tmp_path))
    try:
        assert await wait_for_db(broken, max_tries=3, wait_seconds=0) is False
    finally:
        await broken.dispose()
    attempts = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert len(attempts) == 3
    assert "attempt 3/3" in attempts[-1]


async def test_main_exit_code_follows_the_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_pre_start, "engine", make_engine(database_url))
    assert await backend_pre_start.main() == 0
    monkeypatch.setattr(
        backend_pre_start, "engine", make_engine(unreachable_url(database_url, tmp_path))
    )
    monkeypatch.setattr(backend_pre_start, "MAX_TRIES", 1)
    monkeypatch.setattr(backend_pre_start, "WAIT_SECONDS", 0)
    assert await backend_pre_start.main() == 1
