"""Outgoing email over async SMTP, or to the log in local mode. No HTTP here.

An optional slice: app/main.py lists it, and its install() makes it the sender of
app/core/mail.py. Without it, password recovery answers 503 and notices are not sent.
"""

import logging
from email.message import EmailMessage
from typing import Any

from app.core import mail
from app.core.config import Settings, settings

logger = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 20
IMPLICIT_TLS_PORT = 465


def build_message(*, to: str, subject: str, text: str, config: Settings = settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.EMAILS_FROM
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    return message


async def send_email(*, to: str, subject: str, text: str, config: Settings = settings) -> bool:
    """Send a plain-text email; True once the SMTP server accepted it.

    With no SMTP_HOST, local mode writes the whole email to the log so a developer can follow
    links in it; other environments log only that nothing was sent, since the body may hold a
    secret such as a reset token.
    """
    message = build_message(to=to, subject=subject, text=text, config=config)
    if config.SMTP_HOST is None:
        if config.ENVIRONMENT == "local":
            logger.info("SMTP_HOST is not set; the email is not sent:\n%s", message.as_string())
        else:
            logger.warning("SMTP_HOST is not set; an email (%r) was not sent", subject)
        return False
    # Imported on first use: only a configured SMTP server needs the client.
    import aiosmtplib

    implicit_tls = config.SMTP_TLS and config.SMTP_PORT == IMPLICIT_TLS_PORT
    await aiosmtplib.send(
        message,
        hostname=config.SMTP_HOST,
        port=config.SMTP_PORT,
        username=config.SMTP_USER,
        password=config.SMTP_PASSWORD.get_secret_value() if config.SMTP_PASSWORD else None,
        use_tls=implicit_tls,
        start_tls=config.SMTP_TLS and not implicit_tls,
        timeout=SMTP_TIMEOUT_SECONDS,
    )
    return True


def install(_: Any) -> None:
    """Makes SMTP the service's way to send email (the app is not needed: one sender per
    process)."""
    mail.sender = send_email
