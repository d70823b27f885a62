"""`bench/fidelity.py` keeps working, and what it prints for the baseline is measured."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from bench import fidelity
from bench.baselines.seed_processor import SeedProcessorEngine
from bench.histories import (
    DEFAULT_MAPPING,
    Create,
    Delete,
    History,
    Outcome,
    Stage,
    Sync,
    TimebridgeEngine,
    replay,
)

SUMMARY = re.compile(
    r"fidelity: timebridge (?P<timebridge>\d+\.\d)% exact, "
    r"seed processor (?P<baseline>\d+\.\d)% exact \((?P<count>\d+) histories\)"
)


def test_the_bench_reports_timebridge_exact_and_the_baseline_as_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = fidelity.main(["--histories", "5", "--seed", "1", "--workers", "1"])

    printed = capsys.readouterr().out.strip().splitlines()
    summary = SUMMARY.fullmatch(printed[-1])
    assert summary is not None, printed[-1]
    assert summary["count"] == "5"
    assert summary["timebridge"] == "100.0"
    # The baseline's share is the share of its own replays that ended exact: 5 histories, each
    # with and without faults, every one of them run against the simulators.
    assert report is not None
    baseline = [r.outcome for r in report.results if r.outcome.engine == SeedProcessorEngine.name]
    assert len(baseline) == 10
    assert all(o.runs >= 1 and o.toggl_requests > 0 and o.exist_requests > 0 for o in baseline)
    measured = 100 * sum(o.exact for o in baseline) / len(baseline)
    assert summary["baseline"] == f"{measured:.1f}"
    assert any(line.startswith("seed processor   off") for line in printed)


def test_the_baseline_keeps_a_deleted_entrys_minutes_and_timebridge_does_not() -> None:
    yesterday = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    history = History(
        start=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        zone="Europe/Berlin",
        toggl_zone="Europe/Berlin",
        mapping=DEFAULT_MAPPING,
        ops=(Create(3, yesterday, 30 * 60), Sync(), Delete(0), Sync()),
    )

    async def both() -> tuple[Outcome, Outcome]:
        with Stage() as stage:
            ours = await replay(history, stage, TimebridgeEngine)
            theirs = await replay(history, stage, SeedProcessorEngine)
        return ours, theirs

    ours, theirs = asyncio.run(both())

    assert ours.exact
    # The seed's processor never reverses a deleted entry: Exist keeps its 30 minutes.
    assert [(a, d.isoformat(), held, want) for a, d, held, want in theirs.wrong] == [
        ("productive_min", "2026-03-09", 30, 0)
    ]
    assert theirs.error_minutes == 30
