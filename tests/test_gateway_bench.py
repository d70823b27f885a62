"""`bench/gateway.py` end to end for a second per leg: every leg answers without an error, and
the printed ratios, added latencies and goals are the ones its measurements give.

Speed is not asserted (bench/README.md: targets live in the benchmark, never in timed tests).
"""

from __future__ import annotations

import re
import shutil

import pytest
from bench.gateway import main


@pytest.mark.parametrize("generator", ["python", "wrk"])
def test_gateway_benchmark_measures_every_leg(
    generator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # CI installs Debian's wrk and nginx (.ci/run): a missing one fails here, never skips.
    assert shutil.which("wrk"), "wrk is not installed (apt-get install wrk)"
    assert shutil.which("nginx") or shutil.which("/usr/sbin/nginx"), "nginx is not installed"
    report = main(
        [
            "--seconds=1",
            "--warmup=0",
            "--connections=4",
            "--threads=1",
            f"--generator={generator}",
        ]
    )
    out = capsys.readouterr().out
    legs = ["direct", "timebridge", "nginx"]
    for latency in (0.0, 20.0):
        for leg in legs:
            result = report.get(leg, latency)
            assert result is not None, (leg, latency)
            assert result.generator == generator
            assert result.requests > 0
            # Through the gateway too, every answer is Toggl's 200: the seeded key and
            # connection work, and the rate limit is out of the way.
            assert result.errors == 0, (leg, latency)
            direct = report.get("direct", latency)
            assert direct is not None
            assert result.added_p50_ms == pytest.approx(result.p50_ms - direct.p50_ms)
            assert result.added_p99_ms == pytest.approx(result.p99_ms - direct.p99_ms)
            # The CPU time per request of the process that answered, from /proc, is printed.
            assert result.cpu_ms is not None and result.cpu_ms >= 0
            row = re.search(rf"^\s*{latency:g}ms\s+{leg}\s.*\s(\S+)$", out, re.M)
            assert row is not None and row[1] == f"{result.cpu_ms:.3f}", (leg, latency)
        # At 20 ms upstream no answer can come sooner than the upstream's delay.
        if latency == 20.0:
            assert all(r.p50_ms >= 20 for r in report.results if r.latency_ms == latency)
        ratios = re.search(rf"^ratios at {latency:g} ms upstream \(req/s\): (.*)$", out, re.M)
        assert ratios is not None
        direct_ratio = report.ratio("timebridge", "direct", latency)
        assert direct_ratio is not None
        assert f"timebridge/direct {direct_ratio:.2f}" in ratios[1]
        if "nginx" in legs:
            nginx_ratio = report.ratio("timebridge", "nginx", latency)
            assert nginx_ratio is not None
            assert f"timebridge/nginx {nginx_ratio:.2f}" in ratios[1]
    goals = re.findall(r"^goal: (.*): (met|MISSED|not measured)$", out, re.M)
    assert [goal for goal, _ in goals] == [goal for goal, _ in report.goals()]
    assert [verdict for _, verdict in goals] == [
        "met" if met else "MISSED" for _, met in report.goals()
    ]
    assert goals[-1] == ("0 errors", "met")
