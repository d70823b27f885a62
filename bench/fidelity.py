"""Fidelity: does Exist end up equal to Toggl's truth? Timebridge against the seed's processor.

    python bench/fidelity.py --histories 2000 [--faults | --no-faults] [--seed N] [--workers N]

Draws N user histories (`bench.histories`), and replays each one, with its faults and without
them (the same user activity either way), through Timebridge's `SyncRunner` and through the
model of the seed's processor (`bench.baselines.seed_processor`), against the Toggl and Exist
simulators on loopback. After every history the faults stop, one clean run completes, and Exist's
stored values are compared with the oracle's truth (`tests.sync.oracle`) for every mapped
attribute and window date. The table gives, per engine and fault mode: the share of histories
that end exactly right, the absolute error in minutes (mean and max per history), and the Toggl
and Exist requests per sync run. Both engines are measured in the same run, on the same
histories; nothing is remembered from elsewhere.

Histories are shared out over `--workers` processes (default: the CPU count), each with its own
pair of simulator servers. `--show K` prints the first K histories Timebridge got wrong, and
`--history I` replays history I alone and prints it with every run, for debugging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines.seed_processor import SeedProcessorEngine
from bench.histories import (
    Engine,
    EngineFactory,
    History,
    Outcome,
    RunStats,
    Stage,
    TimebridgeEngine,
    World,
    drawn_history,
    replay,
)

#: The engines compared, in the table's order.
ENGINES: dict[str, EngineFactory] = {
    TimebridgeEngine.name: TimebridgeEngine,
    SeedProcessorEngine.name: SeedProcessorEngine,
}
#: Histories handed to a worker at a time.
CHUNK = 4


def history(seed: int, index: int) -> History:
    """History `index` of the run seeded with `seed` (independent of N and of the workers)."""
    return drawn_history(seed, index)


@dataclass(frozen=True)
class Result:
    """One history through one engine in one fault mode."""

    index: int
    faults: bool
    outcome: Outcome


def run_history(
    stage: Stage, seed: int, index: int, modes: Sequence[bool], engines: Sequence[str]
) -> list[Result]:
    """Replay history `index` through every engine, in every fault mode asked for."""
    drawn = history(seed, index)
    results: list[Result] = []
    for faults in modes:
        played = drawn if faults else drawn.without_faults()
        for name in engines:
            outcome = asyncio.run(replay(played, stage, ENGINES[name]))
            results.append(Result(index, faults, outcome))
    return results


# --- workers ---------------------------------------------------------------------------------

_stage: Stage | None = None


def _quiet() -> None:
    # The runner logs every crash and failed run it survives; thousands of them are noise here.
    logging.disable(logging.CRITICAL)


def _start_worker() -> None:
    global _stage
    _quiet()
    _stage = Stage().__enter__()


def _work(task: tuple[int, Sequence[int], Sequence[bool], Sequence[str]]) -> list[Result]:
    seed, indices, modes, engines = task
    assert _stage is not None, "the worker has no stage"
    results: list[Result] = []
    for index in indices:
        results += run_history(_stage, seed, index, modes, engines)
    return results


def _tasks(
    seed: int, count: int, modes: Sequence[bool], engines: Sequence[str]
) -> Iterator[tuple[int, Sequence[int], Sequence[bool], Sequence[str]]]:
    for start in range(0, count, CHUNK):
        yield seed, range(start, min(count, start + CHUNK)), modes, engines


def measure(
    count: int,
    *,
    seed: int = 0,
    modes: Sequence[bool] = (False, True),
    engines: Sequence[str] = tuple(ENGINES),
    workers: int = 1,
) -> list[Result]:
    """Run `count` histories through `engines` in each fault mode; results in history order."""
    if workers <= 1:
        _quiet()
        try:
            with Stage() as stage:
                results = [
                    result
                    for index in range(count)
                    for result in run_history(stage, seed, index, modes, engines)
                ]
        finally:
            # In-process (a test calling main), logging is the caller's: give it back.
            logging.disable(logging.NOTSET)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_start_worker) as pool:
            chunks = pool.imap_unordered(_work, _tasks(seed, count, modes, engines))
            results = [result for chunk in chunks for result in chunk]
    return sorted(results, key=lambda r: (r.index, not r.faults, engines.index(r.outcome.engine)))


# --- the report --------------------------------------------------------------------------------


@dataclass
class Tally:
    """One row of the table: an engine in one fault mode, over every history."""

    engine: str
    faults: bool
    histories: int = 0
    exact: int = 0
    error_total: int = 0
    error_max: int = 0
    runs: int = 0
    toggl_requests: int = 0
    exist_requests: int = 0
    wrong: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        outcome = result.outcome
        self.histories += 1
        self.exact += outcome.exact
        self.error_total += outcome.error_minutes
        self.error_max = max(self.error_max, outcome.error_minutes)
        self.runs += outcome.runs
        self.toggl_requests += outcome.toggl_requests
        self.exist_requests += outcome.exist_requests
        if not outcome.exact:
            self.wrong.append(result)

    @property
    def exact_share(self) -> float:
        return 100.0 * self.exact / self.histories if self.histories else 0.0


@dataclass
class Report:
    """Everything `main` measured, for the table and for tests."""

    count: int
    seed: int
    workers: int
    seconds: float
    results: list[Result]
    tallies: list[Tally]

    def exact_share(self, engine: str) -> float:
        """Share of exact (history, fault mode) pairs for one engine, over both modes run."""
        rows = [tally for tally in self.tallies if tally.engine == engine]
        total = sum(tally.histories for tally in rows)
        return 100.0 * sum(tally.exact for tally in rows) / total if total else 0.0

    def summary(self) -> str:
        shares = ", ".join(
            f"{engine} {self.exact_share(engine):.1f}% exact"
            for engine in dict.fromkeys(t.engine for t in self.tallies)
        )
        return f"fidelity: {shares} ({self.count} histories)"


def tally(results: Sequence[Result]) -> list[Tally]:
    rows: dict[tuple[str, bool], Tally] = {}
    for result in results:
        key = (result.outcome.engine, result.faults)
        rows.setdefault(key, Tally(*key)).add(result)
    order = list(ENGINES)
    return sorted(rows.values(), key=lambda row: (order.index(row.engine), row.faults))


def table(report: Report) -> list[str]:
    header = (
        f"{'engine':<16} {'faults':<7} {'exact':>7} {'|err| mean':>11} {'|err| max':>10} "
        f"{'toggl req/run':>14} {'exist req/run':>14} {'runs':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in report.tallies:
        runs = max(1, row.runs)
        lines.append(
            f"{row.engine:<16} {'on' if row.faults else 'off':<7} {row.exact_share:>6.1f}% "
            f"{row.error_total / max(1, row.histories):>7.1f} min {row.error_max:>6} min "
            f"{row.toggl_requests / runs:>14.2f} {row.exist_requests / runs:>14.2f} "
            f"{row.runs:>7}"
        )
    return lines


def wrong_histories(report: Report, engine: str, limit: int) -> list[str]:
    lines: list[str] = []
    for row in report.tallies:
        if row.engine != engine:
            continue
        for result in row.wrong[:limit]:
            drawn = history(report.seed, result.index)
            played = drawn if result.faults else drawn.without_faults()
            cells = [
                (a, day.isoformat(), held, want) for a, day, held, want in result.outcome.wrong
            ]
            lines += [
                f"{engine} got history {result.index} wrong "
                f"({'with' if result.faults else 'without'} faults; final run: "
                f"{result.outcome.final_outcome}); (attribute, date, Exist, truth): {cells}",
                played.describe(),
            ]
    return lines


# --- command line ------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/fidelity.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--histories", type=int, default=200, help="how many histories (200)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--faults", dest="modes", action="store_const", const=(True,), help="only with faults"
    )
    mode.add_argument(
        "--no-faults",
        dest="modes",
        action="store_const",
        const=(False,),
        help="only without faults",
    )
    parser.set_defaults(modes=(False, True))
    parser.add_argument("--seed", type=int, default=0, help="which histories (0)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (CPU count)"
    )
    parser.add_argument(
        "--show", type=int, default=3, metavar="K", help="print K histories Timebridge got wrong"
    )
    parser.add_argument(
        "--history", type=int, metavar="I", help="replay history I alone, showing every run"
    )
    args = parser.parse_args(argv)
    if args.histories < 1 or args.workers < 1:
        parser.error("--histories and --workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> Report | None:
    args = parse(argv)
    if args.history is not None:
        explain(args.seed, args.history, args.modes)
        return None
    began = time.perf_counter()
    results = measure(args.histories, seed=args.seed, modes=args.modes, workers=args.workers)
    report = Report(
        count=args.histories,
        seed=args.seed,
        workers=args.workers,
        seconds=time.perf_counter() - began,
        results=results,
        tallies=tally(results),
    )
    modes = " and ".join("with faults" if faults else "without faults" for faults in args.modes)
    print(
        f"{report.count} histories (seed {report.seed}), each {modes}, on {report.workers} "
        f"worker(s): {report.seconds:.1f} s "
        f"({1000 * report.seconds / report.count:.0f} ms per history, all engines and modes)"
    )
    print()
    for line in table(report):
        print(line)
    shown = wrong_histories(report, TimebridgeEngine.name, args.show)
    if shown:
        print()
        for line in shown:
            print(line)
    print()
    print(report.summary())
    return report


def explain(seed: int, index: int, modes: Sequence[bool]) -> None:
    """Replay one history through every engine, printing each run."""
    _quiet()
    drawn = history(seed, index)

    async def show(world: World, engine: Engine, stats: RunStats) -> None:
        print(
            f"  {engine.name}: run at {world.clock.now().isoformat()} in {stats.zone}: "
            f"{stats.outcome} (toggl {stats.toggl_requests}, exist {stats.exist_requests})"
        )

    with Stage() as stage:
        for faults in modes:
            played = drawn if faults else drawn.without_faults()
            print(played.describe())
            for name, factory in ENGINES.items():
                outcome = asyncio.run(replay(played, stage, factory, after_run=show))
                cells = [(a, d.isoformat(), held, want) for a, d, held, want in outcome.wrong]
                print(f"  {name}: {'exact' if outcome.exact else f'wrong: {cells}'}")


if __name__ == "__main__":
    main()
