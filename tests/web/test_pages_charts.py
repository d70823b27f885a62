"""The status page's SVG chart, as a pure function: scales, titles, links, escaping."""

from __future__ import annotations

import re
from datetime import date, timedelta

from timebridge.web.charts import ChartDay, axis_top, day_chart, minutes_text

MONDAY = date(2026, 3, 9)


def days(*values: tuple[int, int | None]) -> list[ChartDay]:
    return [
        ChartDay(MONDAY + timedelta(days=n), toggl, exist, f"/status/tv_min/{n}")
        for n, (toggl, exist) in enumerate(values)
    ]


def test_the_axis_covers_the_largest_value_in_at_most_four_round_steps() -> None:
    assert axis_top([0]) == (1, 1)
    assert axis_top([3, 4]) == (4, 1)
    assert axis_top([95]) == (120, 30)
    assert axis_top([600]) == (720, 180)
    top, step = axis_top([5000])
    assert top >= 5000 and top // step <= 4 and step % 60 == 0


def test_minutes_read_as_hours_too() -> None:
    assert minutes_text(None) == "unknown"
    assert minutes_text(45) == "45 min"
    assert minutes_text(60) == "60 min (1 h)"
    assert minutes_text(95) == "95 min (1 h 35 min)"


def test_every_day_is_a_link_with_titled_bars_and_differences_marked() -> None:
    svg = str(
        day_chart("chart-tv_min", "Watching TV <per day>", days((30, 30), (20, None), (5, 9)))
    )
    assert svg.startswith('<svg class="chart"')
    assert '<title id="chart-tv_min-title">Watching TV &lt;per day&gt;</title>' in svg
    assert re.findall(r'<a class="day" href="([^"]+)"', svg) == [
        "/status/tv_min/0",
        "/status/tv_min/1",
        "/status/tv_min/2",
    ]
    assert "<title>Mon 9 Mar: Toggl Track 30 min</title>" in svg
    assert "<title>Mon 9 Mar: Exist 30 min</title>" in svg
    assert "<title>Tue 10 Mar: Exist" not in svg, "no Exist bar where Exist's value is unknown"
    assert "Tue 10 Mar: Toggl Track 20 min, Exist unknown (differs)" in svg
    assert "Wed 11 Mar: Toggl Track 5 min, Exist 9 min (differs)" in svg
    assert svg.count('class="differs"') == 2
    assert svg.count('<rect class="toggl"') == 3 and svg.count('<rect class="exist"') == 2
