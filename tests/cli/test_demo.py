"""`timebridge demo`: a fresh machine's first look at the bridge works end to end, and the
edges a new user hits (a busy port, Ctrl+C, the temporary directory) end cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner, Result

from timebridge import metrics
from timebridge.cli import app
from timebridge.exist import ExistClient

#: The demo Exist user's zone, which defines its days.
DEMO_ZONE = ZoneInfo("Europe/Berlin")
#: A schedule that never fires during a test (the service would otherwise sync at :40).
NEVER = "0 3 29 2 *"
#: `timebridge` in a process of its own, as a user runs it.
TIMEBRIDGE = [sys.executable, "-c", "from timebridge.cli import main; main()"]


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the demo makes its temporary directory: empty again once the demo has ended."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def run_demo(*args: str) -> Result:
    return CliRunner().invoke(app, ["demo", *args])


def data_directory(output: str) -> Path:
    found = re.search(r"Data directory:\s+(\S+)", output)
    assert found is not None, output
    return Path(found.group(1))


def printed_requests(output: str) -> dict[str, int]:
    found = re.search(r"Requests to the simulators so far: Toggl (\d+), Exist (\d+)", output)
    assert found is not None, output
    return {"toggl": int(found.group(1)), "exist": int(found.group(2))}


def test_demo_connects_syncs_and_shows_what_exist_holds_today_marked(temp_root: Path) -> None:
    counted_before = dict(metrics.upstream_request_counts())
    today_before = datetime.now(DEMO_ZONE).date()
    result = run_demo("--once", "--free-ports")
    today_after = datetime.now(DEMO_ZONE).date()
    assert result.exit_code == 0, result.output
    assert "First sync: succeeded" in result.stdout
    written = re.search(r"(\d+) values written to Exist", result.stdout)
    assert written is not None
    # 6 mapped projects × 13 past days at least (today's depend on the hour of the run).
    assert 78 <= int(written.group(1)) <= 84
    for attribute in ("tv_min", "movies_min", "gaming_min", "productive_min", "neutral_min"):
        assert attribute in result.stdout

    # Today is marked in the table's header, once, and named below it.
    header = next(line for line in result.stdout.splitlines() if "Attribute" in line)
    today_columns = re.findall(r"\w{3} (\d{4}-\d{2}-\d{2}) \(today\)", header)
    assert len(today_columns) == 1, header
    assert today_columns[0] in {today_before.isoformat(), today_after.isoformat()}
    assert f"{today_columns[0]} in Europe/Berlin" in result.stdout

    # The requests the demo says it made are the ones /metrics counted meanwhile.
    counted_after = metrics.upstream_request_counts()
    counted = {
        service: counted_after.get(service, 0) - counted_before.get(service, 0)
        for service in ("toggl", "exist")
    }
    assert printed_requests(result.stdout) == counted
    assert counted["toggl"] >= 1 and counted["exist"] >= 1

    # The temporary data directory is gone.
    assert data_directory(result.stdout).parent == temp_root
    assert list(temp_root.iterdir()) == []


def test_a_given_data_directory_is_made_private_and_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "demo"
    result = run_demo("--once", "--free-ports", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data_dir / "secret-keys").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data_dir / "timebridge.db").st_mode) == 0o600


def test_keep_keeps_the_temporary_directory_and_says_where(temp_root: Path) -> None:
    result = run_demo("--once", "--free-ports", "--keep")
    assert result.exit_code == 0, result.output
    kept = re.search(r"Kept the demo's data directory: (\S+)", result.stdout)
    assert kept is not None, result.stdout
    assert Path(kept.group(1)) == data_directory(result.stdout)
    assert (Path(kept.group(1)) / "timebridge.db").exists()


@pytest.mark.parametrize(
    ("option", "role"),
    [
        ("--port", "the Timebridge service"),
        ("--toggl-port", "the Toggl Track simulator"),
        ("--exist-port", "the Exist simulator"),
    ],
)
def test_a_busy_port_is_named_with_the_option_that_moves_it(
    option: str, role: str, busy_port: int, temp_root: Path
) -> None:
    ports = {"--port": "0", "--toggl-port": "0", "--exist-port": "0", option: str(busy_port)}
    result = run_demo("--once", *(item for pair in ports.items() for item in pair))
    assert result.exit_code == 2, result.output
    assert f"port {busy_port} ({role}) is in use by another program" in result.output
    assert f"choose another with {option} N" in result.output
    assert "--free-ports" in result.output
    assert "Traceback" not in result.output
    assert list(temp_root.iterdir()) == [], "nothing is started or made before the check"


def test_one_port_given_twice_is_refused_before_anything_starts(temp_root: Path) -> None:
    result = run_demo("--once", "--port", "0", "--toggl-port", "18181", "--exist-port", "18181")
    assert result.exit_code == 2, result.output
    assert "port 18181 is given twice" in result.output
    assert "--exist-port" in result.output
    assert list(temp_root.iterdir()) == []


class _Lines:
    """A process's stdout, line by line, without blocking past a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                self._lines.put(line)
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, needle: str, timeout: float = 120) -> str:
        """The first line holding `needle`."""
        while True:
            line = self._lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"ended before {needle!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if needle in line:
                return line

    def rest(self, timeout: float = 60) -> str:
        """Every line from here to the end of the output."""
        lines: list[str] = []
        while (line := self._lines.get(timeout=timeout)) is not None:
            lines.append(line)
        self.seen.extend(lines)
        return "".join(lines)


