"""Server-rendered SVG charts for the status page: no JavaScript, nothing loaded from elsewhere.

`day_chart` draws one attribute's days as pairs of bars — what Toggl Track says and what Exist
holds — each pair a link to that day's drill-down. Every bar carries a `<title>` (a tooltip, and
the name a screen reader reads); the page shows the same numbers as a table beside it, so the
chart is never the only way to read them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

#: The drawing's own coordinates; the SVG scales to its container's width.
WIDTH = 640
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 24, 40
#: Steps the y axis may use, in minutes: at most `_MAX_TICKS` gridlines above zero.
_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 90, 120, 180, 240, 360, 480, 720)
_MAX_TICKS = 4


@dataclass(frozen=True)
class ChartDay:
    """One day of one attribute: Toggl's minutes, Exist's (None: not known), its drill-down."""

    day: date
    toggl: int
    exist: int | None
    href: str

    @property
    def differs(self) -> bool:
        return (self.exist or 0) != self.toggl


def axis_top(values: Sequence[int]) -> tuple[int, int]:
    """The y axis' top and its step, in minutes: the smallest nice step that covers the largest
    value in at most `_MAX_TICKS` gridlines."""
    largest = max([*values, 1])
    for step in _STEPS:
        if math.ceil(largest / step) <= _MAX_TICKS:
            return step * math.ceil(largest / step), step
    step = 60 * math.ceil(largest / 60 / _MAX_TICKS)
    return step * math.ceil(largest / step), step


def day_label(day: date) -> str:
    """ "Mon 9 Mar": how a day is named in titles and the table."""
    return f"{day:%a} {day.day} {day:%b}"


def minutes_text(minutes: int | None) -> str:
    """ "95 min (1 h 35 min)", "45 min", or "unknown"."""
    if minutes is None:
        return "unknown"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{minutes} min ({hours} h {rest} min)" if rest else f"{minutes} min ({hours} h)"


def day_chart(chart_id: str, title: str, days: Sequence[ChartDay]) -> Markup:
    """An SVG of `days` (oldest first): per day a Toggl bar and an Exist bar, the pair a link to
    the day's drill-down; days where Exist differs from Toggl are marked with "≠"."""
    top, step = axis_top([d.toggl for d in days] + [d.exist or 0 for d in days])
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    baseline = _TOP + plot_height

    def y(minutes: int) -> float:
        return baseline - plot_height * minutes / top

    ident = escape(chart_id)
    parts: list[str] = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="group" '
        f'aria-labelledby="{ident}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
    ]
    for tick in range(0, top + 1, step):
        level = y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" '
            f'y1="{level:.1f}" y2="{level:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{level + 4:.1f}" '
            f'text-anchor="end">{tick}</text>'
        )
    parts.append(f'<text class="tick" x="{_LEFT - 6}" y="11" text-anchor="end">min</text>')
    slot = plot_width / max(len(days), 1)
    bar = slot * 0.34
    for index, day in enumerate(days):
        left = _LEFT + index * slot
        label = day_label(day.day)
        summary = (
            f"{label}: Toggl Track {minutes_text(day.toggl)}, Exist {minutes_text(day.exist)}"
            + (" (differs)" if day.differs else "")
        )
        parts.append(
            f'<a class="day" href="{escape(day.href)}" aria-label="{escape(summary)}">'
            f"<title>{escape(summary)}</title>"
            f'<rect class="hit" x="{left:.1f}" y="{_TOP}" width="{slot:.1f}" '
            f'height="{plot_height + _BOTTOM - 4}"/>'
        )
        toggl_x = left + slot / 2 - bar - 1
        parts.append(_bar("toggl", toggl_x, bar, y(day.toggl), baseline,
                          f"{label}: Toggl Track {minutes_text(day.toggl)}"))  # fmt: skip
        if day.exist is not None:
            parts.append(_bar("exist", left + slot / 2 + 1, bar, y(day.exist), baseline,
                              f"{label}: Exist {minutes_text(day.exist)}"))  # fmt: skip
        if day.differs:
            marker_y = min(y(day.toggl), y(day.exist or 0)) - 4
            parts.append(
                f'<text class="differs" x="{left + slot / 2:.1f}" y="{max(marker_y, 10):.1f}" '
                f'text-anchor="middle" aria-hidden="true">≠</text>'
            )
        parts.append(
            f'<text class="weekday" x="{left + slot / 2:.1f}" y="{baseline + 15}" '
            f'text-anchor="middle">{day.day:%a}</text>'
            f'<text class="date" x="{left + slot / 2:.1f}" y="{baseline + 30}" '
            f'text-anchor="middle">{day.day.day}</text>'
            "</a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _bar(kind: str, x: float, width: float, top: float, baseline: float, title: str) -> str:
    # A zero still shows as a hairline, so "nothing" reads differently from "no bar drawn".
    height = max(baseline - top, 1.0)
    return (
        f'<rect class="{kind}" x="{x:.1f}" y="{baseline - height:.1f}" '
        f'width="{width:.1f}" height="{height:.1f}"><title>{escape(title)}</title></rect>'
    )


__all__ = ["ChartDay", "axis_top", "day_chart", "day_label", "minutes_text"]
