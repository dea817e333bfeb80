"""A clock that tests move by hand, so limits trip and recover without sleeping."""

import types

import pytest
from limits.aio.storage import memory
from limits.aio.storage.redis import redispy

from app.core import rate_limit


class FakeClock:
    def __init__(self, start: float = 1_000_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeClock":
        """Be the wall clock of the limiter and of `limits`' memory and Redis storages."""
        fake_time = types.SimpleNamespace(time=self)
        for module in (memory, redispy, rate_limit):
            monkeypatch.setattr(module, "time", fake_time)
        return self
