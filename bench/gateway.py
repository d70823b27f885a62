"""What the gateway adds to a Toggl request, against a direct call and nginx in the same run.

    python bench/gateway.py [--seconds 20] [--connections 64] [--latencies 0,20]
        [--generator auto|wrk|python] [--legs direct,timebridge,nginx]

For each upstream latency (default 0 ms and 20 ms, a network's round trip added to every answer
of the Toggl simulator) it loads one Toggl read, `GET /api/v9/workspaces/{id}/projects` (five
projects, about 1 KB), with `--connections` keep-alive connections for `--seconds`, after a
short unmeasured warm-up, three ways:

- direct: to the simulator, with the Toggl token as Basic auth;
- timebridge: through `timebridge serve` (a subprocess, a fresh data dir seeded with an account,
  its Toggl connection to the simulator and an API key; rate limit raised out of the way), as
  `/toggl-track/api/v9/…` with `Authorization: Bearer tb_…` and `Timebridge-Connection`;
- nginx: through Debian's nginx (`proxy_pass` to the simulator over keep-alive connections,
  Authorization replaced by the Toggl Basic auth, one worker process like the one uvicorn
  process of `serve`), with a config generated in a temp dir and run with `-p`/`-c`.

The load generator is `wrk` when installed (`apt-get install wrk`; a Lua `done` hook prints
the exact p50/p99 and the error counts), else a bundled asyncio client over aiohttp. It prints
requests/s, p50 and p99 latency, the p50/p99 *added* to direct, and the CPU time per request of
the process that answered (the simulator, `serve`, nginx; from /proc) for every leg, the ratios
timebridge/direct and timebridge/nginx, and the issue's goals as met or MISSED: added latency
p50 < 1 ms and p99 < 5 ms at 20 ms upstream, throughput >= 50 % of direct at 0 ms, 0 errors.
Nothing is asserted: targets live here, never in timed tests (bench/README.md).

Every process it starts (simulators, `serve`, nginx) is its own child, stopped at the end; the
simulators also stop when their standard input closes, so none outlives the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
LEGS = ("direct", "timebridge", "nginx")
#: The Toggl user every request acts for.
TOKEN = "bench-gateway-toggl-token-0123456789"
PROJECTS = ("Series", "Games", "Deep work", "Email", "Errands")
START_TIMEOUT = 30.0
#: Goals of issue 15.
GOAL_ADDED_P50_MS = 1.0
GOAL_ADDED_P99_MS = 5.0
GOAL_THROUGHPUT_SHARE = 0.5
GOAL_LATENCY_MS = 20.0


# --- the upstream: the Toggl simulator in a process of its own ---------------------------------


def serve_upstream(latency_ms: float) -> None:
    """Run in the child: the simulator with one user, no quotas (the benchmark's thousands of
    requests would spend an hour's quota in a moment), every API answer delayed; prints
    `READY <port> <workspace id>` and stops when standard input closes."""
    from timebridge.clock import SystemClock
    from timebridge.fakes import Fault, serve_in_thread
    from timebridge.fakes.toggl import TogglSimulator

    sim = TogglSimulator(SystemClock(), enforce_quotas=False)
    user = sim.add_user(api_token=TOKEN, fullname="Bench", timezone="UTC", plan="premium")
    for name in PROJECTS:
        sim.add_project(user.default_workspace_id, name, color="#06aaf5")
    if latency_ms:
        sim.faults.add(Fault(path="/api/*", latency=latency_ms / 1000))
    stop = threading.Event()

    def forget_requests() -> None:
        # The simulator records every request; nobody reads them here, and a list of a million
        # records would slow every garbage collection down.
        while not stop.wait(1.0):
            sim.clear_requests()

    threading.Thread(target=forget_requests, daemon=True).start()
    with serve_in_thread(sim.asgi_app) as server:
        print(f"READY {server.port} {user.default_workspace_id}", flush=True)
        while sys.stdin.readline():
            pass
    stop.set()


@dataclass
class Child:
    """A process the benchmark started, and how to stop it."""

    name: str
    process: subprocess.Popen[str]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass(frozen=True)
class Upstream:
    latency_ms: float
    port: int
    workspace_id: int
    pid: int | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def path(self) -> str:
        return f"api/v9/workspaces/{self.workspace_id}/projects"


def _first_line(stream: IO[str], timeout: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return None


def _environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start_upstream(latency_ms: float, children: list[Child]) -> Upstream:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway", "--serve-upstream", str(latency_ms)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_environment(),
    )
    children.append(Child(f"simulator {latency_ms:g} ms", process))
    assert process.stdout is not None
    line = _first_line(process.stdout, START_TIMEOUT)
    if line is None or not line.startswith("READY "):
        raise RuntimeError(f"the simulator did not start (said {line!r})")
    _, port, workspace = line.split()
    return Upstream(latency_ms, int(port), int(workspace), process.pid)


# --- Timebridge: `timebridge serve` with a seeded data dir --------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, child: Child, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not listen on port {port} in {timeout:g} s")


@dataclass(frozen=True)
class Seeded:
    key: str
    #: Toggl connection id per upstream latency.
    connections: dict[float, str]


async def _seed(data_dir: Path, upstreams: Sequence[Upstream]) -> Seeded:
    from timebridge.config import Settings
    from timebridge.gateway.keys import SCOPES, new_key
    from timebridge.store import open_store

    settings = Settings(data_dir=data_dir)
    async with await open_store(settings) as store:
        account = await store.accounts.create("bench@example.com", display_name="Bench")
        connections = {}
        for upstream in upstreams:
            connection = await store.toggl_connections.create(
                account.id, TOKEN, label=f"{upstream.latency_ms:g} ms", origin=upstream.origin
            )
            connections[upstream.latency_ms] = connection.id
        made = new_key()
        await store.api_keys.create(account.id, made.secret, prefix=made.prefix, scopes=SCOPES)
    return Seeded(made.secret, connections)


def start_timebridge(
    directory: Path, upstreams: Sequence[Upstream], children: list[Child]
) -> tuple[int, Seeded]:
    data_dir = directory / "timebridge"
    data_dir.mkdir()
    seeded = asyncio.run(_seed(data_dir, upstreams))
    port = free_port()
    timebridge = Path(sys.executable).with_name("timebridge")
    command = (
        [str(timebridge)]
        if timebridge.exists()
        else [sys.executable, "-c", "from timebridge.cli import main; main()"]
    )
    process = subprocess.Popen(
        [*command, "serve", "--no-scheduler", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(directory / "timebridge.log").open("w"),
        text=True,
        env=_environment(
            TIMEBRIDGE_DATA_DIR=str(data_dir),
            TIMEBRIDGE_TOGGL_BASE_URL=f"{upstreams[0].origin}/api/v9",
            # Out of the way: the per-key limit is a policy, not a cost being measured.
            TIMEBRIDGE_GATEWAY_RATE_LIMIT="100000",
            TIMEBRIDGE_DATABASE_URL="",
        ),
    )
    child = Child("timebridge serve", process)
    children.append(child)
    _wait_for_port(port, child)
    return port, seeded


# --- nginx --------------------------------------------------------------------------------------


def nginx_config(directory: Path, upstreams: Sequence[Upstream], ports: dict[float, int]) -> str:
    basic = base64.b64encode(f"{TOKEN}:api_token".encode()).decode()
    blocks = []
    for index, upstream in enumerate(upstreams):
        blocks.append(
            f"""
    upstream toggl{index} {{
        server 127.0.0.1:{upstream.port};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{ports[upstream.latency_ms]};
        location /toggl-track/ {{
            proxy_pass http://toggl{index}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:{upstream.port};
            proxy_set_header Authorization "Basic {basic}";
            proxy_set_header Cookie "";
        }}
    }}"""
        )
    temp = directory / "nginx"
    return f"""# Generated by bench/gateway.py: nginx as the reference proxy.
daemon off;
worker_processes 1;
pid {temp}/nginx.pid;
error_log {temp}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_requests 1000000;
{"".join(blocks)}
}}
"""


def start_nginx(
    directory: Path, upstreams: Sequence[Upstream], children: list[Child]
) -> dict[float, int] | None:
    binary = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )
    if binary is None:
        return None
    temp = directory / "nginx"
    temp.mkdir()
    # Its worker drops to an unprivileged user when started as root: it must reach the dir.
    directory.chmod(0o755)
    temp.chmod(0o777)
    ports = {upstream.latency_ms: free_port() for upstream in upstreams}
    config = temp / "nginx.conf"
    config.write_text(nginx_config(directory, upstreams, ports))
    process = subprocess.Popen(
        [binary, "-p", str(temp), "-c", str(config), "-e", str(temp / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    child = Child("nginx", process)
    children.append(child)
    for port in ports.values():
        _wait_for_port(port, child)
    return ports


# --- load ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What one leg's load generator asks for."""

    leg: str
    url: str
    headers: dict[str, str]
    #: The process that answers it (the simulator, `serve`, nginx's master), whose CPU time
    #: (its children's included) is measured.
    pid: int | None = None


