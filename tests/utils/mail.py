"""A recording stand-in for the email sender of app/core/mail.py, so the account tests need no
email slice: it keeps every message it is given."""

from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest

from app.core import mail


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def __call__(self, *, to: str, subject: str, text: str) -> bool:
        message = EmailMessage()
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        self.messages.append(message)
        return True


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Mailbox:
    """The app's sender for one test: what the service mails lands in `mailbox.messages`."""
    box = Mailbox()
    monkeypatch.setattr(mail, "sender", box)
    return box
