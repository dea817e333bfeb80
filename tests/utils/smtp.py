"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and settings for it."""

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from app.core.config import Settings


@dataclass
class SMTPServer:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def settings(self, base: Settings, **overrides: Any) -> Settings:
        """A copy of `base` that sends through this server, without TLS."""
        values = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_TLS": False}
        return base.model_copy(update=values | overrides)


class _Recorder:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    # aiosmtpd looks the hook up by this name.
    async def handle_DATA(self, _: SMTP, __: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.server.envelopes.append(envelope)
        self.server.messages.append(message)
        return "250 Message accepted for delivery"


@asynccontextmanager
async def smtp_server() -> AsyncIterator[SMTPServer]:
    """Serve SMTP on 127.0.0.1 at a free port, on the running event loop, with AUTH PLAIN/LOGIN
    accepted for any credentials (which are recorded)."""
    server = SMTPServer(port=0)

    def authenticate(_: SMTP, __: Session, ___: Envelope, ____: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        server.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=True)

    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: SMTP(
            _Recorder(server),
            hostname="localhost",
            authenticator=authenticate,
            auth_require_tls=False,
            loop=loop,
        ),
        "127.0.0.1",
        0,
    )
    server.port = int(listener.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()
