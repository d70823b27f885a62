"""The simulated Toggl counts each hourly quota from its first request, as Toggl's help says.

"The count begins when the initial request is made … After 60 minutes, the count resets"
(reference/toggl.md §3): a fixed hour from the first request, not a rolling window.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from timebridge.clock import FakeClock
from timebridge.fakes import RunningServer
from timebridge.fakes.toggl import SimUser


@pytest.fixture
def http(toggl_url: str, toggl_user: SimUser) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=toggl_url + "/", auth=(toggl_user.api_token, "api_token"), timeout=10
    ) as client:
        yield client


def quota(response: httpx.Response) -> tuple[int, int]:
    """(X-Toggl-Quota-Remaining, X-Toggl-Quota-Resets-In) of an answer."""
    headers = response.headers
    return int(headers["X-Toggl-Quota-Remaining"]), int(headers["X-Toggl-Quota-Resets-In"])


def test_the_hour_starts_with_the_first_request_and_its_end_never_moves(
    http: httpx.Client, clock: FakeClock
) -> None:
    assert quota(http.get("me")) == (29, 3600)
    clock.advance(20 * 60)
    assert quota(http.get("me")) == (28, 2400), "later requests do not push the reset back"
    for _ in range(28):
        clock.advance(60)
        assert http.get("me").status_code == 200
    clock.advance(60 * 60 - 20 * 60 - 28 * 60 - 1)  # one second before the hour ends

    refused = http.get("me")
    assert refused.status_code == 402
    assert quota(refused) == (0, 1)


def test_when_the_hour_ends_the_whole_budget_is_back(http: httpx.Client, clock: FakeClock) -> None:
    # Thirty requests spread over the hour: a rolling window would free them one at a time.
    for _ in range(30):
        assert http.get("me").status_code == 200
        clock.advance(100)
    assert http.get("me").status_code == 402
    clock.advance(3600 - 3000)

    fresh = http.get("me")
    assert fresh.status_code == 200
    assert quota(fresh) == (29, 3600), "a new hour, counted from this request"
    for _ in range(29):
        assert http.get("me").status_code == 200


def test_me_quota_reports_each_budget_without_spending_it(
    http: httpx.Client, toggl_user: SimUser, clock: FakeClock
) -> None:
    untouched = {q["organization_id"]: q for q in http.get("me/quota").json()}
    assert untouched[None] == {
        "organization_id": None,
        "remaining": 30,
        "resets_in_secs": 0,
        "total": 30,
    }
    http.get(f"workspaces/{toggl_user.default_workspace_id}/tags")
    clock.advance(600)
    after = {q["organization_id"]: q for q in http.get("me/quota").json()}
    assert after[None]["remaining"] == 30, "reading the quota does not count"
    [workspace] = [q for org, q in after.items() if org is not None]
    assert (workspace["remaining"], workspace["resets_in_secs"], workspace["total"]) == (
        599,
        3000,
        600,
    )


def test_the_admin_reset_gives_every_budget_back_at_once(
    http: httpx.Client, toggl_server: RunningServer, clock: FakeClock
) -> None:
    for _ in range(30):
        http.get("me")
    assert http.get("me").status_code == 402
    clock.advance(600)

    reset = httpx.delete(f"{toggl_server.url}/_admin/quotas")
    assert reset.json() == {"reset": True}

    again = http.get("me")
    assert again.status_code == 200
    assert quota(again) == (29, 3600)
