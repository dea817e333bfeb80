"""The emails the service sends, and the one hook they are sent through. No HTTP here.

The optional email slice (app/core/email.py) installs the sender; shared code names no slice.
Without a sender nothing can be mailed, and callers say so (password recovery answers 503).
"""

import logging
from typing import Protocol

from app.core.config import Settings, settings

logger = logging.getLogger(__name__)


class Sender(Protocol):
    async def __call__(self, *, to: str, subject: str, text: str) -> bool: ...


sender: Sender | None = None


def available() -> bool:
    return sender is not None


async def send(*, to: str, subject: str, text: str) -> bool:
    """Send a plain-text email; True once it was accepted for delivery."""
    if sender is None:
        logger.warning("no email sender is installed; an email (%r) was not sent", subject)
        return False
    return await sender(to=to, subject=subject, text=text)


def password_reset_text(*, token: str, expire_minutes: int, config: Settings = settings) -> str:
    return (
        f"Someone asked to reset the password of your {config.PROJECT_NAME} account.\n\n"
        f"Your reset token, valid once for {expire_minutes} minutes:\n\n"
        f"    {token}\n\n"
        f"Send it with a new password to POST {config.API_V1_STR}/auth/password-reset.\n"
        "If you did not ask for this, ignore this email; your password stays as it is.\n"
    )


def email_changed_text(*, config: Settings = settings) -> str:
    """Sent to the old address: if the owner did not make the change, the account was taken."""
    return (
        f"The email address of your {config.PROJECT_NAME} account was just changed, and this "
        "address no longer signs in to it.\n\n"
        "If you did not make this change, someone else controls your account: contact the "
        "service's administrators.\n"
    )
