"""Reading and writing the Toggl CLI's values: durations, instants, event filters, and tables of
time entries, webhook subscriptions and their deliveries.

Instants typed without an offset are read in the Toggl user's time zone, and instants are shown
in it, the zone named in each table's title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from timebridge.toggl import TimeEntry, WebhookDelivery, WebhookSubscription

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")

ENTRY_COLUMNS = ["ID", "Start", "Stop", "Duration", "Project", "Description", "Tags"]
WEBHOOK_COLUMNS = ["ID", "Description", "Enabled", "Validated", "Events", "Callback", "Pending"]
DELIVERY_COLUMNS = ["Event", "Action", "Created", "Status", "Failed attempts", "Last error"]
WEBHOOK_ACTIONS = ("created", "updated", "deleted", "*")


def parse_duration(text: str) -> int:
    """Seconds from `90`, `45m`, `1h30m`, `2h`, `30s`."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = _DURATION.match(text)
    if not text or match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 1h30m, 45m or 90")
    return int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)


def parse_instant(text: str, now: datetime) -> datetime:
    """ISO 8601, or `now`; without an offset the result is naive (see `in_zone`)."""
    if text.strip().lower() == "now":
        return now
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date-time like 2026-03-10T09:30") from None


def in_zone(instant: datetime, zone: tzinfo) -> datetime:
    """An instant typed without an offset means that wall-clock time in `zone`."""
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=zone)


def as_typed(instant: datetime) -> str:
    """An instant as the user gave it, for a confirmation question (no zone lookup needed)."""
    text = instant.isoformat(sep=" ", timespec="minutes")
    return text if instant.tzinfo is not None else f"{text} (your Toggl time zone)"


def human(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def clock_text(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def local_text(instant: datetime | None, zone: tzinfo) -> str:
    return "" if instant is None else instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def entry_rows(
    entries: Sequence[TimeEntry],
    *,
    zone: tzinfo,
    project_names: Mapping[int, str],
    now: datetime,
) -> list[list[Any]]:
    return [
        [
            entry.id,
            local_text(entry.start, zone),
            "running" if entry.is_running else local_text(entry.stop, zone),
            clock_text(entry.elapsed_seconds(now)),
            ""
            if entry.project_id is None
            else project_names.get(entry.project_id, f"#{entry.project_id}"),
            entry.description,
            ", ".join(entry.tags or []),
        ]
        for entry in entries
    ]


def parse_event_filter(text: str) -> tuple[str, str]:
    """`(entity, action)` from `time_entry:*`, `project:created`…; a bare entity means `*`."""
    entity, _, action = text.strip().partition(":")
    entity, action = entity.strip(), action.strip() or "*"
    if not entity or action not in WEBHOOK_ACTIONS:
        raise typer.BadParameter(
            f"{text!r} is not an event filter like time_entry:* or project:created "
            f"(actions: {', '.join(WEBHOOK_ACTIONS)})"
        )
    return entity, action


def filters_text(subscription: WebhookSubscription) -> str:
    return ", ".join(f"{f.entity}:{f.action}" for f in subscription.event_filters)


def webhook_rows(subscriptions: Sequence[WebhookSubscription]) -> list[list[Any]]:
    """One row a subscription; never its secret."""
    return [
        [
            s.subscription_id,
            s.description,
            "yes" if s.enabled else "no",
            "yes" if s.validated_at is not None else "no",
            filters_text(s),
            s.url_callback,
            "yes" if s.has_pending_events else "",
        ]
        for s in subscriptions
    ]


def webhook_fields(subscription: WebhookSubscription) -> list[list[Any]]:
    """Field/value rows of one subscription, instants in UTC (no request to learn a zone);
    never its secret."""
    return [
        ["ID", subscription.subscription_id],
        ["Workspace", subscription.workspace_id],
        ["Description", subscription.description],
        ["Callback", subscription.url_callback],
        ["Events", filters_text(subscription)],
        ["Enabled", "yes" if subscription.enabled else "no"],
        ["Validated", _utc_text(subscription.validated_at) or "no"],
        ["Created", _utc_text(subscription.created_at)],
    ]


def _utc_text(instant: datetime | None) -> str:
    return "" if instant is None else f"{local_text(instant, UTC)} UTC"


def delivery_rows(deliveries: Sequence[WebhookDelivery], zone: tzinfo) -> list[list[Any]]:
    return [
        [
            "" if d.event_id is None else d.event_id,
            " ".join(part for part in (d.entity, d.action) if part),
            local_text(d.created_at, zone),
            d.status or "",
            d.failed_delivery_attempts,
            d.last_delivery_error or "",
        ]
        for d in deliveries
    ]
