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
from timebridge.fakes.exist import EmptyDays, ExistSimulator, SimUser
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


# --- days without data: null or 0 -----------------------------------------------------------------


@pytest.mark.parametrize(("empty_days", "empty"), [("null", None), ("zero", 0)])
def test_days_without_data_read_as_null_or_zero_and_both_are_empty(
    owned: ExistClient,
    exist_sim: ExistSimulator,
    user: SimUser,
    empty_days: EmptyDays,
    empty: object,
) -> None:
    # reference/object_types.md says null, guide/read_client.md says 0: the client takes both.
    exist_sim.empty_days = empty_days
    owned.update(
        [
            UpdateItem(name="tv_min", date=DAY, value=60),
            UpdateItem(name="tv_min", date=DAY - timedelta(days=2), value=0),
        ]
    )
    page = owned.values("tv_min", date_max=DAY, limit=3)
    assert [(v.value, v.is_empty) for v in page.results] == [
        (60, False),
        (empty, True),
        (0, True),
    ]
    [with_values] = owned.all_attributes_with_values(days=3, date_max=DAY, names=["tv_min"])
    assert [v.value for v in with_values.values] == [60, empty, 0]
    between = owned.values_between("tv_min", DAY - timedelta(days=1), DAY)
    assert [v.is_empty for v in between] == [False, True]


def test_zero_for_empty_days_only_where_the_type_has_a_default(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    # guide/read_client.md: types without a default value (time of day, scale) print None.
    exist_sim.empty_days = "zero"
    exist_sim.add_attribute(user.username, template="mood", manual=True)
    exist_sim.add_attribute(user.username, template="steps")
    found = exist.all_attributes_with_values(days=1, date_max=DAY, names=["mood", "steps"])
    assert {a.name: a.values[0].value for a in found} == {"mood": None, "steps": 0}


# --- per-item failures with any code --------------------------------------------------------------


@pytest.mark.parametrize("code", ["not_found", "unauthorised", "forbidden", "never_seen_before"])
def test_any_per_item_error_code_comes_back_with_its_item(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser, code: str
) -> None:
    exist_sim.fail_items(user.username, "tv_min", code, "Something Exist said")
    refused = UpdateItem(name="tv_min", date=DAY, value=30)
    fine = UpdateItem(name="productive_min", date=DAY, value=45)
    exist_sim.clear_requests()

    result = owned.update([refused, fine])

    assert [(f.item, f.error_code, f.error) for f in result.failed] == [
        (refused, code, "Something Exist said")
    ]
    assert [s.item for s in result.succeeded] == [fine]
    assert [r.status for r in exist_sim.requests_to("attributes/update/")] == [202]
    assert exist_sim.stored_values(user.username, "tv_min") == {}
    assert exist_sim.stored_values(user.username, "productive_min") == {DAY: 45}


def test_an_item_failure_can_be_limited_to_the_next_items_and_cleared(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    item = UpdateItem(name="tv_min", date=DAY, value=30)
    exist_sim.fail_items(user.username, "tv_min", "forbidden", times=1)
    [failure] = owned.update([item]).failed
    assert failure.error_code == "forbidden"
    assert failure.error  # a default message
    assert owned.update([item]).ok

    exist_sim.fail_items(user.username, "tv_min", "unauthorised")
    assert not owned.update([item]).ok
    assert not owned.update([item]).ok
    exist_sim.clear_item_failures(user.username)
    assert owned.update([item]).ok
    assert exist_sim.stored_values(user.username, "tv_min") == {DAY: 30}


def test_an_item_failure_can_hit_acquire_and_release_too(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.fail_items(user.username, "tv_min", "locked", endpoints=["acquire"])
    acquired = exist.acquire([AcquireItem(template="tv_min"), AcquireItem(template="gaming_min")])
    assert [(f.item.template, f.error_code) for f in acquired.failed] == [("tv_min", "locked")]
    assert "tv_min" not in {a.name for a in exist_sim.attributes(user.username)}
    exist_sim.clear_item_failures()
    assert exist.acquire([AcquireItem(template="tv_min")]).ok

    exist_sim.fail_items(user.username, "tv_min", "locked", endpoints=["release"])
    # Writes are not affected unless asked for.
    assert exist.update([UpdateItem(name="tv_min", date=DAY, value=5)]).ok
    released = exist.release(["tv_min", "gaming_min"])
    assert [(f.item.name, f.error_code) for f in released.failed] == [("tv_min", "locked")]
    assert exist_sim.attribute(user.username, "gaming_min").service is None
    owner = exist_sim.attribute(user.username, "tv_min").service
    assert owner is not None and owner.name == "timebridge"
    with pytest.raises(ValueError, match="endpoints"):
        exist_sim.fail_items(user.username, "tv_min", "x", endpoints=["delete"])


def test_item_failures_can_be_set_over_the_admin_api(
    owned: ExistClient, exist_sim: ExistSimulator, user: SimUser, api_url: str
) -> None:
    admin = api_url.replace("/api/2/", "/_admin")
    answer = httpx.post(
        f"{admin}/item-failures",
        json={"username": user.username, "attribute": "tv_min", "error_code": "forbidden"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["endpoints"] == ["increment", "update"]
    [failure] = owned.increment([IncrementItem(name="tv_min", date=DAY, value=1)]).failed
    assert failure.error_code == "forbidden"
    assert httpx.delete(f"{admin}/item-failures").status_code == 200
    assert owned.increment([IncrementItem(name="tv_min", date=DAY, value=1)]).ok


# --- answers the docs show or allow ---------------------------------------------------------------


def test_a_failed_echo_without_a_code_or_the_original_fields_is_still_paired(
    owned: ExistClient, exist_sim: ExistSimulator
) -> None:
    # The acquire docs' own example echoes a failed item as {"title": ...}; a code may be absent.
    exist_sim.faults.add(
        method="POST",
        path="/api/2/attributes/update/",
        status=202,
        body=(
            '{"success": [{"name": "productive_min", "date": "2026-03-09", "value": 1}],'
            ' "failed": [{"title": "tv_min", "error": "nope"}]}'
        ),
        times=1,
    )
    refused = UpdateItem(name="tv_min", date=DAY, value=2)
    fine = UpdateItem(name="productive_min", date=DAY, value=1)
    result = owned.update([refused, fine])
    assert [s.item for s in result.succeeded] == [fine]
    assert [(f.item, f.error_code, f.error) for f in result.failed] == [
        (refused, "unknown", "nope")
    ]


def test_the_docs_short_acquire_echo_is_a_success(
    exist: ExistClient, exist_sim: ExistSimulator
) -> None:
    # reference/attribute_ownership.md shows {"name": ..., "active": "true"} (a string).
    exist_sim.faults.add(
        method="POST",
        path="/api/2/attributes/acquire/",
        status=200,
        body='{"success": [{"name": "tv_min", "active": "true"}], "failed": []}',
        times=1,
    )
    result = exist.acquire([AcquireItem(name="tv_min")])
    assert result.ok
    [success] = result.succeeded
    assert success.item == AcquireItem(name="tv_min")
    assert success.name == "tv_min"
    assert success.attribute is None
