"""`timebridge keys …` against the store the served gateway uses: a key made on the command line
works at once, a revoked one stops working, and writes show in `keys audit`."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from tests.gateway.conftest import World
from timebridge.cli import app
from timebridge.fakes.toggl import SimUser


def test_create_list_use_audit_revoke(
    world: World, gateway: str, alice: SimUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMEBRIDGE_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("TIMEBRIDGE_TOGGL_BASE_URL", world.settings.toggl_base_url)
    account = world.account("a@example.com")
    world.connection(account, alice)
    runner = CliRunner()

    made = runner.invoke(app, ["keys", "create", "--name", "script", "--json"])
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    key = created["key"]
    assert key.startswith("tb_") and created["account"] == account
    assert "shown only now" in made.stderr

    read_only = runner.invoke(app, ["keys", "create", "-s", "proxy:read"])
    assert read_only.exit_code == 0
    assert read_only.stdout.strip().startswith("tb_")
    bad = runner.invoke(app, ["keys", "create", "-s", "proxy:admin"])
    assert bad.exit_code == 2 and "unknown scope" in bad.stderr

    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert [k["prefix"] for k in listed][::-1] == [key[:11], read_only.stdout.strip()[:11]]
    assert key not in json.dumps(listed)
    table = runner.invoke(app, ["keys", "list"])
    assert table.exit_code == 0 and key[:11] in table.stdout and key not in table.stdout

    headers = {"Authorization": f"Bearer {key}"}
    tags = f"{gateway}/toggl-track/api/v9/workspaces/{alice.default_workspace_id}/tags"
    assert httpx.post(tags, headers=headers, json={"name": "cli"}).status_code == 200

    audit = json.loads(runner.invoke(app, ["keys", "audit", "--json"]).stdout)
    assert [(a["method"], a["status"], a["key_prefix"]) for a in audit] == [("POST", 200, key[:11])]

    revoked = runner.invoke(app, ["keys", "revoke", key[:11]])
    assert revoked.exit_code == 0, revoked.output
    assert httpx.get(tags, headers=headers).status_code == 401
    missing = runner.invoke(app, ["keys", "revoke", "999999"])
    assert missing.exit_code == 5