@dataclass
class Measured:
    leg: str
    latency_ms: float
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    generator: str
    #: Filled in once direct is known: p50/p99 minus direct's at the same upstream latency.
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    #: CPU time the answering process (and its children) spent per request, if measured.
    cpu_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(
    target: Target, connections: int, seconds: float, threads: int, script: Path
) -> Measured:
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, math.ceil(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    for name, value in target.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(target.url)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next(
        (line for line in finished.stdout.splitlines() if line.startswith("WRKJSON ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk said nothing usable: {finished.stdout}{finished.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(data[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return Measured(
        leg=target.leg,
        latency_ms=0.0,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        generator="wrk",
    )


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def _python_load(target: Target, connections: int, seconds: float) -> Measured:
    import aiohttp

    tally = _Tally()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        deadline = began + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    async with session.get(target.url, headers=target.headers) as answer:
                        await answer.read()
                        ok = answer.status < 400
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    tally.latencies.append(time.perf_counter() - start)
                else:
                    tally.errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    ordered = sorted(tally.latencies) or [0.0]
    return Measured(
        leg=target.leg,
        latency_ms=0.0,
        requests=len(tally.latencies) + tally.errors,
        seconds=elapsed,
        errors=tally.errors,
        p50_ms=_percentile(ordered, 50) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        generator="python",
    )


def _percentile(ordered: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def run_python(target: Target, connections: int, seconds: float) -> Measured:
    return asyncio.run(_python_load(target, connections, seconds))


@dataclass
class Options:
    seconds: float
    connections: int
    threads: int
    generator: str
    warmup: float
    script: Path | None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its descendants, from /proc (None elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending, seen = 0.0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            if current == pid:
                return None
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in tasks:
            with contextlib.suppress(OSError):
                pending += [int(child) for child in (task / "children").read_text().split()]
    return total


def measure(target: Target, latency_ms: float, options: Options) -> Measured:
    """Warm up (unmeasured), then load the target for the measured seconds."""

    def once(seconds: float) -> Measured:
        if options.generator == "wrk":
            assert options.script is not None
            return run_wrk(target, options.connections, seconds, options.threads, options.script)
        return run_python(target, options.connections, seconds)

    if options.warmup:
        once(options.warmup)
    before = cpu_seconds(target.pid) if target.pid is not None else None
    result = once(options.seconds)
    after = cpu_seconds(target.pid) if target.pid is not None else None
    result.latency_ms = latency_ms
    if before is not None and after is not None and result.requests:
        result.cpu_ms = (after - before) * 1000 / result.requests
    return result


# --- the report ---------------------------------------------------------------------------------


@dataclass
class Report:
    results: list[Measured]
    generator: str
    skipped: dict[str, str] = field(default_factory=dict)

    def get(self, leg: str, latency_ms: float) -> Measured | None:
        return next((r for r in self.results if r.leg == leg and r.latency_ms == latency_ms), None)

    def ratio(self, leg: str, other: str, latency_ms: float) -> float | None:
        mine, theirs = self.get(leg, latency_ms), self.get(other, latency_ms)
        if mine is None or theirs is None or not theirs.rate:
            return None
        return mine.rate / theirs.rate

    def goals(self) -> list[tuple[str, bool | None]]:
        """(goal, met) for each of the issue's goals; None when it was not measured."""
        at_20 = self.get("timebridge", GOAL_LATENCY_MS)
        share = self.ratio("timebridge", "direct", 0.0)
        measured = [r for r in self.results if r.leg == "timebridge"]
        return [
            (
                f"added latency p50 < {GOAL_ADDED_P50_MS:g} ms at {GOAL_LATENCY_MS:g} ms upstream",
                None
                if at_20 is None or at_20.added_p50_ms is None
                else at_20.added_p50_ms < GOAL_ADDED_P50_MS,
            ),
            (
                f"added latency p99 < {GOAL_ADDED_P99_MS:g} ms at {GOAL_LATENCY_MS:g} ms upstream",
                None
                if at_20 is None or at_20.added_p99_ms is None
                else at_20.added_p99_ms < GOAL_ADDED_P99_MS,
            ),
            (
                f"throughput >= {GOAL_THROUGHPUT_SHARE:.0%} of direct at 0 ms upstream",
                None if share is None else share >= GOAL_THROUGHPUT_SHARE,
            ),
            ("0 errors", None if not measured else all(r.errors == 0 for r in self.results)),
        ]


def _added(report: Report) -> None:
    for result in report.results:
        direct = report.get("direct", result.latency_ms)
        if direct is not None:
            result.added_p50_ms = result.p50_ms - direct.p50_ms
            result.added_p99_ms = result.p99_ms - direct.p99_ms


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def print_report(report: Report, options: Options) -> None:
    print(
        f"gateway benchmark: {options.connections} connections, {options.seconds:g} s per leg "
        f"(after {options.warmup:g} s warm-up), load from {report.generator}, "
        f"GET /api/v9/workspaces/{{id}}/projects"
    )
    header = (
        f"{'upstream':>8}  {'leg':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'+p50 ms':>8} {'+p99 ms':>8} {'errors':>7} {'cpu ms/req':>10}"
    )
    print(header)
    print("-" * len(header))
    for result in report.results:
        print(
            f"{result.latency_ms:>6g}ms  {result.leg:<10} {result.rate:>9.0f} "
            f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {_ms(result.added_p50_ms):>8} "
            f"{_ms(result.added_p99_ms):>8} {result.errors:>7} "
            f"{'-' if result.cpu_ms is None else f'{result.cpu_ms:.3f}':>10}"
        )
    for leg, reason in report.skipped.items():
        print(f"(no {leg} leg: {reason})")
    latencies = sorted({result.latency_ms for result in report.results})
    for latency in latencies:
        parts = []
        for other in ("direct", "nginx"):
            ratio = report.ratio("timebridge", other, latency)
            if ratio is not None:
                parts.append(f"timebridge/{other} {ratio:.2f}")
        if parts:
            print(f"ratios at {latency:g} ms upstream (req/s): " + ", ".join(parts))
    for goal, met in report.goals():
        verdict = "not measured" if met is None else "met" if met else "MISSED"
        print(f"goal: {goal}: {verdict}")


# --- the run ------------------------------------------------------------------------------------


def _generator(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), use --generator python")
    return choice


def run(options: Options, latencies: Sequence[float], legs: Sequence[str]) -> Report:
    report = Report([], options.generator)
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="tb-gateway-bench-") as temp:
        directory = Path(temp)
        try:
            if options.generator == "wrk":
                options.script = directory / "report.lua"
                options.script.write_text(WRK_SCRIPT)
            upstreams = [start_upstream(latency, children) for latency in latencies]
            targets: dict[float, list[Target]] = {u.latency_ms: [] for u in upstreams}
            basic = base64.b64encode(f"{TOKEN}:api_token".encode()).decode()
            for upstream in upstreams:
                if "direct" in legs:
                    targets[upstream.latency_ms].append(
                        Target(
                            "direct",
                            f"{upstream.origin}/{upstream.path}",
                            {"Authorization": f"Basic {basic}"},
                            upstream.pid,
                        )
                    )
            if "timebridge" in legs:
                port, seeded = start_timebridge(directory, upstreams, children)
                serve_pid = children[-1].process.pid
                for upstream in upstreams:
                    targets[upstream.latency_ms].append(
                        Target(
                            "timebridge",
                            f"http://127.0.0.1:{port}/toggl-track/{upstream.path}",
                            {
                                "Authorization": f"Bearer {seeded.key}",
                                "Timebridge-Connection": seeded.connections[upstream.latency_ms],
                            },
                            serve_pid,
                        )
                    )
            if "nginx" in legs:
                ports = start_nginx(directory, upstreams, children)
                if ports is None:
                    report.skipped["nginx"] = "nginx is not installed (apt-get install nginx)"
                else:
                    nginx_pid = children[-1].process.pid
                    for upstream in upstreams:
                        targets[upstream.latency_ms].append(
                            Target(
                                "nginx",
                                f"http://127.0.0.1:{ports[upstream.latency_ms]}/toggl-track/"
                                f"{upstream.path}",
                                {"Authorization": "Bearer not-checked-by-nginx"},
                                nginx_pid,
                            )
                        )
            for latency, leg_targets in targets.items():
                for target in leg_targets:
                    print(f"  {target.leg} at {latency:g} ms…", file=sys.stderr, flush=True)
                    report.results.append(measure(target, latency, options))
        finally:
            for child in reversed(children):
                child.stop()
    _added(report)
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="python bench/gateway.py", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per leg")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--latencies", default="0,20", help="upstream latencies in ms")
    parser.add_argument("--legs", default=",".join(LEGS))
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--warmup", type=float, default=None, help="unmeasured seconds first (default 2)"
    )
    parser.add_argument("--serve-upstream", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream is not None:
        serve_upstream(args.serve_upstream)
        raise SystemExit(0)
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = set(legs) - set(LEGS)
    if unknown:
        parser.error(f"unknown legs {sorted(unknown)}; known: {', '.join(LEGS)}")
    latencies = [float(value) for value in args.latencies.split(",") if value.strip()]
    generator = _generator(args.generator)
    warmup = args.warmup if args.warmup is not None else (2.0 if args.seconds >= 5 else 1.0)
    options = Options(args.seconds, args.connections, args.threads, generator, warmup, None)
    report = run(options, latencies, legs)
    print_report(report, options)
    return report


if __name__ == "__main__":
    main()
