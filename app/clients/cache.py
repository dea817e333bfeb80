"""Single-flight calls: concurrent misses for one key share one upstream fetch."""

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Concurrent calls for one key share one run: the first starts it, the others await it."""

    def __init__(self) -> None:
        self._runs: dict[str, asyncio.Task[T]] = {}

    async def do(self, key: str, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        run = self._runs.get(key)
        if run is None:
            run = asyncio.create_task(call())
            self._runs[key] = run
            run.add_done_callback(partial(self._forget, key))
        # A caller that goes away (a client disconnect) must not cancel the run others await.
        return await asyncio.shield(run)

    def _forget(self, key: str, run: "asyncio.Task[T]") -> None:
        self._runs.pop(key, None)
        if not run.cancelled():
            # Mark the outcome as seen, so a failure nobody awaited is not reported as lost.
            run.exception()

    async def cancel(self) -> None:
        """Stop every run (at shutdown) and wait for them to finish."""
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
