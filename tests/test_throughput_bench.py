"""`bench/throughput.py` end to end on a few users: it completes, and its figures add up.

Speed is not asserted here (bench/README.md: targets live in the benchmark, never in timed
tests); the request counts are, because they are exact: a steady-state run costs one Toggl
request and no Exist request per user.
"""

from __future__ import annotations

import re

import pytest
from bench.throughput import main
from bench.throughput_worker import NAIVE, TIMEBRIDGE

SUMMARY = re.compile(
    r"^throughput: timebridge (\d+) users/s, naive loop (\d+) users/s \((\d+\.\d)x\), "
    r"peak RSS (\d+) MB$"
)


def test_throughput_benchmark_runs_and_counts_requests(capsys: pytest.CaptureFixture[str]) -> None:
    report = main(
        ["--users", "20", "--latency-ms", "0", "--concurrency", "8", "--seed", "3", "--repeat", "2"]
    )
    lines = capsys.readouterr().out.strip().splitlines()

    for engine, users in ((TIMEBRIDGE, 20), (NAIVE, 20)):
        steady = report.cycle(engine, "steady")
        assert steady.users == users
        # Measured twice; the slower one is the median of two, and both are shown.
        assert len(steady.rates) == 2
        assert steady.users_per_second == min(steady.rates)
        assert steady.outcomes == {"succeeded": users}
        assert steady.toggl_requests / steady.users == 1
        assert steady.exist_requests / steady.users == 0
        assert (steady.sim_toggl_requests, steady.sim_exist_requests) == (users, 0)
        assert steady.values_written == 0

        changed = report.cycle(engine, "changed")
        assert len(changed.rates) == 2
        assert changed.outcomes == {"succeeded": users}
        assert changed.changed_users == 2, "10 % of 20 users change their entries"
        assert changed.toggl_requests == users
        # Each changed user needs one update batch (their cells fit in one); nobody else writes.
        assert 0 < changed.users_written <= changed.changed_users
        assert changed.exist_requests == changed.users_written

    first = report.cycle(TIMEBRIDGE, "first")
    assert first.outcomes == {"succeeded": 20}
    assert first.users_written == 20

    summary = SUMMARY.match(lines[-1])
    assert summary is not None, lines[-1]
    timebridge_rate, naive_rate, ratio, rss = summary.groups()
    # The printed ratio is the one the measured figures give, not a constant.
    steady_tb, steady_naive = report.cycle(TIMEBRIDGE, "steady"), report.cycle(NAIVE, "steady")
    expected = (steady_tb.users / steady_tb.seconds) / (steady_naive.users / steady_naive.seconds)
    assert ratio == f"{expected:.1f}"
    assert timebridge_rate == f"{report.timebridge_rate:.0f}"
    assert naive_rate == f"{report.naive_rate:.0f}"
    assert int(rss) == round(report.timebridge.peak_rss_mb) > 0
    assert any(line.startswith("timebridge  steady ") for line in lines)
