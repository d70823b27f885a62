"""Structured logs: JSON or console lines, and a secret passed anywhere never comes out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import uvicorn
from alembic.script import ScriptDirectory
from pydantic import SecretStr

from timebridge.logs import (
    REDACTED,
    configure_logging,
    forget_secrets,
    get_logger,
    register_secret,
    scrub,
)
from timebridge.store.migrations import alembic_config, upgrade

TOKEN = "f1e2d3c4b5a69788abcdef0123456789"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    forget_secrets()


@pytest.fixture
def json_lines() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(log_format="json", stream=stream)
    return stream


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_fields_are_redacted_at_any_depth(json_lines: io.StringIO) -> None:
    get_logger("test").info(
        "connected",
        api_token=TOKEN,
        connection={"exist": {"access_token": TOKEN, "refresh_token": SecretStr(TOKEN)}},
        headers=[{"Authorization": f"Basic {TOKEN}"}],
        client_secret=TOKEN,
        password=TOKEN,
        has_token=True,
        user_id=7,
    )
    output = json_lines.getvalue()
    assert TOKEN not in output
    [record] = records(json_lines)
    assert record["api_token"] == REDACTED
    assert record["connection"] == {"exist": {"access_token": REDACTED, "refresh_token": REDACTED}}
    assert record["has_token"] is True, "whether a token is set is not a secret"
    assert record["user_id"] == 7
    assert record["event"] == "connected"
    assert record["level"] == "info"


def test_standard_library_records_and_their_extras_are_redacted(json_lines: io.StringIO) -> None:
    logging.getLogger("timebridge.some.module").warning(
        "request with Authorization: Bearer %s failed",
        TOKEN,
        extra={"user_id": 3, "toggl_token": TOKEN},
    )
    output = json_lines.getvalue()
    assert TOKEN not in output
    [record] = records(json_lines)
    assert record["event"] == f"request with Authorization: Bearer {REDACTED} failed"
    assert record["toggl_token"] == REDACTED
    assert record["user_id"] == 3
    assert record["logger"] == "timebridge.some.module"


def test_registered_secret_is_masked_even_in_free_text_and_tracebacks() -> None:
    for log_format in ("json", "console"):
        stream = io.StringIO()
        configure_logging(log_format=log_format, stream=stream)
        register_secret(SecretStr(TOKEN))
        log = get_logger("test")
        log.info(f"the token is {TOKEN}")
        try:
            raise RuntimeError(f"Toggl refused {TOKEN}")
        except RuntimeError:
            log.exception("sync crashed")
            logging.getLogger("stdlib").exception("sync crashed too")
        output = stream.getvalue()
        assert TOKEN not in output, log_format
        assert "RuntimeError: Toggl refused [REDACTED]" in output, log_format


def test_header_values_and_url_passwords_are_masked_but_prose_is_not() -> None:
    assert scrub(f"Authorization: Basic {TOKEN}") == f"Authorization: Basic {REDACTED}"
    assert scrub(f"bearer {TOKEN}") == f"bearer {REDACTED}"
    assert scrub("postgresql://app:hunter2@db/timebridge") == (
        f"postgresql://app:{REDACTED}@db/timebridge"
    )
    assert scrub(f"GET /me?api_token={TOKEN}&x=1") == f"GET /me?api_token={REDACTED}&x=1"
    prose = "Toggl refused the token once; basic authentication; bearer tokens rotate"
    assert scrub(prose) == prose


def test_secret_path_segments_are_masked_in_access_lines() -> None:
    hook = '127.0.0.1:5123 - "POST /hooks/toggl/Zq3-x_9AbCdEfGh HTTP/1.1" 200'
    assert scrub(hook) == f'127.0.0.1:5123 - "POST /hooks/toggl/{REDACTED} HTTP/1.1" 200'
    link = '"GET /signin/link/s3cr3t-l1nk?next=/ HTTP/1.1" 303'
    assert scrub(link) == f'"GET /signin/link/{REDACTED}?next=/ HTTP/1.1" 303'


def test_console_format_is_readable_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging(log_format="console", stream=stream)
    get_logger("timebridge.web").info("scheduler started", cron="40 * * * *", api_token=TOKEN)
    line = stream.getvalue()
    assert "scheduler started" in line
    assert "cron='40 * * * *'" in line or "cron=40 * * * *" in line
    assert TOKEN not in line
    assert not line.lstrip().startswith("{")


def test_configuring_again_replaces_the_handler_and_sets_the_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(log_format="json", stream=first)
    configure_logging(log_format="json", stream=second, level=logging.WARNING)
    log = get_logger("test")
    log.info("hidden")
    log.warning("shown")
    assert first.getvalue() == ""
    assert [record["event"] for record in records(second)] == ["shown"]


def test_auto_format_writes_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(log_format="auto", stream=stream)
    get_logger("test").info("hello")
    assert json.loads(stream.getvalue())["event"] == "hello"


def test_chatty_libraries_stay_quiet_at_info(json_lines: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET https://api.track.toggl.com/ 200")
    assert json_lines.getvalue() == ""


@pytest.fixture
def uvicorn_logs_at_info() -> Iterator[None]:
    """uvicorn's loggers as a service that passes `log_config=None` finds them: a simulator
    started earlier in this process applies uvicorn's own configuration (a handler of its own,
    no propagation, CRITICAL)."""
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error")]
    saved = [(logger.level, logger.propagate, list(logger.handlers)) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.handlers.clear()
    yield
    for logger, (level, propagate, handlers) in zip(loggers, saved, strict=True):
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


@pytest.mark.usefixtures("uvicorn_logs_at_info")
def test_uvicorns_records_come_out_as_plain_json_without_color_message(
    json_lines: io.StringIO,
) -> None:
    """A real uvicorn server's start and stop records: uvicorn attaches a coloured copy of each
    message (`color_message`) that must not reach a log line, nor any escape code."""
    config = uvicorn.Config(_empty_app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.01)
    server.should_exit = True
    thread.join(10)
    output = json_lines.getvalue()
    events = [str(record["event"]) for record in records(json_lines)]
    assert any(event.startswith("Started server process [") for event in events), events
    assert any(event.startswith("Uvicorn running on http://127.0.0.1:") for event in events)
    assert "color_message" not in output
    assert "\\u001b" not in output and "\x1b" not in output


async def _empty_app(scope: object, receive: object, send: object) -> None:
    return None


@pytest.mark.usefixtures("uvicorn_logs_at_info")
def test_escape_codes_never_reach_a_line_in_either_format() -> None:
    coloured = "\x1b[1;31mred\x1b[0m and \x1b]8;;https://example.com\x1b\\a link\x1b]8;;\x1b\\"
    for log_format in ("json", "console"):
        stream = io.StringIO()
        configure_logging(log_format=log_format, stream=stream)
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]",
            4242,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
        )
        get_logger("test").warning(coloured, detail={"nested": [coloured]})
        output = stream.getvalue()
        assert "\x1b" not in output and "\\u001b" not in output, log_format
        assert "color_message" not in output, log_format
        assert "Started server process [4242]" in output, log_format
        assert "red and a link" in output, log_format


def test_migrations_log_one_line_per_applied_revision_and_nothing_when_current(
    json_lines: io.StringIO, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'timebridge.db'}"
    asyncio.run(upgrade(url))
    lines = records(json_lines)
    script = ScriptDirectory.from_config(alembic_config())
    revisions = [revision.revision for revision in reversed(list(script.walk_revisions()))]
    assert [line["revision"] for line in lines] == revisions
    assert all(line["logger"] == "timebridge.store.migrations" for line in lines)
    assert lines[0]["from_revision"] is None
    assert [line["from_revision"] for line in lines[1:]] == revisions[:-1]
    assert all(line["level"] == "info" and line["migration"] for line in lines)

    json_lines.truncate(0)
    json_lines.seek(0)
    asyncio.run(upgrade(url))
    assert json_lines.getvalue() == "", "nothing to migrate: nothing to say"
