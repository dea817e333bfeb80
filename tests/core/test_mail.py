"""The emails the service sends, and the sender hook they go through."""

import pytest

from app.core import mail


def test_password_reset_text_names_the_token_and_its_lifetime() -> None:
    text = mail.password_reset_text(token="tok-abc", expire_minutes=30)
    assert "tok-abc" in text
    assert "30 minutes" in text
    assert "/api/v1/auth/password-reset" in text


def test_email_changed_text_names_no_address() -> None:
    text = mail.email_changed_text()
    assert "changed" in text
    assert "@" not in text


async def test_send_without_a_sender_logs_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mail, "sender", None)
    assert not mail.available()
    assert await mail.send(to="cook@example.com", subject="Hello", text="secret") is False
    assert "('Hello') was not sent" in caplog.text
    assert "secret" not in caplog.text