def _metrics_by_service(text: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for service, value in re.findall(
        r'^timebridge_upstream_requests_total\{service="(\w+)",status="[^"]*"\} (\S+)$',
        text,
        re.MULTILINE,
    ):
        totals[service] = totals.get(service, 0) + int(float(value))
    return totals


def test_serving_demo_agrees_with_its_metrics_and_ctrl_c_removes_its_directory(
    tmp_path: Path,
) -> None:
    environment = {**os.environ, "TMPDIR": str(tmp_path), "TIMEBRIDGE_SYNC_CRON": NEVER}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as errors_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from timebridge.cli import main; main()",
                "demo",
                "--free-ports",
            ],
            stdout=subprocess.PIPE,
            stderr=errors_file,
            text=True,
            env=environment,
        )
    try:
        lines = _Lines(process)
        serving = lines.until("Timebridge is serving on")
        output = "".join(lines.seen)
        directory = data_directory(output)
        assert directory.is_dir()
        url = re.search(r"serving on (http://\S+)", serving)
        assert url is not None
        # Then the demo turns webhooks on, and says what subscribing cost.
        subscribed = re.search(
            r"subscribing took Toggl (\d+), Exist (\d+) requests", lines.until("Webhooks are on")
        )
        assert subscribed is not None
        response = httpx.get(f"{url.group(1)}/metrics", timeout=30)
        assert response.status_code == 200
        before = printed_requests(output)
        assert _metrics_by_service(response.text) == {
            "toggl": before["toggl"] + int(subscribed.group(1)),
            "exist": before["exist"] + int(subscribed.group(2)),
        }
        process.send_signal(signal.SIGINT)  # Ctrl+C
        rest = lines.rest()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    errors = stderr.read_text()
    assert process.returncode == 0, errors
    assert "Stopped." in rest
    assert "Traceback" not in errors
    assert not directory.exists()


def _exported(line: str) -> dict[str, str]:
    """The variables of a printed `export A=x B=y` line."""
    assert line.strip().startswith("export "), line
    return dict(item.split("=", 1) for item in line.split()[1:])


def _tv_minutes(exist: ExistClient, days: int = 3) -> int:
    """The demo Exist user's tv_min over the last `days` days, in all."""
    [attribute] = exist.all_attributes_with_values(days=days, names=["tv_min"])
    return sum(int(item.value or 0) for item in attribute.values if item.value is not None)


def test_a_toggl_entry_reaches_exist_within_seconds_through_the_demos_webhooks(
    tmp_path: Path,
) -> None:
    """Webhooks are on in the serving demo: an entry added with the command it prints shows
    in Exist without any scheduled run (the schedule never comes here)."""
    environment = {**os.environ, "TMPDIR": str(tmp_path), "TIMEBRIDGE_SYNC_CRON": NEVER}
    environment.pop("TIMEBRIDGE_CONFIG", None)
    with (tmp_path / "stderr.txt").open("w") as errors_file:
        process = subprocess.Popen(
            [*TIMEBRIDGE, "demo", "--free-ports"],
            stdout=subprocess.PIPE,
            stderr=errors_file,
            text=True,
            env=environment,
        )
    try:
        lines = _Lines(process)
        lines.until("Webhooks are on")
        exports = _exported(lines.until("export TIMEBRIDGE_CONFIG="))
        start_line = lines.until("timebridge toggl entries start")
        project = re.search(r"--project (\d+)", start_line)
        assert project is not None, start_line
        with ExistClient(exports["EXIST_TOKEN"], base_url=exports["EXIST_BASE_URL"]) as exist:
            before = _tv_minutes(exist)
            started = datetime.now(UTC) - timedelta(minutes=40)
            added = subprocess.run(
                [
                    *TIMEBRIDGE,
                    "toggl",
                    "entries",
                    "add",
                    "--start",
                    started.isoformat(timespec="seconds"),
                    "--duration",
                    "30m",
                    "--project",
                    project.group(1),
                    "--yes",
                ],
                capture_output=True,
                text=True,
                env={**environment, **exports},
                timeout=60,
            )
            assert added.returncode == 0, added.stderr
            deadline = time.monotonic() + 15
            while (now := _tv_minutes(exist)) != before + 30:
                assert time.monotonic() < deadline, f"Exist holds {now}, not {before} + 30"
                time.sleep(0.25)
        process.send_signal(signal.SIGINT)
        lines.rest()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()
