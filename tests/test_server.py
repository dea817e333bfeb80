"""The served process (run.sh) bounds slow and huge requests, with nothing in front of it."""

import contextlib
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import TEST_DATABASE_URL
from tests.utils.db import create_database, drop_database, new_database_url
from tests.utils.server import Service, run_sh

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
        following = sock.recv(65536)
    assert following.startswith(b"HTTP/1.1 200 "), following[:80]
