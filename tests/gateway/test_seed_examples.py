"""The seed gateway's own Python examples, copied verbatim, run against Timebridge with only the
base URL (`https://api.maton.ai` → the served gateway) and the key (`MATON_API_KEY`) replaced —
and the `{connection_id}` placeholder filled in, as its reader would."""

from __future__ import annotations

import json

import pytest

from tests.gateway.conftest import World
from timebridge.fakes.toggl import SimUser

ME = """
import urllib.request, os, json
req = urllib.request.Request('https://api.maton.ai/toggl-track/api/v9/me')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

LIST_CONNECTIONS = """
import urllib.request, os, json
req = urllib.request.Request('https://api.maton.ai/connections?app=toggl-track&status=ACTIVE')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

CREATE_CONNECTION = """
import urllib.request, os, json
data = json.dumps({'app': 'toggl-track'}).encode()
req = urllib.request.Request('https://api.maton.ai/connections', data=data, method='POST')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
req.add_header('Content-Type', 'application/json')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

GET_CONNECTION = """
import urllib.request, os, json
req = urllib.request.Request('https://api.maton.ai/connections/{connection_id}')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

DELETE_CONNECTION = """
import urllib.request, os, json
req = urllib.request.Request('https://api.maton.ai/connections/{connection_id}', method='DELETE')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

SPECIFY_CONNECTION = """
import urllib.request, os, json
req = urllib.request.Request('https://api.maton.ai/toggl-track/api/v9/me')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
req.add_header('Maton-Connection', '{connection_id}')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

TROUBLESHOOTING = """
import urllib.request, os, json
req = urllib.request.Request('https://api.maton.ai/connections')
req.add_header('Authorization', f'Bearer {os.environ["MATON_API_KEY"]}')
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
"""

REQUESTS_TIME_ENTRIES = """
import os
import requests

response = requests.get(
    'https://api.maton.ai/toggl-track/api/v9/me/time_entries',
    headers={'Authorization': f'Bearer {os.environ["MATON_API_KEY"]}'}
)
time_entries = response.json()
print(json.dumps(time_entries))
"""


def run_example(
    code: str, gateway: str, capsys: pytest.CaptureFixture[str], connection_id: str = ""
) -> object:
    code = code.replace("https://api.maton.ai", gateway).replace("{connection_id}", connection_id)
    exec(compile(code, "<seed example>", "exec"), {"json": json})
    return json.loads(capsys.readouterr().out)


def test_the_seeds_examples_run_unchanged(
    world: World,
    gateway: str,
    alice: SimUser,
    bob: SimUser,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = world.account("a@example.com")
    alices = world.connection(account, alice)
    bobs = world.connection(account, bob)
    monkeypatch.setenv("MATON_API_KEY", world.key(account))

    me = run_example(ME, gateway, capsys)
    assert isinstance(me, dict) and me["id"] == alice.id and "api_token" not in me

    listed = run_example(LIST_CONNECTIONS, gateway, capsys)
    assert isinstance(listed, dict)
    assert [c["connection_id"] for c in listed["connections"]] == [alices, bobs]

    created = run_example(CREATE_CONNECTION, gateway, capsys)
    assert isinstance(created, dict)
    new = created["connection"]["connection_id"]
    assert created["connection"]["status"] == "PENDING"
    assert created["connection"]["url"].endswith(f"/connect/toggl?connection={new}")

    got = run_example(GET_CONNECTION, gateway, capsys, new)
    assert got == created

    chosen = run_example(SPECIFY_CONNECTION, gateway, capsys, bobs)
    assert isinstance(chosen, dict) and chosen["id"] == bob.id

    deleted = run_example(DELETE_CONNECTION, gateway, capsys, new)
    assert isinstance(deleted, dict) and deleted["connection"]["connection_id"] == new
    everything = run_example(TROUBLESHOOTING, gateway, capsys)
    assert isinstance(everything, dict)
    assert [c["connection_id"] for c in everything["connections"]] == [alices, bobs]

    entries = run_example(REQUESTS_TIME_ENTRIES, gateway, capsys)
    assert entries == []


def test_the_seeds_error_table(
    world: World, gateway: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """400 for a missing connection, 401 for a bad key, as the seed's table says."""
    import urllib.error

    monkeypatch.setenv("MATON_API_KEY", world.key(world.account("a@example.com")))
    with pytest.raises(urllib.error.HTTPError) as missing:
        run_example(ME, gateway, capsys)
    assert missing.value.code == 400
    monkeypatch.setenv("MATON_API_KEY", "not-a-key")
    with pytest.raises(urllib.error.HTTPError) as bad:
        run_example(ME, gateway, capsys)
    assert bad.value.code == 401
    assert json.loads(bad.value.read())["error"]["code"] == "unauthorized"
