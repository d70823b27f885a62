"""The planner is a pure function: importing it loads no HTTP client and no database."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("httpx", "aiohttp", "sqlalchemy", "fastapi", "timebridge.toggl", "timebridge.store")


def test_importing_the_planner_loads_no_http_and_no_database() -> None:
    code = (
        "import sys, timebridge.sync.planner, timebridge.records, timebridge.entries; "
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
