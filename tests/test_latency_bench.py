"""`bench/latency.py` end to end at a tiny scale: it completes, prints its table, and no edit is
lost. Speed is not asserted (bench/README.md: targets live in the benchmark, never in tests)."""

from __future__ import annotations

import pytest
from bench.latency import main, percentile, plan_edits


def test_latency_benchmark_runs_and_loses_no_edit(capsys: pytest.CaptureFixture[str]) -> None:
    report = main(["--users", "3", "--edits", "10", "--seconds", "3", "--latency-ms", "0"])
    out = capsys.readouterr().out

    assert "engine" in out and "p50 s" in out and "p95 s" in out and "lost" in out
    assert "webhooks (3 s window)" in out and "hourly at :40 (no webhooks)" in out
    assert report.edits == 10
    assert report.webhooks.lost == 0
    assert len(report.webhooks.latencies) == 10
    assert "0 edits lost: met" in out
    assert report.edited_days > 0 and report.edited_days_wrong == 0
    assert report.user_days_wrong == 0
    assert "(all)" in out
    assert report.subscriptions == {"active": 3}
    assert report.deliveries["failed"] == 0


def test_the_plan_comes_from_the_seed_and_stops_each_timer_first() -> None:
    planned = plan_edits(20, 200, 60.0, seed=4)
    assert planned == plan_edits(20, 200, 60.0, seed=4)
    assert [edit.offset for edit in planned] == sorted(edit.offset for edit in planned)
    for index in {edit.index for edit in planned if edit.kind == "stop"}:
        kinds = [edit.kind for edit in planned if edit.index == index]
        assert kinds[0] == "stop" and "stop" not in kinds[1:]


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0
