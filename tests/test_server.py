"""The served process (run.sh) bounds slow and huge requests, with nothing in front of it."""

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from app.server import BoundedHttpToolsProtocol
from tests.conftest import TEST_DATABASE_URL
from tests.utils.db import create_database, drop_database, new_database_url
from tests.utils.server import Service, run_sh
from tests.utils.utils import free_port

TIMEOUT_SECONDS = 2.0
# What a cut-off may take beyond the timeout: the timer's turn on a busy loop and the answer.
SLACK_SECONDS = 1.5
HEAD = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    server = TEST_DATABASE_URL if TEST_DATABASE_URL.startswith("postgresql") else None
    url = new_database_url(server)
    create_database(url)
    try:
        with run_sh(url, REQUEST_RECEIVE_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS)) as running:
            yield running
    finally:
        drop_database(url)


def _connect(service: Service) -> socket.socket:
    host, port = service.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _trickle(service: Service, start: bytes, drip: bytes) -> tuple[float, bytes]:
    """Send `start`, then one byte of `drip` a second until the server answers or closes;
    the seconds that took and what it answered."""
    with _connect(service) as sock:
        began = time.monotonic()
        sock.sendall(start)
        for byte in drip:
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                return time.monotonic() - began, _read_all(sock)
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - began, b""
        pytest.fail("the server kept reading a trickle for the whole drip")


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass  # a reset after the answer: it was read already, or there was none
    return data


def _send_head(service: Service, head: bytes) -> bytes:
    """Send a whole request head at once; what the server answered before closing."""
    with _connect(service) as sock:
        # Closed while we were still sending: the answer may be waiting all the same.
        with contextlib.suppress(OSError):
            sock.sendall(head)
        return _read_all(sock)


@pytest.mark.parametrize(
    ("start", "drip"),
    [
        (HEAD, b"X-Slow: " + b"a" * 60),  # a head that never ends
        (b"", HEAD),  # the request line itself, a byte a second
        (
            b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 60\r\n\r\n",
            b'{"email": "slow@example.com", "password": "a-long-password"}',
        ),  # a body
    ],
)
def test_trickled_request_is_cut_off_within_the_timeout(
    service: Service, start: bytes, drip: bytes
) -> None:
    took, answer = _trickle(service, start, drip)
    assert took < TIMEOUT_SECONDS + SLACK_SECONDS
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize(
    "head",
    [
        HEAD + b"X-Big: " + b"a" * 2_000_000 + b"\r\n\r\n",  # one 2 MB header
        HEAD + b"".join(b"X-H%d: v\r\n" % n for n in range(10_000)) + b"\r\n",
        HEAD + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 300) for n in range(120)) + b"\r\n",
        b"GET /healthz?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
)
def test_huge_or_numerous_headers_are_431(service: Service, head: bytes) -> None:
    answer = _send_head(service, head)
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:80]
    assert b" 200 " not in answer


def test_ordinary_requests_on_one_connection_are_served(service: Service) -> None:
    # Pipelined, with a sizeable but legal head: the bounds reset for each request.
    ordinary = HEAD + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 200) for n in range(60)) + b"\r\n"
    with _connect(service) as sock:
        sock.sendall(ordinary + ordinary)
        answer = b""
        while answer.count(b"HTTP/1.1 200 ") < 2:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        # Idle past the receive timeout between requests is the keep-alive's business (5 s),
        # not a 408: the next request on the connection is served.
        time.sleep(TIMEOUT_SECONDS + 0.5)
        sock.sendall(HEAD + b"\r\n")
        # What follows may begin with the rest of the second answer's body.
        following = b""
        while b"HTTP/1.1 " not in following:
            chunk = sock.recv(65536)
            assert chunk, following
            following += chunk
    assert b"HTTP/1.1 200 " in following, following[:200]
    assert b" 408 " not in following


# The same protocol in this process, with tight bounds: fast, and seen by coverage.


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
async def bounded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """A uvicorn server with the bounded protocol on a free port; yields the port."""
    monkeypatch.setattr(BoundedHttpToolsProtocol, "receive_timeout", 0.5)
    monkeypatch.setattr(BoundedHttpToolsProtocol, "max_head_bytes", 2048)
    monkeypatch.setattr(BoundedHttpToolsProtocol, "max_headers", 20)
    port = free_port()
    config = uvicorn.Config(
        _hello,
        host="127.0.0.1",
        port=port,
        http=BoundedHttpToolsProtocol,
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _exchange(port: int, *parts: bytes, pause: float = 0.0) -> tuple[float, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        for part in parts:
            writer.write(part)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await asyncio.sleep(pause)
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        answer = b""
    finally:
        writer.close()
    return loop.time() - began, answer


async def test_protocol_answers_408_to_a_head_that_stalls(bounded: int) -> None:
    took, answer = await _exchange(bounded, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < took < 2


async def test_protocol_closes_a_body_that_stalls_after_the_head(bounded: int) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    took, answer = await _exchange(bounded, head, b"12345")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert took < 2


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: v\r\n" % n for n in range(30))
        + b"\r\n",
        b"GET /" + b"q" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_protocol_answers_431_to_a_head_over_its_bounds(bounded: int, head: bytes) -> None:
    _, answer = await _exchange(bounded, head)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_protocol_endless_header_in_pieces_is_431(bounded: int) -> None:
    # The last piece takes the head past 2048 bytes; no more are sent after the answer.
    pieces = [b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "] + [b"a" * 1000] * 3
    _, answer = await _exchange(bounded, *pieces, pause=0.02)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_protocol_serves_requests_that_arrive_in_time(bounded: int) -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # Keep-alive: idle past the timeout between requests is not a slow request.
    _, answer = await _exchange(bounded, request, b"", last, pause=0.7)
    assert answer.count(b"HTTP/1.1 200 ") == 2
