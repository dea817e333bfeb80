"""Outgoing email (the optional email slice): a real SMTP exchange on loopback, the log when
no server is set, and password recovery sent through it."""

from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import httpx2
import pytest
from pydantic import SecretStr

from app.api.api_v1.endpoints.auth import RECOVERY_MESSAGE
from app.core import mail
from app.core.config import Settings, settings
from app.core.email import send_email
from app.models import User
from tests.utils.smtp import SMTPServer, smtp_server
from tests.utils.utils import free_port


@pytest.fixture
async def smtp() -> AsyncIterator[SMTPServer]:
    async with smtp_server() as server:
        yield server


async def test_send_email_delivers_over_smtp(smtp: SMTPServer) -> None:
    config = smtp.settings(settings, EMAILS_FROM="Recipes <noreply@recipes.example>")
    sent = await send_email(to="cook@example.com", subject="Hello", text="Body text", config=config)
    assert sent is True
    [envelope] = smtp.envelopes
    assert envelope.mail_from == "noreply@recipes.example"
    assert envelope.rcpt_tos == ["cook@example.com"]
    [message] = smtp.messages
    assert message["Subject"] == "Hello"
    assert message["To"] == "cook@example.com"
    assert message.get_content().strip() == "Body text"
    assert smtp.logins == []


async def test_send_email_logs_in_with_smtp_credentials(smtp: SMTPServer) -> None:
    config = smtp.settings(settings, SMTP_USER="mailer", SMTP_PASSWORD=SecretStr("mail-secret"))
    assert await send_email(to="a@example.com", subject="S", text="T", config=config)
    assert smtp.logins == [("mailer", "mail-secret")]
    assert len(smtp.messages) == 1


async def test_send_email_unreachable_server_raises(smtp: SMTPServer) -> None:
    config = smtp.settings(settings, SMTP_PORT=free_port())
    with pytest.raises(aiosmtplib.SMTPException):
        await send_email(to="a@example.com", subject="S", text="T", config=config)


async def test_send_email_without_smtp_in_local_mode_logs_the_email(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = settings.model_copy(update={"ENVIRONMENT": "local", "SMTP_HOST": None})
    with caplog.at_level("INFO", logger="app.core.email"):
        sent = await send_email(to="a@example.com", subject="Subj", text="token-123", config=config)
    assert sent is False
    assert "token-123" in caplog.text
    assert "a@example.com" in caplog.text


async def test_send_email_without_smtp_elsewhere_logs_no_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = settings.model_copy(update={"ENVIRONMENT": "production", "SMTP_HOST": None})
    with caplog.at_level("INFO", logger="app.core.email"):
        sent = await send_email(to="a@example.com", subject="Subj", text="token-123", config=config)
    assert sent is False
    assert "not sent" in caplog.text
    assert "token-123" not in caplog.text
    assert "a@example.com" not in caplog.text


@pytest.mark.parametrize(
    ("tls", "port", "use_tls", "start_tls"),
    [(True, 587, False, True), (True, 465, True, False), (False, 25, False, False)],
)
async def test_send_email_tls_mode_follows_settings(
    monkeypatch: pytest.MonkeyPatch, tls: bool, port: int, use_tls: bool, start_tls: bool
) -> None:
    calls: list[dict[str, Any]] = []

    async def fake_send(_: object, **kwargs: Any) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(aiosmtplib, "send", fake_send)
    config = Settings(_env_file=None, SMTP_HOST="smtp.invalid", SMTP_PORT=port, SMTP_TLS=tls)
    await send_email(to="a@example.com", subject="S", text="T", config=config)
    assert (calls[0]["use_tls"], calls[0]["start_tls"]) == (use_tls, start_tls)


RECOVERY = "/api/v1/auth/password-recovery"


def test_email_slice_is_the_apps_sender() -> None:
    assert mail.sender is send_email


async def test_password_recovery_survives_a_dead_smtp_server(
    client: httpx2.AsyncClient,
    normal_user: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setattr(settings, "SMTP_PORT", free_port())
    monkeypatch.setattr(settings, "SMTP_TLS", False)
    response = await client.post(RECOVERY, json={"email": normal_user.email})
    assert response.status_code == 202
    assert response.json() == {"message": RECOVERY_MESSAGE}
    assert "password reset email failed" in caplog.text


async def test_password_recovery_without_smtp_logs_no_token_outside_local(
    client: httpx2.AsyncClient, normal_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        response = await client.post(RECOVERY, json={"email": normal_user.email})
    assert response.status_code == 202
    assert "was not sent" in caplog.text
    assert "Your reset token" not in caplog.text
