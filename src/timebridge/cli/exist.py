"""`timebridge exist …`: connect to Exist, list attributes, read values.

The token comes from `--token`, `EXIST_TOKEN` or the config file (`timebridge exist login`), and
is never printed. `login` saves either a personal token (the one Exist shows a developer client's
owner) or, with `--oauth`, the token pair from the OAuth2 flow with a local callback server; a
pair that Exist rotates on refresh is saved back to the config file before the next call.
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

import typer
from pydantic import SecretStr, ValidationError

from timebridge.cli._config import ConfigError, load_config, save_section
from timebridge.cli._output import ExitCode, console, error_console, fail, print_json, print_table
from timebridge.clock import Clock, SystemClock
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

#: The CLI's notion of "now"; tests replace it to agree with a simulator's fake clock.
CLOCK: Clock = SystemClock()
#: How hard to retry; tests replace it with `RetryPolicy.testing()` so failures come at once.
RETRY: RetryPolicy = RetryPolicy()
SECTION = "exist"

exist_app = typer.Typer(
    help="Exist.io: log in, list attributes, read values.", no_args_is_help=True
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


@dataclass
class _Settings:
    token: str | None
    base_url: str
    oauth_base_url: str
    #: The config file's [exist] section, when the token came from it (it may hold a refresh
    #: token and client credentials).
    saved: dict[str, str] = field(default_factory=dict)


def _oauth_base_for(base_url: str) -> str:
    """The simulator and Exist both serve OAuth at /oauth2/ beside /api/2/."""
    trimmed = base_url.rstrip("/")
    if trimmed.endswith("/api/2"):
        return trimmed[: -len("/api/2")] + "/oauth2/"
    return DEFAULT_OAUTH_BASE_URL


@exist_app.callback()
def _exist(
    ctx: typer.Context,
    token: str | None = typer.Option(
        None, "--token", envvar="EXIST_TOKEN", help="Exist access token.", show_default=False
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        envvar="EXIST_BASE_URL",
        help=f"API base URL (default {DEFAULT_BASE_URL}; or a simulator).",
    ),
    oauth_base_url: str | None = typer.Option(
        None,
        "--oauth-base-url",
        envvar="EXIST_OAUTH_BASE_URL",
        help="OAuth2 base URL (default: beside the API base URL).",
    ),
) -> None:
    try:
        section = load_config().get(SECTION, {})
    except ConfigError as exc:
        fail(str(exc), ExitCode.USAGE)
    saved = {key: str(value) for key, value in section.items() if value not in (None, "")}
    base = base_url or saved.get("base_url") or DEFAULT_BASE_URL
    ctx.obj = _Settings(
        token=token or saved.get("access_token"),
        base_url=base,
        oauth_base_url=oauth_base_url or saved.get("oauth_base_url") or _oauth_base_for(base),
        saved={} if token else saved,
    )


def _human(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _describe(error: ExistError) -> tuple[str, ExitCode]:
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


def _token_fields(tokens: ExistTokens) -> dict[str, str]:
    """What the config file keeps of a pair ("" clears a field left from an earlier login)."""
    return {
        "access_token": tokens.access_token.get_secret_value(),
        "refresh_token": (
            tokens.refresh_token.get_secret_value() if tokens.refresh_token is not None else ""
        ),
        "expires_at": tokens.expires_at.isoformat() if tokens.expires_at is not None else "",
        "scope": tokens.scope,
    }


def _saved_tokens(settings: _Settings, token: str) -> tuple[ExistTokens, OAuthApp | None]:
    saved = settings.saved
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
def _errors() -> Iterator[None]:
    """One clear line and a distinct exit code for every failure; never a token."""
    try:
        yield
    except ExistError as exc:
        message, code = _describe(exc)
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
    save_section(SECTION, _token_fields(tokens))


def _open_client(settings: _Settings, *, app: OAuthApp | None = None) -> ExistClient:
    token: str | ExistTokens | None = settings.token
    if settings.token and settings.saved:
        token, saved_app = _saved_tokens(settings, settings.token)
        app = app or saved_app
    return ExistClient(
        token,
        app=app,
        on_tokens=_save_tokens,
        base_url=settings.base_url,
        oauth_base_url=settings.oauth_base_url,
        clock=CLOCK,
        retry=RETRY,
    )


def _call(ctx: typer.Context, action: Callable[[ExistClient], T]) -> T:
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    if not settings.token:
        fail(
            "no Exist token: pass --token, set EXIST_TOKEN, or run `timebridge exist login`",
            ExitCode.USAGE,
        )
    with _errors(), _open_client(settings) as client:
        return action(client)


# --- login ----------------------------------------------------------------------------------------


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


def _oauth_login(
    settings: _Settings, app: OAuthApp, *, port: int, open_browser: bool, timeout: float
) -> ExistTokens:
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
    with ExistClient(
        app=app,
        base_url=settings.base_url,
        oauth_base_url=settings.oauth_base_url,
        clock=CLOCK,
        retry=RETRY,
    ) as client:
        return client.exchange_code(callback.code, redirect_uri)


@exist_app.command()
def login(
    ctx: typer.Context,
    token: str | None = typer.Option(
        None, "--token", help="Personal access token (asked for, hidden, if not given)."
    ),
    oauth: bool = typer.Option(
        False, "--oauth", help="Use the OAuth2 flow with your client id and secret instead."
    ),
    client_id: str | None = typer.Option(
        None, "--client-id", envvar="EXIST_CLIENT_ID", help="OAuth2 client id."
    ),
    client_secret: str | None = typer.Option(
        None,
        "--client-secret",
        envvar="EXIST_CLIENT_SECRET",
        help="OAuth2 client secret (asked for, hidden, if not given).",
        show_default=False,
    ),
    port: int = typer.Option(
        8000, "--port", help="Local port for the OAuth callback (0 picks a free one)."
    ),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="Open a browser."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the callback."),
) -> None:
    """Check an Exist token and save it in the config file (or run the OAuth2 flow)."""
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    settings.saved = {}
    fields: dict[str, str] = {}
    with _errors():
        if oauth:
            client_id = client_id or typer.prompt("Exist OAuth2 client id")
            secret = client_secret or typer.prompt("Exist OAuth2 client secret", hide_input=True)
            app = OAuthApp(client_id=client_id, client_secret=SecretStr(secret))
            tokens = _oauth_login(settings, app, port=port, open_browser=browser, timeout=timeout)
            fields = {**_token_fields(tokens), "client_id": app.client_id, "client_secret": secret}
        else:
            raw = token or typer.prompt(
                "Exist personal token (developer client page)", hide_input=True
            )
            tokens = ExistTokens.personal(raw)
            fields = {**_token_fields(tokens), "client_id": "", "client_secret": ""}
        with ExistClient(
            tokens,
            base_url=settings.base_url,
            oauth_base_url=settings.oauth_base_url,
            clock=CLOCK,
            retry=RETRY,
        ) as client:
            profile = client.profile()
    fields["base_url"] = settings.base_url if settings.base_url != DEFAULT_BASE_URL else ""
    fields["oauth_base_url"] = (
        settings.oauth_base_url if settings.oauth_base_url != DEFAULT_OAUTH_BASE_URL else ""
    )
    path = save_section(SECTION, fields)
    console.print(
        f"Logged in to Exist as {profile.username} ({profile.timezone}); "
        f"token saved to {path} (mode 0600)."
    )


# --- reading --------------------------------------------------------------------------------------


@exist_app.command()
def profile(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show your Exist profile and time zone."""
    found = _call(ctx, lambda client: client.profile())
    if as_json:
        print_json(found)
        return
    name = f"{found.first_name} {found.last_name}".strip()
    print_table(
        "Exist profile",
        ["Username", "Name", "Time zone", "Local time"],
        [[found.username, name, found.timezone, found.local_time]],
    )


