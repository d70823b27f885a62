"""Structured logs for `serve`, `worker` and `sync`: JSON or console lines, and never a secret.

Everything is routed through the standard library's `logging`, so the modules that log with
`logging.getLogger(__name__)` and `extra={...}` (the runner, the scheduler), uvicorn and httpx
come out in the same format as code that logs with structlog (`get_logger(__name__)`).

Secrets are kept out in three layers, because one missed code path is enough to leak a token
into a log aggregator that many people can read:
1. by key: any field whose name says token, secret, password, authorization, cookie, api key or
   credential is replaced, at any depth of nested dicts and lists;
2. by shape: `Basic …`/`Bearer …` header values, passwords in URLs and
   `token=`/`secret=`/`password=` query parameters are masked inside any string;
3. by value: secrets the process knows (tokens read from a personal config, say) are registered
   with `register_secret` and masked wherever they appear, even in a free-form message.
The last two run once more over each rendered line, so even an exception's text is covered.

Log lines are plain text: terminal escape codes (colours) are taken out of every value, and the
coloured copy of the message uvicorn attaches to its records (`color_message`) is dropped.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]

#: What a redacted value is replaced with.
REDACTED = "[REDACTED]"
#: Registered secrets shorter than this are ignored: masking "abc" everywhere would mangle logs
#: and protects nothing (no real token is that short).
MIN_SECRET_LENGTH = 6

_SECRET_KEY = re.compile(
    r"token|secret|passw(or)?d|authori[sz]ation|cookie|api[_-]?key|credential", re.IGNORECASE
)
#: An Authorization header's credentials: long, and with a digit or a symbol, so that prose
#: ("basic authentication", "bearer tokens") is left alone.
_AUTH_HEADER_VALUE = re.compile(
    r"\b([Bb]asic|[Bb]earer)(\s+)(?=[\w.~+/=:-]*[0-9=+/_.~:-])[\w.~+/=:-]{8,}"
)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)", re.IGNORECASE)
#: Paths whose last segment is a secret: a webhook callback's token, a one-time login link.
_SECRET_PATH = re.compile(r"(/hooks/toggl/|/signin/link/)[^\s/?#\"']+")
_SECRET_PARAMETER = re.compile(
    r"(\b[\w-]*(?:token|secret|password|api[_-]?key)[\w-]*=)[^&\s\"',;]+", re.IGNORECASE
)

#: Terminal escape sequences: colours and cursor moves (CSI), titles and links (OSC), and the
#: two-byte ones.
_TERMINAL_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"  # CSI: ESC [ parameters intermediates final
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: ESC ] text, ended by BEL or ST
    r"|[@-~])"  # ESC and one final byte
)
#: Fields that only repeat another in colour: uvicorn puts its message, with escape codes, in
#: the `color_message` extra of its records.
_TERMINAL_ONLY_FIELDS = frozenset({"color_message"})

#: Loggers of libraries that are chatty at INFO: httpx logs every request line, Alembic two lines
#: on every start even when there is nothing to migrate (Timebridge logs applied migrations
#: itself, see `timebridge.store.migrations`).
_QUIET_LIBRARIES = ("httpx", "httpcore", "aiosqlite", "asyncio", "alembic")

_known_secrets: set[str] = set()
_known_secrets_lock = threading.Lock()


def register_secret(value: str | SecretStr | None) -> None:
    """Mask `value` wherever it appears in any later log line of this process."""
    if value is None:
        return
    plain = value.get_secret_value() if isinstance(value, SecretStr) else value
    plain = plain.strip()
    if len(plain) >= MIN_SECRET_LENGTH:
        with _known_secrets_lock:
            _known_secrets.add(plain)


def forget_secrets() -> None:
    """Forget every registered secret (for tests)."""
    with _known_secrets_lock:
        _known_secrets.clear()


def scrub(text: str) -> str:
    """`text` with every registered secret and every secret-shaped fragment masked."""
    with _known_secrets_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTH_HEADER_VALUE.sub(rf"\1\2{REDACTED}", text)
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}\2", text)
    text = _SECRET_PATH.sub(rf"\1{REDACTED}", text)
    return _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text)


def is_secret_key(name: str) -> bool:
    """Whether a field called `name` holds a secret, whatever its value looks like."""
    return bool(_SECRET_KEY.search(name))


def plain_text(text: str) -> str:
    """`text` without terminal escape codes (colours and the like), stray ESC bytes included."""
    if "\x1b" not in text:
        return text
    return _TERMINAL_ESCAPE.sub("", text).replace("\x1b", "")


def _plain_value(value: Any) -> Any:
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, Mapping):
        return {key: _plain_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_value(item) for item in value]
    return value


def drop_terminal_styling(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: no escape codes in any value, and no `color_message`."""
    for key in list(event_dict):
        if key in _TERMINAL_ONLY_FIELDS:
            del event_dict[key]
        elif not key.startswith("_"):
            event_dict[key] = _plain_value(event_dict[key])
    return event_dict


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Mapping):
        return {key: _redact_field(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    return value


def _redact_field(key: str, value: Any) -> Any:
    # None and booleans say whether something is set (`has_token: true`), never what it is.
    if is_secret_key(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    return _redact_value(value)


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret fields and secret-shaped text in the event."""
    for key in list(event_dict):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (`_record`, `_from_structlog`)
        event_dict[key] = _redact_field(key, event_dict[key])
    return event_dict


class _ScrubbedRenderer:
    """Wraps the final renderer and scrubs the rendered line (the last line of defence), escape
    codes included (a console traceback is rendered from the exception itself)."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(
        self, logger: WrappedLogger, method: str, event_dict: EventDict
    ) -> str | bytes | bytearray:
        rendered = self._renderer(logger, method, event_dict)
        if isinstance(rendered, str):
            return scrub(plain_text(rendered))
        if isinstance(rendered, bytes | bytearray):
            return scrub(plain_text(bytes(rendered).decode("utf-8", "replace"))).encode()
        return str(rendered)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time of each record, so a CLI command run in a
    test (which swaps stderr for the duration) never leaves a handler on a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


#: Marks the handler `configure_logging` installs, so calling it again replaces it.
_HANDLER_MARK = "_timebridge_handler"


def _wants_json(log_format: LogFormat, stream: TextIO) -> bool:
    if log_format != "auto":
        return log_format == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    *,
    log_format: LogFormat = "auto",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> None:
    """Route every log record (structlog's and the standard library's) through one formatter.

    `auto` writes JSON lines unless the stream is a terminal: services and cron jobs get
    machine-readable logs, a person at a terminal gets readable ones. Safe to call again (the
    previous configuration is replaced).
    """
    target = stream if stream is not None else sys.stderr
    as_json = _wants_json(log_format, target)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
    ]
    renderer: Processor
    if as_json:
        # Tracebacks become plain text before redaction; structlog's dict tracebacks would
        # carry the frames' local variables, tokens included.
        final: list[Processor] = [
            structlog.processors.format_exc_info,
            drop_terminal_styling,
            redact_secrets,
        ]
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        final = [drop_terminal_styling, redact_secrets]
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            _ScrubbedRenderer(renderer),
        ],
    )
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: `configure_logging` may be called again (tests, `serve` after `sync`).
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing through the configuration above.

    For entry points that called `configure_logging` (before it, structlog prints to stdout);
    library modules log with `logging.getLogger(__name__)`, which is silent until configured.
    """
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**bound) if bound else logger


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    """`register_secret` for each of `values`."""
    for value in values:
        register_secret(value)


__all__ = [
    "REDACTED",
    "LogFormat",
    "configure_logging",
    "drop_terminal_styling",
    "forget_secrets",
    "get_logger",
    "is_secret_key",
    "plain_text",
    "redact_secrets",
    "register_secret",
    "register_secrets",
    "scrub",
]
