"""Structured logs: one JSON object a line with the request id, access lines, no secrets."""

import io
import json
import logging
from collections.abc import Iterator

import httpx2
import pytest

from app.core.logging import (
    ConsoleFormatter,
    JsonFormatter,
    RequestIdFilter,
    redact,
    request_id_var,
    setup_logging,
)
from app.models import User
from tests.utils.user import DEFAULT_PASSWORD


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every record of the app (and uvicorn) as a JSON line, through the real formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_access_line_has_request_fields(
    client: httpx2.AsyncClient, json_log: io.StringIO
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "req-42"})
    access = [line for line in _lines(json_log) if line["logger"] == "app.access"]
    assert len(access) == 1
    line = access[0]
    assert {"timestamp", "level", "logger", "message", "request_id"} <= line.keys()
    assert line["request_id"] == "req-42" == response.headers["x-request-id"]
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["client_ip"] == "127.0.0.1"


async def test_logs_never_contain_passwords_or_tokens(
    client: httpx2.AsyncClient, normal_user: User, json_log: io.StringIO
) -> None:
    login = await client.post(
        "/api/v1/auth/login", data={"username": normal_user.email, "password": DEFAULT_PASSWORD}
    )
    token = login.json()["access_token"]
    await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    await client.post("/api/v1/auth/login", data={"username": "x@y.z", "password": "wrong-pass"})
    logging.getLogger("app.test").info("oops Authorization: Bearer %s password=%s", token, "pw1")
    text = json_log.getvalue()
    assert text
    for secret in (DEFAULT_PASSWORD, token, "wrong-pass", "pw1"):
        assert secret not in text


def test_setup_logging_routes_uvicorn_through_the_json_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("INFO", "json")
        token = request_id_var.set("rid-7")
        try:
            logging.getLogger("uvicorn.error").info("server started")
            logging.getLogger("uvicorn.access").info("dropped: the app logs its own access line")
        finally:
            request_id_var.reset(token)
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert [(x["logger"], x["message"], x["request_id"]) for x in lines] == [
        ("uvicorn.error", "server started", "rid-7")
    ]


def test_console_format_is_one_readable_line() -> None:
    record = logging.makeLogRecord(
        {"name": "app.x", "levelname": "INFO", "msg": "hello %s", "args": ("you",)}
    )
    record.request_id = "abc"
    record.status = 200
    assert ConsoleFormatter().format(record).endswith("INFO    app.x [abc] hello you status=200")


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), JsonFormatter()])
def test_uvicorn_color_message_is_not_logged(formatter: logging.Formatter) -> None:
    record = logging.makeLogRecord(
        {"name": "uvicorn.error", "levelname": "INFO", "msg": "Started server process [%d]"}
    )
    record.args = (42,)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = formatter.format(record)
    assert "Started server process [42]" in line
    assert "color_message" not in line
    assert "\x1b" not in line
    assert "\\u001b" not in line


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ('{"password": "hunter2"}', "hunter2"),
        ("token=xyz&x=1", "xyz"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJzdWIiOiIxIn0"),
    ],
)
def test_redact_masks_secrets(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "[REDACTED]" in redact(text)


async def test_console_access_line_cannot_be_forged_or_drive_the_terminal(
    client: httpx2.AsyncClient,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ConsoleFormatter())
    access = logging.getLogger("app.access")
    access.addHandler(handler)
    try:
        await client.get(
            "/x%0a2026-01-01T00:00:00.000000Z INFO    app.access [-] GET /admin 200"
            "%0d%1b[2K%1b[31m%c2%85%e2%80%a8"
        )
    finally:
        access.removeHandler(handler)
    output = stream.getvalue()
    assert output.count("\n") == 1  # the line's own end, nothing inside it
    assert not {"\r", "\x1b", "\x85", "\u2028"} & set(output)
    assert "\\n2026-01-01" in output
    assert "\\x1b[31m" in output


def test_json_line_escapes_what_viewers_take_as_line_ends() -> None:
    text = "a\u2028b\u2029c\x85d\x1b[31me\nf"
    record = logging.makeLogRecord({"name": "app.x", "levelname": "INFO", "msg": text})
    record.path = text
    line = JsonFormatter().format(record)
    assert not {"\u2028", "\u2029", "\x85", "\x1b", "\n"} & set(line)
    parsed = json.loads(line)
    assert parsed["message"] == parsed["path"] == text
