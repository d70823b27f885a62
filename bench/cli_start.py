"""Start-up time of the `timebridge` command, beside a bare Python start in the same run.

    python bench/cli_start.py [--runs 10]

Runs each command `--runs` times as a fresh process (after one unmeasured warm-up run each,
rounds interleaved so drift on a shared machine hits every command alike) and prints the median
wall time, its ratio to `python -c pass`, and the issue's goal for it as met or MISSED (never
asserted). `timebridge toggl me` talks to a Toggl Track simulator this script starts on
loopback, with its hourly quota reset before every run, and a fresh config directory, so it
sends exactly one request each time. Bytecode is cached as Python does by default (in a temp
directory, even where PYTHONDONTWRITEBYTECODE is set), so the figures are those of an installed
`timebridge` after its first start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timebridge.fakes import serve_in_thread
from timebridge.fakes.toggl import TogglSimulator

TOKEN = "bench-cli-start-token"


@dataclass(frozen=True)
class Case:
    label: str
    argv: Sequence[str]
    #: Seconds the issue allows, if it sets a goal for this command.
    goal: float | None = None


def _timebridge() -> str:
    script = Path(sys.executable).with_name("timebridge")
    if not script.exists():
        raise SystemExit(f"no {script}: run `pip install -e .` in this virtualenv first")
    return str(script)


def _run_once(case: Case, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(case.argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{case.label} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def measure(cases: Sequence[Case], env: dict[str, str], runs: int, reset: str) -> list[float]:
    """The median seconds of each case, in order."""
    samples: list[list[float]] = [[] for _ in cases]
    for round_number in range(runs + 1):
        for index, case in enumerate(cases):
            httpx.delete(reset)  # not timed: a fresh hourly quota for `toggl me`
            elapsed = _run_once(case, env)
            if round_number > 0:  # round 0 warms the file cache and the bytecode
                samples[index].append(elapsed)
    return [statistics.median(times) for times in samples]


def report(cases: Sequence[Case], medians: Sequence[float], runs: int) -> None:
    baseline = medians[0]
    width = max(len(case.label) for case in cases)
    print(f"Median of {runs} runs each, wall time, this machine, this run:")
    print(f"{'command':<{width}}  {'median':>8}  {'vs python':>9}  goal")
    for case, median in zip(cases, medians, strict=True):
        goal = ""
        if case.goal is not None:
            verdict = "met" if median < case.goal else "MISSED"
            goal = f"< {case.goal:.1f} s {verdict}"
        print(f"{case.label:<{width}}  {median:>6.3f} s  {median / baseline:>8.1f}x  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="Measured runs per command.")
    args = parser.parse_args()
    timebridge = _timebridge()
    simulator = TogglSimulator()
    simulator.add_user(api_token=TOKEN, fullname="Bench", timezone="Europe/Berlin")
    with serve_in_thread(simulator.asgi_app) as server, tempfile.TemporaryDirectory() as home:
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            # Bytecode cached as Python does by default, in the temp dir, not the source tree.
            "PYTHONPYCACHEPREFIX": str(Path(home) / "pycache"),
            "TOGGL_BASE_URL": f"{server.url}/api/v9",
            "TOGGL_API_TOKEN": TOKEN,
            "TIMEBRIDGE_CONFIG": str(Path(home) / "config.toml"),
            "XDG_CONFIG_HOME": home,
            "COLUMNS": "120",
        }
        cases = [
            Case("python -c pass", [sys.executable, "-c", "pass"]),
            Case("timebridge --version", [timebridge, "--version"], goal=0.3),
            Case("timebridge --help", [timebridge, "--help"], goal=0.3),
            Case("timebridge toggl me", [timebridge, "toggl", "me"], goal=0.6),
        ]
        medians = measure(cases, env, args.runs, f"{server.url}/_admin/quotas")
    report(cases, medians, args.runs)


if __name__ == "__main__":
    main()
