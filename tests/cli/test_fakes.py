"""`timebridge fakes …` as a user runs it: both simulators in one process, stopped by Ctrl+C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from timebridge.cli import app

TIMEBRIDGE = str(Path(sys.executable).with_name("timebridge"))


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TIMEBRIDGE, "fakes", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def both() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`timebridge fakes both` on free ports, and the lines it printed up to "Ctrl+C"."""
    process = _start("both", "--toggl-port", "0", "--exist-port", "0")
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl+C"):
                break
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _url(lines: list[str], label: str) -> str:
    match = next(re.match(rf"{label}: (\S+)$", line.strip()) for line in lines if label in line)
    assert match is not None
    return match[1]


def test_both_simulators_serve_until_ctrl_c(
    both: tuple[subprocess.Popen[str], list[str]],
) -> None:
    process, lines = both
    toggl = _url(lines, "Toggl Track simulator")
    exist = _url(lines, "Exist simulator")
    assert toggl.endswith("/api/v9") and exist.endswith("/api/2")
    me = httpx.get(f"{toggl}/me", auth=("demo-toggl-token", "api_token"))
    assert me.status_code == 200
    profile = httpx.get(
        f"{exist}/accounts/profile/", headers={"Authorization": "Bearer demo-exist-token"}
    )
    assert profile.status_code == 200
    assert any("/_admin/quotas" in line for line in lines)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "Stopped." in out
    assert "Traceback" not in err
    for url in (toggl, exist):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)


@pytest.mark.parametrize("option", ["--toggl-port", "--exist-port"])
def test_a_busy_port_is_named_with_the_option_that_picks_another(option: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        other = "--exist-port" if option == "--toggl-port" else "--toggl-port"
        process = _start("both", option, port, other, "0")
        _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert f"{option} PORT" in err
    assert "Traceback" not in err


def test_toggl_help_says_how_to_reset_the_quotas() -> None:
    result = CliRunner().invoke(app, ["fakes", "toggl", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "30 user-scoped requests an hour" in text
    assert "curl -X DELETE http://127.0.0.1:8181/_admin/quotas" in text


def test_one_port_for_both_simulators_is_refused() -> None:
    result = CliRunner().invoke(
        app, ["fakes", "both", "--toggl-port", "8999", "--exist-port", "8999"]
    )
    assert result.exit_code == 2
    assert "give two ports" in result.stderr
