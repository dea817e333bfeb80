"""Structured logging: JSON lines or console lines, a request id on every line, secrets redacted."""

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
# uvicorn's color_message is its message again, with terminal colour codes: never logged.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}

_REDACTED = "[REDACTED]"
# Defence in depth: nothing should log these, but if a message or an extra carries one, mask it.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-_.~+/]+=*"), f"Bearer {_REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), _REDACTED),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|authorization)(\"?\s*[=:]\s*\"?)[^\s\"&,;]+"
        ),
        rf"\1\2{_REDACTED}",
    ),
)
_SECRET_KEYS = re.compile(r"(?i)password|secret|token|authorization|cookie")


# Characters that end a line or drive a terminal: C0 and C1 controls, DEL, U+2028 and U+2029.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What json.dumps leaves raw inside strings that a log viewer may still break lines or run on.
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def _escape(text: str, keep: str = "") -> str:
    """Client text (a path with %0a or %1b) cannot forge a console line or colour a terminal."""
    return _UNSAFE.sub(
        lambda m: m.group() if m.group() in keep else m.group().encode("unicode_escape").decode(),
        text,
    )


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {}
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        if _SECRET_KEYS.search(key):
            value = _REDACTED
        elif isinstance(value, str):
            value = redact(value)
        extras[key] = value
    return extras


class RequestIdFilter(logging.Filter):
    """Stamp the current request's id on every record, whichever logger wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        text = json.dumps(line, default=str, ensure_ascii=False)
        # Only inside strings, where \uXXXX means the same character.
        return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        request_id = extras.pop("request_id", None)
        timestamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fields = " ".join(f"{k}={_escape(str(v))}" for k, v in extras.items())
        text = f"{timestamp} {record.levelname:<7} {record.name} [{request_id or '-'}] "
        text += _escape(redact(record.getMessage())) + (f" {fields}" if fields else "")
        if record.exc_info:
            text += "\n" + _escape(redact(self.formatException(record.exc_info)), keep="\n")
        return text


def setup_logging(level: str, fmt: Literal["json", "console"]) -> None:
    """Route the app's and uvicorn's loggers through one handler and one format."""
    formatter = JsonFormatter if fmt == "json" else ConsoleFormatter
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"request_id": {"()": RequestIdFilter}},
            "formatters": {"default": {"()": formatter}},
            "handlers": {
                "default": {
                    "class": "logging.StreamHandler",
                    "formatter": "default",
                    "filters": ["request_id"],
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"handlers": ["default"], "level": level},
            "loggers": {
                "uvicorn": {"handlers": [], "propagate": True, "level": level},
                "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
                # The app writes its own access line, with the request id and the duration.
                "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            },
        }
    )
