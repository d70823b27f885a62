"""Writing values against the simulator: update vs increment, batches, per-item failures."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import httpx
import pytest

from timebridge.exist import (
    AcquireItem,
    AsyncExistClient,
    ExistClient,
    IncrementItem,
    ServerError,
    UpdateItem,
)
from timebridge.fakes.exist import ExistSimulator, SimUser
from timebridge.retry import RetryPolicy

DAY = date(2026, 3, 9)


@pytest.fixture
def owned(exist: ExistClient) -> ExistClient:
    """The client owns tv_min and productive_min."""
    assert exist.acquire(
        [AcquireItem(template="tv_min"), AcquireItem(template="productive_min")]
    ).ok
    return exist


def test_update_sets_the_days_total_and_is_idempotent(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    for _ in range(2):
        result = owned.update([UpdateItem(name="tv_min", date=DAY, value=90)])
        assert result.ok
    owned.update([UpdateItem(name="tv_min", date=DAY, value=30)])
    assert exist_sim.stored_values(user.username, "tv_min") == {DAY: 30}


def test_increment_adds_to_the_day_and_reports_the_new_total(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    owned.update([UpdateItem(name="tv_min", date=DAY, value=30)])
    result = owned.increment([IncrementItem(name="tv_min", date=DAY, value=15)])
    assert [s.current for s in result.succeeded] == [45]
    again = owned.increment([IncrementItem(name="tv_min", date=DAY, value=15)])
    assert [s.current for s in again.succeeded] == [60]
    assert exist_sim.stored_values(user.username, "tv_min") == {DAY: 60}


def test_increment_without_a_date_counts_on_the_users_today(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    # The fixed clock says 2026-03-10 12:00 UTC, 13:00 in Berlin.
    owned.increment([IncrementItem(name="tv_min", value=5)])
    assert exist_sim.stored_values(user.username, "tv_min") == {date(2026, 3, 10): 5}


def test_negative_increment_is_refused_and_the_rest_of_the_batch_goes_through(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    owned.update([UpdateItem(name="tv_min", date=DAY, value=30)])
    negative = IncrementItem(name="tv_min", date=DAY, value=-10)
    positive = IncrementItem(name="productive_min", date=DAY, value=10)
    result = owned.increment([negative, positive])
    assert [s.item for s in result.succeeded] == [positive]
    [failure] = result.failed
    assert failure.item == negative
    assert failure.error_code == "validation"
    assert exist_sim.stored_values(user.username, "tv_min") == {DAY: 30}


def test_eighty_items_go_as_three_batches_and_merge_into_one_result(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    items = [UpdateItem(name="tv_min", date=DAY - timedelta(days=n), value=n) for n in range(80)]
    exist_sim.clear_requests()
    sent_before = owned.requests_sent
    result = owned.update(items)
    assert result.ok
    assert owned.requests_sent - sent_before == 3
    assert [s.item for s in result.succeeded] == items
    batches = exist_sim.requests_to("attributes/update/")
    assert [(r.items, r.status) for r in batches] == [(35, 200), (35, 200), (10, 200)]
    assert len(exist_sim.stored_values(user.username, "tv_min")) == 80


def test_a_202_reports_each_failed_item_with_its_code_and_original(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="gaming_min", owner="steam")
    good = [UpdateItem(name="tv_min", date=DAY - timedelta(days=n), value=n) for n in range(40)]
    not_ours = UpdateItem(name="gaming_min", date=DAY, value=20)
    missing = UpdateItem(name="no_such_thing", date=DAY, value=1)
    items = [*good[:20], not_ours, *good[20:], missing]
    exist_sim.clear_requests()
    result = owned.update(items)
    assert not result.ok
    assert [s.item for s in result.succeeded] == good
    assert [(f.item, f.error_code) for f in result.failed] == [
        (not_ours, "unauthorised"),
        (missing, "not_found"),
    ]
    assert "does not belong to this service" in result.failed[0].error
    assert [r.status for r in exist_sim.requests_to("attributes/update/")] == [202, 202]
    assert result.failed_with("unauthorised")[0].item == not_ours
    assert DAY not in exist_sim.stored_values(user.username, "gaming_min")


def test_only_the_owner_may_write(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute(user.username, template="productive_min", owner="rescuetime")
    item = UpdateItem(name="productive_min", date=DAY, value=10)
    [failure] = exist.update([item]).failed
    assert failure.error_code == "unauthorised"
    # Re-acquire and retry, as the bridge does after an ownership failure.
    assert exist.acquire([AcquireItem(template="productive_min")]).ok
    assert exist.update([item]).ok


def test_floats_for_minutes_are_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        UpdateItem(name="tv_min", date=DAY, value=12.5)
    with pytest.raises(ValueError, match="whole"):
        IncrementItem(name="gaming_min", value=1.0)
    with pytest.raises(ValueError, match="not a datetime"):
        UpdateItem(name="tv_min", date=datetime(2026, 3, 9, 12), value=1)


def _raw(api_url: str, token: str, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{api_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"})


def test_the_simulator_validates_items_like_exist(
    owned: ExistClient, api_url: str, personal_token: str
) -> None:
    answer = _raw(
        api_url,
        personal_token,
        "attributes/update/",
        [
            {"name": "tv_min", "date": "2026-03-09", "value": 12.5},
            {"name": "tv_min", "date": "2026-03-09"},
            {"name": "tv_min", "date": "09/03/2026", "value": 1},
            {"name": "tv_min", "date": "2026-03-08", "value": 7},
        ],
    )
    assert answer.status_code == 202
    body = answer.json()
    assert body["success"] == [{"name": "tv_min", "date": "2026-03-08", "value": 7}]
    assert [(f["error_code"], f["error"]) for f in body["failed"]] == [
        ("validation", "Cannot apply a float to an integer type"),
        ("missing_field", "Object at index 1 missing field(s) 'value'"),
        ("validation", "Invalid date '09/03/2026', expected YYYY-MM-DD"),
    ]


def test_more_than_35_items_is_a_400(
    owned: ExistClient, api_url: str, personal_token: str, exist_sim: ExistSimulator
) -> None:
    body = [{"name": "tv_min", "date": "2026-03-09", "value": 1}] * 36
    answer = _raw(api_url, personal_token, "attributes/update/", body)
    assert answer.status_code == 400
    assert "35" in answer.json()["detail"]
    assert [(r.items, r.status) for r in exist_sim.requests_to("attributes/update/")] == [(36, 400)]


def test_values_read_back_every_day_newest_first_with_nulls(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    owned.update(
        [
            UpdateItem(name="tv_min", date=DAY, value=60),
            UpdateItem(name="tv_min", date=DAY - timedelta(days=2), value=20),
        ]
    )
    page = owned.values("tv_min", date_max=DAY, limit=3)
    assert [(v.date, v.value) for v in page.results] == [
        (DAY, 60),
        (DAY - timedelta(days=1), None),
        (DAY - timedelta(days=2), 20),
    ]
    with_values = owned.all_attributes_with_values(days=3, date_max=DAY, names=["tv_min"])
    assert [(v.date, v.value) for v in with_values[0].values] == [
        (DAY, 60),
        (DAY - timedelta(days=1), None),
        (DAY - timedelta(days=2), 20),
    ]


def test_values_between_follows_pages(owned: ExistClient) -> None:
    start = DAY - timedelta(days=149)
    owned.update(
        [UpdateItem(name="tv_min", date=start + timedelta(days=n), value=n) for n in range(150)]
    )
    found = owned.values_between("tv_min", start, DAY)
    assert len(found) == 150
    assert found[0].date == DAY and found[0].value == 149
    assert found[-1].date == start and found[-1].value == 0


async def test_the_async_client_writes_the_same_way(
    aexist: AsyncExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    assert (await aexist.acquire([AcquireItem(template="gaming_min")])).ok
    items = [
        UpdateItem(name="gaming_min", date=DAY - timedelta(days=n), value=1) for n in range(40)
    ]
    result = await aexist.update(items)
    assert len(result.succeeded) == 40
    assert len(exist_sim.requests_to("attributes/update/")) == 2


def test_update_is_retried_after_a_server_error_but_increment_is_not(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.faults.add(method="POST", path="/api/2/attributes/update/", status=502, times=1)
    assert owned.update([UpdateItem(name="tv_min", date=DAY, value=5)]).ok
    exist_sim.faults.add(method="POST", path="/api/2/attributes/increment/", status=502, times=1)
    with pytest.raises(ServerError):
        owned.increment([IncrementItem(name="tv_min", date=DAY, value=5)])
    assert exist_sim.stored_values(user.username, "tv_min") == {DAY: 5}


def test_a_client_with_no_retries_sees_the_server_error(
    personal_token: str, api_url: str, exist_sim: ExistSimulator
) -> None:
    exist_sim.faults.add(path="/api/2/accounts/profile/", status=503, times=1)
    with ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.never()) as client:
        with pytest.raises(ServerError) as raised:
            client.profile()
        assert raised.value.status_code == 503
        assert client.profile().username == "alice"
