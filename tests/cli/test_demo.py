"""`timebridge demo --once`: a fresh machine's first look at the bridge works end to end."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from typer.testing import CliRunner

from timebridge.cli import app


def test_demo_connects_syncs_and_shows_what_exist_holds(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--once", "--toggl-port", "0", "--exist-port", "0", "--data-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "First sync: succeeded" in result.stdout
    written = re.search(r"(\d+) values written to Exist", result.stdout)
    assert written is not None
    # 6 mapped projects × 13 past days at least (today's depend on the hour of the run).
    assert 78 <= int(written.group(1)) <= 84
    for attribute in ("tv_min", "movies_min", "gaming_min", "productive_min", "neutral_min"):
        assert attribute in result.stdout
    assert stat.S_IMODE(os.stat(tmp_path / "secret-keys").st_mode) == 0o600
    assert (tmp_path / "timebridge.db").exists()
