"""`timebridge serve` and `timebridge sync`: the service, and one sync from the command line.

`sync` is made for cron: no prompts, a one-line summary on stdout (nothing at all with
`--quiet` when the run succeeds), errors as one line on stderr, and an exit code that says what
went wrong (2 usage or config, 3 a token refused, 4 Toggl's quota spent, 5 no such account,
6 an upstream unavailable, 1 anything else, such as values Exist refused). Logs go to stderr
(JSON unless it is a terminal), warnings only unless `--verbose`; tokens never appear in them.
"""

from __future__ import annotations

import contextlib
import enum
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from timebridge.cli._output import ExitCode, console, error_console, fail, print_json, print_table

# Only what the commands' signatures need is imported here: `timebridge --help` and every other
# command must not pay for the storage stack, the engine or the web server.
if TYPE_CHECKING:
    from timebridge.bridge import MappingUpdate, PersonalRun, Skipped, SyncPreview
    from timebridge.clock import Clock
    from timebridge.config import Settings
    from timebridge.personal import PersonalConfig, PersonalConfigError
    from timebridge.retry import RetryPolicy
    from timebridge.sync.runner import RunKind, RunReport

#: The CLI's notion of "now" (None: the system clock); tests set it to agree with the
#: simulators' fake clock.
CLOCK: Clock | None = None
#: How hard to retry (None: the default policy); tests set `RetryPolicy.testing()`.
RETRY: RetryPolicy | None = None


class LogFormat(enum.StrEnum):
    """How log lines look: JSON for machines, console for people, auto picks by terminal."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


LOG_FORMAT_OPTION = typer.Option(
    LogFormat.AUTO,
    "--log-format",
    envvar="TIMEBRIDGE_LOG_FORMAT",
    case_sensitive=False,
    help="Log lines as JSON or for a console; auto: JSON unless stderr is a terminal.",
)


def _log_level(name: str) -> int:
    import logging

    level = logging.getLevelNamesMapping().get(name.strip().upper())
    if level is None:
        raise typer.BadParameter(f"{name!r} is not a log level (debug, info, warning, error)")
    return level


# --- serve ----------------------------------------------------------------------------------------


async def _check_store(settings: Settings) -> None:
    """Open and close the store once, so a bad key or an unreachable database is one clear line
    here rather than a traceback from inside the server's startup."""
    from timebridge.store import open_store

    store = await open_store(settings)
    await store.close()


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", envvar="TIMEBRIDGE_HOST", help="Interface to listen on."
    ),
    port: int = typer.Option(8000, "--port", envvar="TIMEBRIDGE_PORT", help="Port to listen on."),
    no_scheduler: bool = typer.Option(
        False,
        "--no-scheduler",
        help="Serve only; leave syncing to `timebridge worker` processes.",
    ),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: str = typer.Option(
        "info", "--log-level", envvar="TIMEBRIDGE_LOG_LEVEL", help="debug, info, warning, error."
    ),
) -> None:
    """Run the service: /healthz, /metrics, and syncs of every connected user on schedule."""
    # Imported here: every other command would pay for loading FastAPI.
    import uvicorn

    from timebridge.cli.db import load_settings
    from timebridge.logs import configure_logging
    from timebridge.web import create_app

    configure_logging(log_format=log_format.value, level=_log_level(log_level))
    settings = load_settings()
    with _store_errors(settings):
        import asyncio

        asyncio.run(_check_store(settings))
    app = create_app(settings, run_scheduler=not no_scheduler, clock=CLOCK, retry=RETRY)
    # log_config=None: uvicorn's own records go through the structured logging set up above.
    uvicorn.run(app, host=host, port=port, log_config=None, lifespan="on")


@contextlib.contextmanager
def _store_errors(settings: Settings) -> Iterator[None]:
    from timebridge.cli.db import database_errors
    from timebridge.store import SecretKeyError

    with database_errors(settings):
        try:
            yield
        except SecretKeyError as exc:
            _fail(str(exc), ExitCode.USAGE)


# --- sync -----------------------------------------------------------------------------------------


def _fail(message: str, code: ExitCode) -> NoReturn:
    # Messages quote config keys such as `[mapping]`, which Rich would read as markup.
    from rich.markup import escape

    fail(escape(message), code)


def _say(line: str) -> None:
    console.print(line, markup=False)


