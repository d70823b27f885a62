"""`timebridge exist …`: connect to Exist, list attributes, read values.

The token comes from `--token`, `EXIST_TOKEN` or the config file (`timebridge exist login`), and
is never printed. `login` saves either a personal token (the one Exist shows a developer client's
owner) or, with `--oauth`, the token pair from the OAuth2 flow with a local callback server; a
pair that Exist rotates on refresh is saved back to the config file before the next call. The
Exist client loads when a command runs (`_exist_session`), so `timebridge --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from timebridge.cli._config import ConfigError, load_config, save_section
from timebridge.cli._output import ExitCode, console, fail, note, print_json, print_table
from timebridge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from timebridge.cli._exist_session import ExistSettings
    from timebridge.retry import RetryPolicy

#: The CLI's notion of "now"; tests replace it to agree with a simulator's fake clock.
CLOCK: Clock = SystemClock()
#: How hard to retry (None: the client's default); tests use `RetryPolicy.testing()`.
RETRY: RetryPolicy | None = None
SECTION = "exist"

exist_app = typer.Typer(
    help="Exist.io: log in, list attributes, read values.", no_args_is_help=True
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


@dataclass
class _Options:
    """The group's options as given, and the config file's [exist] section."""

    token: str | None
    base_url: str | None
    oauth_base_url: str | None
    saved: dict[str, str]


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
        help="API base URL (default: Exist's own; or a simulator).",
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
    ctx.obj = _Options(token, base_url, oauth_base_url, saved)


def _settings(ctx: typer.Context) -> ExistSettings:
    from timebridge.cli._exist_session import ExistSettings

    options: _Options = ctx.find_object(_Options)  # type: ignore[assignment]
    return ExistSettings.resolve(
        token=options.token,
        base_url=options.base_url,
        oauth_base_url=options.oauth_base_url,
        saved=options.saved,
        clock=CLOCK,
        retry=RETRY,
    )


# --- login ----------------------------------------------------------------------------------------


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
    from timebridge.cli._exist_session import (
        exist_errors,
        login_fields,
        oauth_app,
        oauth_login,
        personal_tokens,
    )

    settings = _settings(ctx)
    settings.saved = {}
    with exist_errors():
        if oauth:
            client_id = client_id or typer.prompt("Exist OAuth2 client id")
            secret = client_secret or typer.prompt("Exist OAuth2 client secret", hide_input=True)
            app = oauth_app(client_id, secret)
            tokens = oauth_login(settings, app, port=port, open_browser=browser, timeout=timeout)
            extra = {"client_id": app.client_id, "client_secret": secret}
        else:
            raw = token or typer.prompt(
                "Exist personal token (developer client page)", hide_input=True
            )
            tokens = personal_tokens(raw)
            extra = {"client_id": "", "client_secret": ""}
        fields, username, timezone = login_fields(settings, tokens, extra)
    path = save_section(SECTION, fields)
    console.print(
        f"Logged in to Exist as {username} ({timezone}); token saved to {path} (mode 0600).",
        markup=False,
    )


# --- reading --------------------------------------------------------------------------------------


@exist_app.command()
def profile(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show your Exist profile and time zone."""
    from timebridge.cli._exist_session import call

    found = call(_settings(ctx), lambda client: client.profile())
    if as_json:
        print_json(found)
        return
    name = f"{found.first_name} {found.last_name}".strip()
    local = found.local_time.strftime("%Y-%m-%d %H:%M") if found.local_time else ""
    print_table(
        "Exist profile",
        ["Username", "Name", "Time zone", "Local time"],
        [[found.username, name, found.timezone, local]],
    )


@exist_app.command()
def attributes(
    ctx: typer.Context,
    owned: bool = typer.Option(False, "--owned", help="Only those this client owns."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List your attributes (those your token may read), or the ones this client owns."""
    from timebridge.cli._exist_session import call

    found = call(
        _settings(ctx),
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
    """Show an attribute's daily values, newest first (empty days included).

    Exist keeps an attribute's values from the day it began: asking for more days than that
    shows the days there are, and says so.
    """
    from timebridge.cli._exist_session import call, recent_values

    newest = until.date() if until is not None else None
    found = call(_settings(ctx), lambda client: recent_values(client, attribute, days, newest))
    if len(found) < days:
        if found:
            note(
                f"Exist has {attribute} from {found[-1].date.isoformat()} on: "
                f"{len(found)} of the {days} days asked for."
            )
        else:
            note(f"Exist returned no days of {attribute} (does this token have its read scope?).")
    if as_json:
        print_json(found)
        return
    rows = [[value.date.isoformat(), "" if value.value is None else value.value] for value in found]
    print_table(f"{attribute}, last {len(found)} days", ["Date", "Value"], rows)
