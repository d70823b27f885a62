"""The Exist client behind `timebridge exist …`: opening it, saving rotated tokens, errors, login.

Importing this module loads the Exist client and the OAuth callback server; the command module
imports it when a command runs.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr, ValidationError

from timebridge.cli._config import save_section
from timebridge.cli._output import ExitCode, error_console, fail
from timebridge.clock import Clock
from timebridge.exist import (
    DEFAULT_BASE_URL,
    DEFAULT_OAUTH_BASE_URL,
    AuthenticationError,
    AuthorizationDenied,
    Callback,
    DayValue,
    ExistClient,
    ExistError,
    ExistTokens,
    NotFound,
    OAuthApp,
    RateLimited,
    ServerError,
    TransportError,
    authorize_url,
    new_state,
)
from timebridge.exist._api import MAX_VALUES_PER_PAGE
from timebridge.retry import RetryPolicy

T = TypeVar("T")
SECTION = "exist"


@dataclass
class ExistSettings:
    """Where Exist is and which token to use, from options, environment and config file."""

    token: str | None
    base_url: str
    oauth_base_url: str
    clock: Clock
    retry: RetryPolicy | None
    #: The config file's [exist] section, when the token came from it (it may hold a refresh
    #: token and client credentials).
    saved: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        *,
        token: str | None,
        base_url: str | None,
        oauth_base_url: str | None,
        saved: dict[str, str],
        clock: Clock,
        retry: RetryPolicy | None,
    ) -> ExistSettings:
        base = base_url or saved.get("base_url") or DEFAULT_BASE_URL
        return cls(
            token=token or saved.get("access_token"),
            base_url=base,
            oauth_base_url=oauth_base_url or saved.get("oauth_base_url") or _oauth_base_for(base),
            clock=clock,
            retry=retry,
            saved={} if token else saved,
        )

    def client(
        self,
        token: str | ExistTokens | None,
        app: OAuthApp | None = None,
        *,
        save_rotated: bool = True,
    ) -> ExistClient:
        """A client; with `save_rotated`, a pair Exist rotates is saved to the config file."""
        return ExistClient(
            token,
            app=app,
            on_tokens=_save_tokens if save_rotated else None,
            base_url=self.base_url,
            oauth_base_url=self.oauth_base_url,
            clock=self.clock,
            retry=self.retry,
        )


def _oauth_base_for(base_url: str) -> str:
    """The simulator and Exist both serve OAuth at /oauth2/ beside /api/2/."""
    trimmed = base_url.rstrip("/")
    if trimmed.endswith("/api/2"):
        return trimmed[: -len("/api/2")] + "/oauth2/"
    return DEFAULT_OAUTH_BASE_URL


def _human(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def describe(error: ExistError) -> tuple[str, ExitCode]:
    if isinstance(error, AuthenticationError):
        return (
            f"authentication failed ({error.message}); run `timebridge exist login`",
            ExitCode.AUTHENTICATION,
        )
    if isinstance(error, RateLimited):
        wait = "" if error.retry_after is None else f"; retry in {_human(error.retry_after)}"
        return f"rate limit reached (300 requests an hour){wait}", ExitCode.QUOTA
    if isinstance(error, NotFound):
        return f"not found ({error.message})", ExitCode.NOT_FOUND
    if isinstance(error, ServerError | TransportError):
        return str(error), ExitCode.UNAVAILABLE
    return str(error), ExitCode.OTHER


def token_fields(tokens: ExistTokens) -> dict[str, str]:
    """What the config file keeps of a pair ("" clears a field left from an earlier login)."""
    return {
        "access_token": tokens.access_token.get_secret_value(),
        "refresh_token": (
            tokens.refresh_token.get_secret_value() if tokens.refresh_token is not None else ""
        ),
        "expires_at": tokens.expires_at.isoformat() if tokens.expires_at is not None else "",
        "scope": tokens.scope,
    }


def _saved_tokens(saved: dict[str, str], token: str) -> tuple[ExistTokens, OAuthApp | None]:
    refresh = saved.get("refresh_token")
    expires = saved.get("expires_at")
    tokens = ExistTokens(
        access_token=SecretStr(token),
        refresh_token=SecretStr(refresh) if refresh else None,
        expires_at=datetime.fromisoformat(expires) if expires else None,
        scope=saved.get("scope", ""),
    )
    client_id, secret = saved.get("client_id"), saved.get("client_secret")
    app = (
        OAuthApp(client_id=client_id, client_secret=SecretStr(secret))
        if client_id and secret
        else None
    )
    return tokens, app


@contextlib.contextmanager
def exist_errors() -> Iterator[None]:
    """One clear line and a distinct exit code for every failure; never a token."""
    try:
        yield
    except ExistError as exc:
        message, code = describe(exc)
        fail(f"Exist: {message}", code)
    except AuthorizationDenied as exc:
        fail(str(exc), ExitCode.AUTHENTICATION)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        fail(f"{where}: {first['msg']}" if where else first["msg"], ExitCode.USAGE)
    except ValueError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else "invalid value", ExitCode.USAGE)


def _save_tokens(tokens: ExistTokens) -> None:
    """Exist invalidated the old pair when it issued this one: keep the new one at once."""
    save_section(SECTION, token_fields(tokens))


def call(settings: ExistSettings, action: Callable[[ExistClient], T]) -> T:
    """Run `action` with a client for the configured token; failures become one line."""
    if not settings.token:
        fail(
            "no Exist token: pass --token, set EXIST_TOKEN, or run `timebridge exist login`",
            ExitCode.USAGE,
        )
    token: str | ExistTokens = settings.token
    app = None
    if settings.saved:
        token, app = _saved_tokens(settings.saved, settings.token)
    with exist_errors(), settings.client(token, app) as client:
        return action(client)


def recent_values(
    client: ExistClient, attribute: str, days: int, until: date | None
) -> list[DayValue]:
    """Up to `days` values, newest first, paging as needed; fewer only where Exist has no more."""
    limit = min(days, MAX_VALUES_PER_PAGE)
    found: list[DayValue] = []
    page = 1
    while len(found) < days:
        batch = client.values(attribute, date_max=until, page=page, limit=limit)
        found.extend(batch.results)
        if not batch.has_next or not batch.results:
            break
        page += 1
    return found[:days]


# --- OAuth login --------------------------------------------------------------------------------


class _CallbackServer(http.server.HTTPServer):
    """Receives Exist's redirect on 127.0.0.1 and keeps its query."""

    received: dict[str, str] | None = None


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        if "code" not in query and "error" not in query:
            self.send_error(404)
            return
        self.server.received = query
        ok = "code" in query
        body = (
            "<!doctype html><title>Timebridge</title><p>"
            + (
                "Timebridge is connected to Exist. You can close this window."
                if ok
                else "Exist did not authorise Timebridge. You can close this window."
            )
            + "</p>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None  # the query holds the code: keep it out of the terminal


def _wait_for_callback(server: _CallbackServer, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    server.timeout = 0.2
    while server.received is None:
        if time.monotonic() > deadline:
            fail(
                "no answer from the browser in time; run `timebridge exist login --oauth` again",
                ExitCode.AUTHENTICATION,
            )
        server.handle_request()
    return server.received


def _open_browser(url: str) -> None:
    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(url)


def oauth_login(
    settings: ExistSettings, app: OAuthApp, *, port: int, open_browser: bool, timeout: float
) -> ExistTokens:
    """The authorization-code flow with a callback server on 127.0.0.1; the first token pair."""
    try:
        server = _CallbackServer(("127.0.0.1", port), _CallbackHandler)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port} for the OAuth callback ({exc})", ExitCode.USAGE)
    with server:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
        state = new_state()
        url = authorize_url(
            app.client_id, redirect_uri, state=state, oauth_base_url=settings.oauth_base_url
        )
        error_console.print(
            f"Open this page to let Timebridge use your Exist account "
            f"(the client's redirect URI must be {redirect_uri}):"
        )
        error_console.print(url, markup=False)
        if open_browser:
            # The browser runs on its own; the callback server below waits for its redirect.
            threading.Thread(target=_open_browser, args=(url,), daemon=True).start()
        query = _wait_for_callback(server, timeout)
    callback = Callback.parse(query, expected_state=state)
    with settings.client(None, app, save_rotated=False) as client:
        return client.exchange_code(callback.code, redirect_uri)


def login_fields(
    settings: ExistSettings, tokens: ExistTokens, extra: dict[str, str]
) -> tuple[dict[str, str], str, str]:
    """Check `tokens` against Exist; the config fields to save, the username and time zone."""
    with settings.client(tokens, save_rotated=False) as client:
        profile = client.profile()
    fields = {**token_fields(tokens), **extra}
    fields["base_url"] = settings.base_url if settings.base_url != DEFAULT_BASE_URL else ""
    fields["oauth_base_url"] = (
        settings.oauth_base_url if settings.oauth_base_url != DEFAULT_OAUTH_BASE_URL else ""
    )
    return fields, profile.username, profile.timezone


def personal_tokens(raw: str) -> ExistTokens:
    return ExistTokens.personal(raw)


def oauth_app(client_id: str, secret: str) -> OAuthApp:
    return OAuthApp(client_id=client_id, client_secret=SecretStr(secret))
