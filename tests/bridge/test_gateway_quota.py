"""The bridge's requests and the gateway's spend one Toggl quota: a sync that meets a spent
quota spares the gateway's callers the 402 too (they get a local 429 until the reset)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.jobs.test_tasks import World
from tests.web.test_app import running
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes import Fault
from timebridge.fakes.toggl import TogglSimulator
from timebridge.gateway.keys import new_key
from timebridge.retry import RetryPolicy
from timebridge.store import Store
from timebridge.sync.runner import RunOutcome
from timebridge.web import create_app, service_state


async def test_a_sync_that_meets_a_spent_quota_guards_the_gateway_too(
    world: World, store: Store, clock: FakeClock, toggl_sim: TogglSimulator, tmp_path: Path
) -> None:
    alice = await world.connect("alice")
    made = new_key()
    await store.api_keys.create(alice, made.secret, prefix=made.prefix, scopes=["proxy:read"])
    app = create_app(
        Settings(data_dir=tmp_path), store=store, run_scheduler=False, clock=clock,
        retry=RetryPolicy.testing(),
    )  # fmt: skip
    toggl_sim.faults.add(
        Fault(
            path="/api/v9/me/time_entries",
            status=402,
            body='"quota"',
            headers={"X-Toggl-Quota-Resets-In": "900", "X-Toggl-Quota-Remaining": "0"},
            times=1,
        )
    )
    async with running(app) as client:
        bridge = service_state(app).bridge
        assert bridge is not None
        report = await bridge.sync(alice)
        assert getattr(report, "outcome", None) is RunOutcome.QUOTA_EXCEEDED
        toggl_sim.clear_requests()

        answer = await client.get(
            "/toggl-track/api/v9/me", headers={"Authorization": f"Bearer {made.secret}"}
        )

    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "quota_exhausted"
    assert 850 <= int(answer.headers["Retry-After"]) <= 900
    assert toggl_sim.requests == [], "nothing spent upstream"


async def test_without_a_spent_quota_the_gateway_passes_through(
    world: World, store: Store, clock: FakeClock, toggl_sim: TogglSimulator, tmp_path: Path
) -> None:
    alice = await world.connect("alice")
    made = new_key()
    await store.api_keys.create(alice, made.secret, prefix=made.prefix, scopes=["proxy:read"])
    app = create_app(
        Settings(data_dir=tmp_path), store=store, run_scheduler=False, clock=clock,
        retry=RetryPolicy.testing(),
    )  # fmt: skip
    async with running(app) as client:
        bridge = service_state(app).bridge
        assert bridge is not None
        await bridge.sync(alice)
        answer = await client.get(
            "/toggl-track/api/v9/me", headers={"Authorization": f"Bearer {made.secret}"}
        )
    assert answer.status_code == 200
    assert isinstance(answer.json(), dict)
    assert httpx.codes.is_success(answer.status_code)
