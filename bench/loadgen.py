"""An open-loop HTTP/1.1 load generator: requests leave at a fixed rate, whatever the answers do.

Latency runs from each request's scheduled time, so a stalled server is charged for the queue it
builds (no coordinated omission). Keep-alive connections over asyncio streams; nothing else.
"""

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body
MakeRequest = Callable[[int], Request]


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def non_2xx(self) -> int:
        return self.errors + sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def percentile(self, q: float) -> float:
        """Milliseconds at quantile q (0..1)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length or be chunked."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, req: Request) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        method, path, headers, body = req
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PATCH", "PUT"):
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        try:
            return await self._response(self.reader)
        except BaseException:
            self.close()
            raise

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        else:
            body = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def fetch(host: str, port: int, req: Request) -> tuple[int, bytes]:
    """One request on a fresh connection (parity checks, warm-up, logins)."""
    conn = Connection(host, port)
    try:
        return await conn.request(req)
    finally:
        conn.close()


async def open_loop(
    host: str,
    port: int,
    make: MakeRequest,
    *,
    rate: float,
    seconds: float,
    connections: int = 32,
) -> Result:
    """Send make(i) at `rate` per second for `seconds`; up to `connections` in flight."""
    result = Result()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def worker() -> None:
        conn = Connection(host, port)
        while (item := await queue.get()) is not None:
            i, scheduled = item
            try:
                status, _ = await conn.request(make(i))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                continue
            result.latencies.append(time.perf_counter() - scheduled)
            result.statuses[status] = result.statuses.get(status, 0) + 1
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    result.elapsed = time.perf_counter() - start
    return result


async def closed_loop(
    host: str, port: int, make: MakeRequest, *, clients: int, stop: asyncio.Event
) -> Result:
    """`clients` connections each sending make(i) back to back until `stop` is set."""
    result = Result()

    async def client(n: int) -> None:
        conn = Connection(host, port)
        i = n
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status, _ = await conn.request(make(i))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                continue
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            i += clients
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    result.elapsed = time.perf_counter() - start
    return result


def median(values: list[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")
