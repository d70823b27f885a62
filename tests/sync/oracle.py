"""An independent computation of what Exist should show, used only by tests.

It shares no code with the planner and works differently: it walks every entry through UTC
minute boundaries (local midnights always fall on whole UTC minutes, since every zone's offset
is a whole number of minutes), dates each piece by converting its first instant to the user's
zone, sums seconds in a plain dict and rounds with `decimal`'s ROUND_HALF_UP.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from timebridge.toggl.models import TimeEntry


def truth(
    entries: list[TimeEntry],
    mapping: dict[int, str],
    zone: ZoneInfo,
    now: datetime,
    days: int = 14,
) -> dict[tuple[str, date], int]:
    today = now.astimezone(zone).date()
    window = [today - timedelta(days=n) for n in range(days)]
    totals: dict[tuple[str, date], int] = {
        (attribute, day): 0 for attribute in set(mapping.values()) for day in window
    }
    for entry in entries:
        if entry.server_deleted_at is not None or entry.project_id not in mapping:
            continue
        attribute = mapping[entry.project_id]
        begin = entry.start.astimezone(UTC)
        if entry.duration < 0:
            finish = now
        elif entry.stop is not None:
            finish = entry.stop.astimezone(UTC)
        else:
            finish = begin + timedelta(seconds=entry.duration)
        finish = min(finish, now.astimezone(UTC))
        cursor = begin
        while cursor < finish:
            next_minute = cursor.replace(second=0, microsecond=0) + timedelta(minutes=1)
            step_end = min(next_minute, finish)
            local_day = cursor.astimezone(zone).date()
            if (attribute, local_day) in totals:
                totals[(attribute, local_day)] += int((step_end - cursor).total_seconds())
            cursor = step_end
    return {
        key: int((Decimal(seconds) / Decimal(60)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        for key, seconds in totals.items()
    }
