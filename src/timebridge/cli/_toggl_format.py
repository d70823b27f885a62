"""Reading and writing the Toggl CLI's values: durations, instants and tables of time entries.

Instants typed without an offset are read in the Toggl user's time zone, and instants are shown
in it, the zone named in each table's title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from timebridge.toggl import TimeEntry

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")

ENTRY_COLUMNS = ["ID", "Start", "Stop", "Duration", "Project", "Description", "Tags"]


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