@exist_app.command()
def attributes(
    ctx: typer.Context,
    owned: bool = typer.Option(False, "--owned", help="Only those this client owns."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List your attributes (those your token may read), or the ones this client owns."""
    found = _call(
        ctx,
        lambda client: client.all_owned_attributes() if owned else client.all_attributes(),
    )
    if as_json:
        print_json(found)
        return
    rows = [
        [
            a.name,
            a.label,
            a.group.name,
            a.value_type_description or a.value_type.name.lower(),
            a.service.label if a.service else "",
            "yes" if a.active else "no",
        ]
        for a in found
    ]
    title = "Attributes owned by this client" if owned else "Attributes"
    print_table(title, ["Name", "Label", "Group", "Type", "Owner", "Active"], rows)


def _recent_values(
    client: ExistClient, attribute: str, days: int, until: date | None
) -> list[DayValue]:
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


@exist_app.command()
def values(
    ctx: typer.Context,
    attribute: str = typer.Argument(..., help="Attribute name, e.g. tv_min."),
    days: int = typer.Option(14, "--days", min=1, help="How many days, newest first."),
    until: datetime | None = typer.Option(
        None, "--until", formats=["%Y-%m-%d"], help="Newest date (default: your today)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an attribute's daily values, newest first (empty days included)."""
    newest = until.date() if until is not None else None
    found = _call(ctx, lambda client: _recent_values(client, attribute, days, newest))
    if as_json:
        print_json(found)
        return
    rows = [[value.date.isoformat(), "" if value.value is None else value.value] for value in found]
    print_table(f"{attribute}, last {len(found)} days", ["Date", "Value"], rows)