def _note(line: str) -> None:
    error_console.print(line, markup=False)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def sync(
    user: int | None = typer.Option(
        None, "--user", "-u", help="Sync this account (its id in the store)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Personal mode: sync the person this timebridge.toml describes.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the values a sync would write; write nothing."
    ),
    zero_out: bool = typer.Option(
        False, "--zero-out", help="Write 0 to every mapped attribute in the window, then sync."
    ),
    repair: bool = typer.Option(
        False, "--repair", help="Also rewrite values edited by hand in Exist."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print nothing when the run succeeds (for cron)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the run does."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Sync one user now: by account id, or personal mode from a timebridge.toml.

    Exit codes: 0 done, 1 values Exist refused, 2 usage or config, 3 a token refused,
    4 Toggl's hourly quota spent, 5 no such account, 6 Toggl or Exist unavailable.
    """
    import logging

    from timebridge.bridge import PersonalRun, SyncPreview
    from timebridge.cli.db import load_settings
    from timebridge.logs import configure_logging
    from timebridge.personal import PersonalConfigError, load_personal_config
    from timebridge.sync.runner import RunKind

    configure_logging(
        log_format=log_format.value,
        level=logging.INFO if verbose else logging.WARNING,
    )
    if (user is None) == (config is None):
        _fail("pass either --user ID or --config FILE", ExitCode.USAGE)
    if zero_out and repair:
        _fail("--zero-out and --repair cannot be combined", ExitCode.USAGE)
    if dry_run and (zero_out or repair):
        _fail("--dry-run plans a normal sync; leave out --zero-out and --repair", ExitCode.USAGE)
    kind = RunKind.ZERO_OUT if zero_out else RunKind.REPAIR if repair else RunKind.SYNC
    personal: PersonalConfig | None = None
    if config is not None:
        try:
            personal = load_personal_config(config)
        except PersonalConfigError as exc:
            _fail(_in_file(config, exc), ExitCode.USAGE)
        _warn_if_readable(config)
    settings = load_settings()
    with _store_errors(settings), _sync_errors(config, personal, settings):
        import asyncio

        result = asyncio.run(_sync(settings, user, personal, kind=kind, dry_run=dry_run))
    if isinstance(result, SyncPreview):
        _show_preview(result, json_output=json_output)
    elif isinstance(result, PersonalRun):
        _show_personal_run(result, json_output=json_output, quiet=quiet)
    else:
        _show_run(result, json_output=json_output, quiet=quiet, personal=False)


def _warn_if_readable(config: Path) -> None:
    """Like ssh with a private key: a config holding tokens should be readable by its owner
    only. A warning, not a refusal (the file may be on a filesystem without modes)."""
    try:
        mode = config.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _note(
            f"Warning: {config} holds your tokens and others can read it "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {config}"
        )


def _in_file(config: Path, error: PersonalConfigError) -> str:
    # File-level problems already start with the path.
    return str(error) if error.key is None else f"{config}: {error}"


async def _sync(
    settings: Settings,
    user: int | None,
    personal: PersonalConfig | None,
    *,
    kind: RunKind,
    dry_run: bool,
) -> SyncPreview | PersonalRun | RunReport | Skipped:
    from timebridge.bridge import Bridge, PersonalSync
    from timebridge.store import open_store

    async with await open_store(settings, clock=CLOCK) as store:
        bridge = Bridge.from_settings(store, settings, clock=CLOCK, retry=RETRY)
        if personal is not None:
            mode = PersonalSync(personal, settings, bridge)
            return await (mode.preview() if dry_run else mode.run(kind))
        assert user is not None
        await store.accounts.get(user)  # AccountNotFound rather than "not connected"
        if dry_run:
            return await bridge.plan(user)
        return await bridge.sync(user, kind)


@contextlib.contextmanager
def _sync_errors(
    config: Path | None, personal: PersonalConfig | None, settings: Settings
) -> Iterator[None]:
    """Errors raised before a run could start (runs themselves never raise for upstreams)."""
    from timebridge.bridge import SyncNotPossible
    from timebridge.exist import errors as exist_errors
    from timebridge.origins import exist_api_url, exist_origin, toggl_api_url, toggl_origin
    from timebridge.personal import PersonalConfigError
    from timebridge.store import AccountNotFound, SecretKeyError, StoreError
    from timebridge.toggl import errors as toggl_errors

    toggl_token = "toggl.api_token" if config is not None else "the stored Toggl token"
    exist_token = "exist.token" if config is not None else "the stored Exist token"
    try:
        yield
    except PersonalConfigError as exc:
        assert config is not None
        _fail(_in_file(config, exc), ExitCode.USAGE)
    except SyncNotPossible as exc:
        _fail(f"{exc}; connect it again", ExitCode.AUTHENTICATION)
    except AccountNotFound as exc:
        _fail(str(exc), ExitCode.NOT_FOUND)
    except toggl_errors.AuthenticationError:
        _fail(f"Toggl Track refused {toggl_token}; check it", ExitCode.AUTHENTICATION)
    except exist_errors.AuthenticationError:
        _fail(f"Exist refused {exist_token}; check it", ExitCode.AUTHENTICATION)
    except toggl_errors.QuotaExceeded as exc:
        _fail(f"Toggl Track: {exc.message}", ExitCode.QUOTA)
    except toggl_errors.NotFound as exc:
        if personal is None:
            _fail(f"Toggl Track: not found: {exc.message}", ExitCode.NOT_FOUND)
        url = toggl_api_url(toggl_origin(personal.toggl.base_url or settings.toggl_base_url))
        _fail(
            f"Toggl Track answered 404 Not Found under {url}: this is configuration, check "
            f"toggl.base_url in {config} (Toggl's is https://api.track.toggl.com/api/v9; "
            "leave it out for the real service)",
            ExitCode.USAGE,
        )
    except exist_errors.NotFound as exc:
        if personal is None:
            _fail(f"Exist: not found: {exc.message}", ExitCode.NOT_FOUND)
        url = exist_api_url(exist_origin(personal.exist.base_url or settings.exist_base_url))
        _fail(
            f"Exist answered 404 Not Found under {url}: this is configuration, check "
            f"exist.base_url in {config} (Exist's is https://exist.io/api/2; leave it out for "
            "the real service)",
            ExitCode.USAGE,
        )
    except (
        toggl_errors.RateLimited,
        toggl_errors.ServerError,
        toggl_errors.TransportError,
    ) as exc:
        _fail(f"Toggl Track is unavailable: {exc.message}", ExitCode.UNAVAILABLE)
    except (exist_errors.RateLimited, exist_errors.ServerError, exist_errors.TransportError) as exc:
        _fail(f"Exist is unavailable: {exc.message}", ExitCode.UNAVAILABLE)
    except (toggl_errors.TogglError, exist_errors.ExistError) as exc:
        _fail(exc.message, ExitCode.OTHER)
    except SecretKeyError as exc:
        _fail(str(exc), ExitCode.USAGE)
    except StoreError as exc:
        _fail(str(exc), ExitCode.OTHER)


# --- showing results ------------------------------------------------------------------------------


def _show_preview(preview: SyncPreview, *, json_output: bool) -> None:
    if json_output:
        print_json(
            {
                "dry_run": True,
                "account_id": preview.account_id,
                "window": [day.isoformat() for day in preview.window],
                "to_acquire": list(preview.to_acquire),
                "writes": [
                    {
                        "attribute": write.attribute,
                        "date": write.date.isoformat(),
                        "current": write.current,
                        "value": write.value,
                    }
                    for write in preview.writes
                ],
            }
        )
        return
    if preview.to_acquire:
        _say(
            "The mapping changed: a real run first acquires "
            f"{', '.join(preview.to_acquire)} in Exist."
        )
    if preview.writes:
        print_table(
            "Dry run: values a sync would write to Exist (minutes)",
            ["Attribute", "Date", "Now in Exist", "New value"],
            [
                [
                    write.attribute,
                    write.date.isoformat(),
                    "—" if write.current is None else write.current,
                    write.value,
                ]
                for write in preview.writes
            ],
        )
    requests = (
        f"Toggl: {_plural(preview.toggl_requests, 'request')}, "
        f"Exist: {_plural(preview.exist_requests, 'request')}"
    )
    if preview.writes:
        _say(
            f"Dry run: {_plural(len(preview.writes), 'value')} would be written; "
            f"nothing was written ({requests})."
        )
    else:
        _say(f"Dry run: Exist already holds Toggl's totals; nothing to write ({requests}).")


def _show_mapping_update(update: MappingUpdate, *, quiet: bool) -> None:
    for attribute, owner in sorted(update.taken_over.items()):
        _note(f"Note: {attribute} was fed by {owner} in Exist; Timebridge writes it from now on.")
    for attribute, reason in sorted(update.refused.items()):
        _note(f"Warning: Exist refused {attribute} ({reason}); projects mapped to it are skipped.")
    if not quiet:
        by_project = ", ".join(
            f"{project.project_name} → {update.mapping[project.project_id]}"
            for project in update.projects
            if project.project_id in update.mapping
        )
        _say(f"Mapping saved: {by_project or 'nothing'}.")


def _show_personal_run(run: PersonalRun, *, json_output: bool, quiet: bool) -> None:
    update = run.mapping_update
    if update is not None and not json_output:
        _show_mapping_update(update, quiet=quiet)
    refused = bool(update is not None and update.refused)
    _show_run(
        run.result,
        json_output=json_output,
        quiet=quiet,
        personal=True,
        mapping_update=update,
        refused_attributes=refused,
    )


def _run_json(result: RunReport | Skipped, mapping_update: MappingUpdate | None) -> dict[str, Any]:
    from timebridge.bridge import Skipped

    if isinstance(result, Skipped):
        return {"user_id": result.user_id, "outcome": "skipped", "reason": result.reason.value}
    data: dict[str, Any] = {
        "user_id": result.user_id,
        "kind": result.kind.value,
        "outcome": result.outcome.value,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat(),
        "duration_seconds": round(result.duration.total_seconds(), 3),
        "toggl_requests": result.toggl_requests,
        "exist_requests": result.exist_requests,
        "values_written": result.values_written,
        "written": [
            {"attribute": w.attribute, "date": w.date.isoformat(), "value": w.value}
            for w in result.written
        ],
        "failures": [
            {
                "service": failure.service,
                "message": failure.message,
                "attribute": failure.attribute,
                "date": failure.date.isoformat() if failure.date else None,
            }
            for failure in result.failures
        ],
        "next_sync_after": result.next_sync_after.isoformat() if result.next_sync_after else None,
    }
    if mapping_update is not None:
        data["mapping_update"] = {
            "mapping": {str(project): name for project, name in mapping_update.mapping.items()},
            "refused": dict(mapping_update.refused),
            "taken_over": dict(mapping_update.taken_over),
            "toggl_requests": mapping_update.toggl_requests,
            "exist_requests": mapping_update.exist_requests,
        }
    return data


#: Exit codes by run outcome (`RunOutcome` values).
_OUTCOME_EXIT = {
    "succeeded": ExitCode.OK,
    "partial": ExitCode.OTHER,
    "failed": ExitCode.UNAVAILABLE,
    "quota_exceeded": ExitCode.QUOTA,
    "disconnected": ExitCode.AUTHENTICATION,
    "exist_broken": ExitCode.AUTHENTICATION,
}


def _failure_message(report: RunReport, *, personal: bool) -> str:
    from timebridge.sync.runner import RunOutcome

    outcome = report.outcome
    if outcome is RunOutcome.QUOTA_EXCEEDED:
        after = report.next_sync_after
        when = f"resets at {after:%H:%M} UTC" if after is not None else "resets within the hour"
        return f"Toggl Track: hourly API quota used up, {when}; sync again then"
    if outcome is RunOutcome.DISCONNECTED:
        fix = "fix toggl.api_token and run again" if personal else "the user must reconnect"
        return (
            "Toggl Track refused the token twice, so Toggl was disconnected and its data "
            f"deleted; {fix}"
        )
    if outcome is RunOutcome.EXIST_BROKEN:
        fix = "check exist.token" if personal else "the user must reconnect Exist"
        return f"Exist refused the token, so syncing stops until it works again; {fix}"
    if outcome is RunOutcome.PARTIAL:
        refused = [failure for failure in report.failures if failure.attribute]
        return (
            f"Exist refused {_plural(len(refused) or len(report.failures), 'value')} "
            f"({report.error}); the next run tries again"
        )
    failure = report.failures[0] if report.failures else None
    if failure is not None and failure.status_code == 404:
        service = "Toggl Track" if failure.service == "toggl" else "Exist"
        return (
            f"the sync failed: {service} answered 404 Not Found ({failure.message}); this is "
            "configuration: check the connection's URL"
        )
    where = ""
    if failure is not None and failure.service in ("toggl", "exist"):
        where = "Toggl Track: " if failure.service == "toggl" else "Exist: "
        if failure.status_code is not None:
            where += f"HTTP {failure.status_code}: "
    return f"the sync failed: {where}{report.error or outcome.value}; the next run repairs it"


def _show_run(
    result: RunReport | Skipped,
    *,
    json_output: bool,
    quiet: bool,
    personal: bool,
    mapping_update: MappingUpdate | None = None,
    refused_attributes: bool = False,
) -> None:
    from timebridge.bridge import Skipped
    from timebridge.sync.runner import RunKind

    if json_output:
        print_json(_run_json(result, mapping_update))
    if isinstance(result, Skipped):
        _fail(
            f"user {result.user_id}: {result.reason.value}; connect it again",
            ExitCode.AUTHENTICATION,
        )
    code = _OUTCOME_EXIT[result.outcome.value]
    if not json_output and (code is not ExitCode.OK or refused_attributes or not quiet):
        who = "personal sync" if personal else f"sync of user {result.user_id}"
        extra = " (zero out first)" if result.kind is RunKind.ZERO_OUT else ""
        repaired = f", {len(result.repaired)} repaired" if result.kind is RunKind.REPAIR else ""
        _say(
            f"{who}{extra}: {result.outcome.value}; "
            f"{_plural(result.values_written, 'value')} written to Exist{repaired} "
            f"(Toggl: {_plural(result.toggl_requests, 'request')}, "
            f"Exist: {_plural(result.exist_requests, 'request')}; "
            f"{result.duration.total_seconds():.1f} s)."
        )
    if code is not ExitCode.OK:
        _fail(_failure_message(result, personal=personal), code)
    if refused_attributes:
        _fail("some mapped attributes could not be acquired in Exist (see above)", ExitCode.OTHER)


__all__ = ["CLOCK", "RETRY", "LogFormat", "serve", "sync"]
