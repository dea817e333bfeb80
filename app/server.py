"""The HTTP protocol run.sh serves with: uvicorn's, with bounds on how a request may arrive.

With nothing in front (the documented `docker run -p 8000:8000`), uvicorn would read any number
and size of headers, for as long as they take to trickle in. Here a request's head is refused
with 431 past MAX_REQUEST_HEADER_BYTES or MAX_REQUEST_HEADERS, and a request that has not
fully arrived (head and body) REQUEST_RECEIVE_TIMEOUT_SECONDS after its first byte (or after
the connection opened) is answered 408 and its connection closed.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.core.config import settings

REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the refusal itself is already decided."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size bound on the head and a time bound on arrival."""

    max_head_bytes = settings.MAX_REQUEST_HEADER_BYTES
    max_headers = settings.MAX_REQUEST_HEADERS
    receive_timeout = settings.REQUEST_RECEIVE_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        # Bytes received while the head is incomplete: catches one endless header, which the
        # parser buffers whole before any callback sees it.
        self._raw_head_bytes = 0
        # The head as the parser hands it over: catches a head that ends inside a large read.
        self._head_bytes = 0
        self._headers = 0
        self._refusal: int | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is bounded too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._arm()
        if self._in_head:
            self._raw_head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._raw_head_bytes > self.max_head_bytes:
            self._refuse(431)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any parser error 400; one raised by a bound below gets its own status.
        if self._refusal is not None:
            self._refuse(self._refusal)
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        self._arm()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url), headers=0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value), headers=1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # Arrived in time: what the app does with it has bounds of its own.
        self._disarm()
        self._in_head = True
        self._raw_head_bytes = self._head_bytes = self._headers = 0
        super().on_message_complete()

    def _count_head(self, size: int, *, headers: int) -> None:
        self._head_bytes += size
        self._headers += headers
        if self._head_bytes > self.max_head_bytes or self._headers > self.max_headers:
            self._refusal = 431
            raise _Refused

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.receive_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        cycle: RequestResponseCycle | None = self.cycle  # None before the first head is read
        if cycle is not None and not cycle.response_complete and cycle.response_started:
            self.transport.close()  # the app has answered; only the slow body remains
            return
        self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer with `status` and close, unless the connection is already going."""
        if self.transport.is_closing():
            return
        self._disarm()
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app may be reading this request's body: it now sees a disconnect, and
            # whatever it sends is dropped instead of following this answer.
            cycle.disconnected = True
            cycle.message_event.set()
        reason = REASONS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(reason), reason)
        )
        self.transport.close()
