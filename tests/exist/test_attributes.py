"""Attributes against the simulator: reading, paging, scopes, acquire, release, create."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import httpx
import pytest

from timebridge.exist import (
    AcquireItem,
    AsyncExistClient,
    AuthenticationError,
    CreateItem,
    ExistClient,
    ExistTokens,
    NotFound,
    OAuthApp,
    UpdateItem,
    ValueType,
)
from timebridge.fakes.exist import ExistSimulator, SimUser
from timebridge.retry import RetryPolicy

TokenFactory = Callable[..., ExistTokens]
BRIDGE_TEMPLATES = [
    "productive_min",
    "neutral_min",
    "distracting_min",
    "tv_min",
    "gaming_min",
    "movies_min",
]


def test_profile_gives_the_users_time_zone(exist: ExistClient) -> None:
    profile = exist.profile()
    assert profile.username == "alice"
    assert profile.first_name == "Alice"
    assert profile.timezone == "Europe/Berlin"
    assert profile.local_time is not None and profile.local_time.utcoffset() is not None


def test_templates_include_the_bridges_attributes_as_minutes(exist: ExistClient) -> None:
    templates = {t.name: t for t in exist.all_templates()}
    for name in BRIDGE_TEMPLATES:
        assert templates[name].value_type is ValueType.DURATION
    assert templates["movies_min"].group.name == "media"
    assert {t.group.name for t in exist.all_templates(groups=["media"])} == {"media"}


def test_acquiring_by_template_creates_a_missing_attribute(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    result = exist.acquire([AcquireItem(template=name) for name in BRIDGE_TEMPLATES])
    assert result.ok
    assert [s.name for s in result.succeeded] == BRIDGE_TEMPLATES
    for succeeded in result.succeeded:
        assert succeeded.attribute is not None
        assert succeeded.attribute.service is not None
        assert succeeded.attribute.service.name == "timebridge"
    owned = exist.all_owned_attributes()
    assert sorted(a.name for a in owned) == sorted(BRIDGE_TEMPLATES)
    assert exist_sim.attribute(user.username, "tv_min").manual is False


def test_acquiring_takes_over_from_another_service_and_release_hands_it_back(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute(user.username, template="productive_min", owner="rescuetime")
    before = exist.attributes(names=["productive_min"]).results[0]
    assert before.service is not None and before.service.name == "rescuetime"

    assert exist.acquire([AcquireItem(name="productive_min")]).ok
    taken = exist_sim.attribute(user.username, "productive_min")
    assert taken.service is not None and taken.service.name == "timebridge"
    assert {s.name for s in taken.available_services} == {"rescuetime", "timebridge"}

    assert exist.release(["productive_min"]).ok
    back = exist_sim.attribute(user.username, "productive_min")
    assert back.service is not None and back.service.name == "rescuetime"
    assert back.active


def test_releasing_an_attribute_nobody_else_supplies_makes_it_inactive(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist.acquire([AcquireItem(template="gaming_min")])
    assert exist.release(["gaming_min"]).ok
    gone = exist_sim.attribute(user.username, "gaming_min")
    assert gone.service is None
    assert not gone.active
    assert "gaming_min" not in {a.name for a in exist.all_attributes()}
    assert "gaming_min" in {a.name for a in exist.all_attributes(include_inactive=True)}


def test_releasing_what_we_do_not_own_fails_per_item(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="mood", manual=True, owner="exist_ios")
    exist.acquire([AcquireItem(template="tv_min")])
    result = exist.release(["tv_min", "mood"])
    assert [s.item.name for s in result.succeeded] == ["tv_min"]
    [failure] = result.failed
    assert failure.item.name == "mood"
    assert failure.error_code == "unauthorised"
    assert "does not belong to this service" in failure.error


def test_acquiring_by_name_needs_an_existing_attribute(exist: ExistClient) -> None:
    result = exist.acquire([AcquireItem(name="tv_min")])
    [failure] = result.failed
    assert failure.item == AcquireItem(name="tv_min")
    assert failure.error_code == "not_found"


def test_acquiring_what_we_already_own_succeeds_again(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    # guide/write_client.md: "We could run this again and get the same result".
    assert exist.acquire([AcquireItem(template="tv_min"), AcquireItem(name="tv_min")]).ok
    exist_sim.clear_requests()
    again = exist.acquire([AcquireItem(template="tv_min"), AcquireItem(name="tv_min")])
    assert again.ok
    assert [s.attribute.name for s in again.succeeded if s.attribute] == ["tv_min", "tv_min"]
    assert [r.status for r in exist_sim.requests_to("attributes/acquire/")] == [200]
    assert [a.name for a in exist.all_owned_attributes()] == ["tv_min"]


def test_acquire_sends_manual_false_so_exist_offers_no_manual_entry(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    # The user tracked TV by hand until now; once we provide it, Exist must stop offering
    # manual entry (guide/write_client.md acquires with "manual": false for that reason).
    exist_sim.add_attribute(user.username, template="tv_min", manual=True)
    assert exist.acquire([AcquireItem(template="tv_min"), AcquireItem(template="gaming_min")]).ok
    assert exist_sim.attribute(user.username, "tv_min").manual is False
    assert exist_sim.attribute(user.username, "gaming_min").manual is False
    # Re-acquiring what we own applies it too.
    exist_sim.add_attribute(user.username, template="neutral_min", manual=True)
    assert exist.acquire([AcquireItem(name="neutral_min")]).ok
    assert exist.acquire([AcquireItem(name="neutral_min")]).ok
    assert exist_sim.attribute(user.username, "neutral_min").manual is False


def test_manual_can_be_left_to_exist(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="tv_min", manual=True)
    assert exist.acquire([AcquireItem(template="tv_min", manual=None)]).ok
    assert exist_sim.attribute(user.username, "tv_min").manual is True


def _raw_post(api_url: str, token: str, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{api_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"})


def test_the_simulator_follows_exists_manual_defaults(
    api_url: str, personal_token: str, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="productive_min", manual=False)
    exist_sim.add_attribute(user.username, template="mood", manual=True)
    answer = _raw_post(
        api_url,
        personal_token,
        "attributes/acquire/",
        [{"template": "productive_min"}, {"name": "mood"}, {"template": "tv_min"}],
    )
    assert answer.status_code == 200, answer.text
    # Without `manual`, an existing attribute keeps its flag; one the acquire creates is manual
    # like anything created without the flag.
    assert exist_sim.attribute(user.username, "productive_min").manual is False
    assert exist_sim.attribute(user.username, "mood").manual is True
    assert exist_sim.attribute(user.username, "tv_min").manual is True
    created = _raw_post(
        api_url,
        personal_token,
        "attributes/create/",
        [{"label": "Reading", "group": "media", "value_type": 3}, {"template": "gaming_min"}],
    )
    assert created.status_code == 200, created.text
    # reference/creating_attributes.md: `manual` defaults to true.
    assert exist_sim.attribute(user.username, "reading").manual is True
    assert exist_sim.attribute(user.username, "gaming_min").manual is True


def test_a_custom_attribute_is_acquired_by_name_alone(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    # allow_user_defined left the acquire docs in 2022: `name` means any attribute.
    exist_sim.add_attribute(
        user.username, label="Watching movies", group="media", value_type=3, owner="trakt"
    )
    exist_sim.clear_requests()
    result = exist.acquire([AcquireItem(name="watching_movies")])
    assert result.ok
    owner = exist_sim.attribute(user.username, "watching_movies").service
    assert owner is not None and owner.name == "timebridge"
    [sent] = exist_sim.requests_to("attributes/acquire/")
    assert "allow_user_defined" not in sent.query


def test_low_priority_attributes_are_read_only_when_asked_for(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    # reference/attributes.md: include_low_priority includes "attributes with a priority >= 10".
    exist_sim.add_attribute(user.username, template="tv_min", priority=9)
    exist_sim.add_attribute(user.username, template="gaming_min", priority=10)
    exist_sim.add_attribute(user.username, template="movies_min", priority=14)
    assert exist.acquire([AcquireItem(template=name) for name in BRIDGE_TEMPLATES[3:]]).ok
    exist_sim.set_value(user.username, "gaming_min", date(2026, 3, 9), 25)

    assert [a.name for a in exist.all_attributes(groups=["media"])] == ["tv_min"]
    everything = exist.all_attributes(groups=["media"], include_low_priority=True)
    assert [a.name for a in everything] == ["tv_min", "gaming_min", "movies_min"]
    assert [a.name for a in exist.attributes(names=["gaming_min"]).results] == []
    # What we own is what we own, wherever Exist lists it: the helper includes them.
    owned = exist.all_owned_attributes()
    assert sorted(a.name for a in owned) == ["gaming_min", "movies_min", "tv_min"]
    assert [a.name for a in exist.all_owned_attributes(include_low_priority=False)] == ["tv_min"]
    assert [a.name for a in exist.owned_attributes().results] == ["tv_min"]
    assert len(exist.owned_attributes(include_low_priority=True).results) == 3

    hidden = exist.all_attributes_with_values(days=2, date_max=date(2026, 3, 9))
    assert "gaming_min" not in {a.name for a in hidden}
    [gaming] = exist.all_attributes_with_values(
        days=2, date_max=date(2026, 3, 9), names=["gaming_min"], include_low_priority=True
    )
    assert [(v.date, v.value) for v in gaming.values] == [
        (date(2026, 3, 9), 25),
        (date(2026, 3, 8), None),
    ]


def test_low_priority_templates_are_listed_only_when_asked_for(exist: ExistClient) -> None:
    shown = {t.name: t.priority for t in exist.all_templates(groups=["productivity"])}
    assert "keystrokes" not in shown
    assert max(shown.values()) < 10
    everything = exist.all_templates(groups=["productivity"], include_low_priority=True)
    assert {t.name: t.priority for t in everything}["keystrokes"] == 10


def test_create_names_a_custom_attribute_after_its_label_and_refuses_duplicates(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    item = CreateItem.custom("Watching movies", "media", ValueType.DURATION)
    created = exist.create([item])
    assert created.ok
    [success] = created.succeeded
    assert success.name == "watching_movies"
    assert success.attribute is not None
    assert success.attribute.manual is False
    assert success.attribute.template is None
    assert success.attribute.service is not None
    assert success.attribute.service.name == "timebridge"

    again = exist.create([item])
    [failure] = again.failed
    assert failure.item == item
    assert failure.error_code == "exists"
    assert [a.name for a in exist_sim.attributes(user.username)] == ["watching_movies"]


def test_refused_movies_template_leaves_room_for_the_custom_fallback(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.refuse_template(user.username, "movies_min")
    result = exist.acquire([AcquireItem(template=name) for name in BRIDGE_TEMPLATES])
    assert [f.item.template for f in result.failed] == ["movies_min"]
    assert len(result.succeeded) == 5

    fallback = exist.create([CreateItem.custom("Watching movies", "media", ValueType.DURATION)])
    [created] = fallback.succeeded
    assert created.name is not None
    written = exist.update([UpdateItem(name=created.name, date=date(2026, 3, 9), value=95)])
    assert written.ok
    assert exist_sim.stored_values(user.username, created.name) == {date(2026, 3, 9): 95}


def test_creating_a_custom_attribute_in_a_group_out_of_scope_fails_per_item(
    oauth_tokens: TokenFactory, app: OAuthApp, api_url: str, oauth_url: str
) -> None:
    tokens = oauth_tokens(scopes=("productivity_write",))
    with ExistClient(tokens, app=app, base_url=api_url, oauth_base_url=oauth_url) as client:
        result = client.create([CreateItem.custom("Watching movies", "media", ValueType.DURATION)])
        assert [f.error_code for f in result.failed] == ["unauthorised"]
        acquired = client.acquire([AcquireItem(template="tv_min")])
        assert [f.error_code for f in acquired.failed] == ["unauthorised"]


def test_reads_are_silently_limited_to_the_read_scopes(
    oauth_tokens: TokenFactory,
    app: OAuthApp,
    api_url: str,
    oauth_url: str,
    exist_sim: ExistSimulator,
    user: SimUser,
) -> None:
    exist_sim.add_attribute(user.username, template="tv_min", owner="trakt")
    exist_sim.add_attribute(user.username, template="productive_min", owner="rescuetime")
    exist_sim.set_value(user.username, "tv_min", date(2026, 3, 9), 60)
    tokens = oauth_tokens(scopes=("productivity_read", "media_write"))
    with ExistClient(tokens, app=app, base_url=api_url, oauth_base_url=oauth_url) as client:
        assert [a.name for a in client.all_attributes()] == ["productive_min"]
        with_values = client.all_attributes_with_values(days=3)
        assert [a.name for a in with_values] == ["productive_min"]
        page = client.values("tv_min")
        assert page.count == 0
        assert page.results == []
        # Write scope alone lets it own and see what it owns.
        assert client.acquire([AcquireItem(template="tv_min")]).ok
        assert [a.name for a in client.all_owned_attributes()] == ["tv_min"]


def test_all_attributes_follows_every_page(
    exist: ExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    for number in range(45):
        exist_sim.add_attribute(
            user.username, label=f"Counter {number}", group="custom", value_type=ValueType.QUANTITY
        )
    first = exist.attributes(limit=20)
    assert first.count == 45
    assert first.has_next
    assert len(first.results) == 20
    everything = exist.all_attributes()
    assert len(everything) == 45
    assert len({a.name for a in everything}) == 45


def test_bad_arguments_fail_before_any_request(
    exist: ExistClient, exist_sim: ExistSimulator
) -> None:
    exist_sim.clear_requests()
    with pytest.raises(ValueError, match="days"):
        exist.attributes_with_values(days=32)
    with pytest.raises(ValueError, match="datetime"):
        exist.attributes_with_values(date_max=datetime(2026, 3, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="blank"):
        exist.values(" ")
    with pytest.raises(ValueError, match="exactly one"):
        AcquireItem(template="tv_min", name="tv_min")
    with pytest.raises(ValueError, match="blank"):
        CreateItem.custom("  ", "media", ValueType.DURATION)
    assert exist_sim.requests == []


def test_unknown_attribute_values_are_not_found(exist: ExistClient) -> None:
    with pytest.raises(NotFound):
        exist.values("no_such_attribute")


def test_retry_policy_never_retries_a_401(
    personal_token: str, api_url: str, exist_sim: ExistSimulator
) -> None:
    exist_sim.revoke_token(personal_token)
    exist_sim.clear_requests()
    with (
        ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.testing(5)) as client,
        pytest.raises(AuthenticationError),
    ):
        client.profile()
    assert len(exist_sim.requests) == 1


async def test_the_async_client_reads_low_priority_attributes_alike(
    aexist: AsyncExistClient, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="gaming_min", owner="timebridge", priority=12)
    assert [a.name for a in await aexist.all_owned_attributes()] == ["gaming_min"]
    assert await aexist.all_owned_attributes(include_low_priority=False) == []
    assert (await aexist.owned_attributes()).results == []
    assert await aexist.all_attributes() == []
    assert [a.name for a in await aexist.all_attributes(include_low_priority=True)] == [
        "gaming_min"
    ]
    with_values = await aexist.all_attributes_with_values(include_low_priority=True)
    assert [a.name for a in with_values] == ["gaming_min"]
    assert (await aexist.attributes_with_values()).results == []
    assert "keystrokes" in {t.name for t in await aexist.all_templates(include_low_priority=True)}
