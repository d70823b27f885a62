"""Personal mode: the config file's checks and messages, name resolution, and runs against both
simulators on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from tests.sync.oracle import truth
from timebridge.bridge import Bridge, PersonalSync
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.personal import (
    PERSONAL_ACCOUNT_EMAIL,
    PersonalConfig,
    PersonalConfigError,
    load_personal_config,
    mapping_is_current,
    parse_personal_config,
    resolve_projects,
)
from timebridge.retry import RetryPolicy
from timebridge.store import ProjectMapping, Store
from timebridge.sync.runner import RunOutcome, RunReport
from timebridge.toggl import AuthenticationError, Project

BERLIN = ZoneInfo("Europe/Berlin")
TOGGL_TOKEN = "toggl-personal-0123456789abcdef"

# --- a person on both simulators (shared with tests/cli/test_sync_cli.py) -------------------------


@dataclass
class Person:
    """Someone with Toggl projects and entries, and an Exist account with a personal token."""

    toggl_user: SimUser
    exist_username: str
    exist_token: str
    projects: dict[str, int]

    @property
    def toggl_token(self) -> str:
        return self.toggl_user.api_token


def seed_person(
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_client: SimClient,
    clock: FakeClock,
    *,
    username: str = "pat",
) -> Person:
    user = toggl_sim.add_user(api_token=TOGGL_TOKEN, timezone="Europe/Berlin", plan="premium")
    workspace = user.default_workspace_id
    projects = {
        name: toggl_sim.add_project(workspace, name).id
        for name in ("Series", "Movies", "Deep work", "Chores")
    }
    now = clock.now()
    last_midnight = datetime.combine(now.astimezone(BERLIN).date(), time(0), tzinfo=BERLIN)
    for start, seconds, project in [
        (now - timedelta(hours=3), 1830, "Series"),
        (now - timedelta(hours=27), 5400, "Series"),
        (now - timedelta(days=3, hours=2), 7290, "Movies"),
        (now - timedelta(days=5), 3599, "Deep work"),
        (now - timedelta(days=6), 1000, "Chores"),
        # Crosses local midnight: half on each day.
        (last_midnight - timedelta(minutes=45), 5400, "Deep work"),
    ]:
        toggl_sim.add_time_entry(user, start=start, duration=seconds, project_id=projects[project])
    # A running timer counts up to now.
    toggl_sim.add_time_entry(
        user, start=now - timedelta(minutes=25), duration=-1, project_id=projects["Deep work"]
    )
    exist_sim.add_user(username, timezone="Europe/Berlin")
    token = exist_sim.issue_personal_token(username, exist_client.client_id)
    return Person(user, username, token, projects)


def config_data(
    person: Person,
    toggl_url: str,
    exist_url: str,
    mapping: dict[str, str] | None = None,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "toggl": {"api_token": person.toggl_token, "base_url": toggl_url},
        "exist": {"token": person.exist_token, "base_url": exist_url},
        "mapping": mapping
        if mapping is not None
        else {"Series": "tv", "Movies": "movies", "Deep work": "productive_min"},
    }
    data.update(sections)
    return data


def assert_exist_holds_the_truth(
    person: Person,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    clock: FakeClock,
    mapping: dict[int, str],
) -> None:
    expected = truth(
        toggl_sim.world.entries_of(person.toggl_user.id, include_deleted=True),
        mapping,
        BERLIN,
        clock.now(),
    )
    assert any(minutes > 0 for minutes in expected.values())
    for (attribute, day), minutes in expected.items():
        stored = exist_sim.stored_values(person.exist_username, attribute).get(day)
        assert (stored or 0) == minutes, (attribute, day)


# --- the config file ------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "toggl": {"api_token": "t" * 32},
    "exist": {"token": "e" * 40},
    "mapping": {"Series": "tv"},
}


def problem(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(PersonalConfigError) as caught:
        parse_personal_config(data, environ or {})
    return str(caught.value)


def test_aliases_and_exist_names_both_map_to_exists_attribute_names() -> None:
    config = parse_personal_config(
        {
            **VALID,
            "mapping": {
                "Series": "tv",
                "Movies": "Movies",
                "Games": "gaming_min",
                "Work": "productive",
                "Mail": "neutral",
                "Feeds": "distracting",
            },
        },
        {},
    )
    assert config.mapping == {
        "Series": "tv_min",
        "Movies": "movies_min",
        "Games": "gaming_min",
        "Work": "productive_min",
        "Mail": "neutral_min",
        "Feeds": "distracting_min",
    }
    assert config.sync.time_zone is None
    assert config.toggl.workspace_id is None


def test_tokens_and_base_urls_come_from_the_environment_when_the_file_leaves_them_out() -> None:
    config = parse_personal_config(
        {"mapping": {"Series": "tv"}},
        {
            "TOGGL_API_TOKEN": "from-env-toggl",
            "EXIST_TOKEN": "from-env-exist",
            "TOGGL_BASE_URL": "http://127.0.0.1:8181/api/v9",
        },
    )
    assert config.toggl.api_token.get_secret_value() == "from-env-toggl"
    assert config.exist.token.get_secret_value() == "from-env-exist"
    assert config.toggl.base_url == "http://127.0.0.1:8181/api/v9"
    file_wins = parse_personal_config(VALID, {"TOGGL_API_TOKEN": "from-env-toggl"})
    assert file_wins.toggl.api_token.get_secret_value() == "t" * 32


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**VALID, "toggl": {}},
            "toggl.api_token: missing (set it or TOGGL_API_TOKEN)",
        ),
        (
            {**VALID, "exist": {"token": "  "}},
            "exist.token: empty (set it or EXIST_TOKEN)",
        ),
        (
            {**VALID, "toggl": {"api_tokn": "x" * 32}},
            "toggl.api_tokn: unknown key (did you mean api_token?); "
            "keys are api_token, base_url, workspace_id",
        ),
        ({k: v for k, v in VALID.items() if k != "exist"}, "exist: missing section [exist]"),
        ({**VALID, "tgl": {}}, "tgl: unknown section; sections are toggl, exist, mapping, sync"),
        ({**VALID, "toggl": "token"}, "toggl: must be a table"),
        (
            {**VALID, "toggl": {"api_token": "x" * 32, "workspace_id": "12"}},
            "toggl.workspace_id: must be a whole number",
        ),
        (
            {**VALID, "toggl": {"api_token": "x" * 32, "workspace_id": 0}},
            "toggl.workspace_id: must be a positive number",
        ),
        (
            {**VALID, "exist": {"token": "x" * 40, "base_url": "exist.io/api/2"}},
            'exist.base_url: "exist.io/api/2" is not an http(s) URL',
        ),
        (
            {**VALID, "sync": {"time_zone": "Mars/Olympus"}},
            'sync.time_zone: "Mars/Olympus" is not a time zone',
        ),
        ({**VALID, "mapping": {}}, "mapping: empty; map at least one Toggl project"),
        ({**VALID, "mapping": {"Series": 3}}, 'mapping."Series": must be a string'),
        (
            {**VALID, "mapping": {"Series": "telly"}},
            'mapping."Series": "telly" is not an attribute Timebridge writes; use one of tv, '
            "movies, gaming, productive, neutral, distracting",
        ),
    ],
)
def test_a_bad_config_gets_one_message_naming_the_bad_key(
    data: dict[str, Any], message: str
) -> None:
    assert problem(data).startswith(message)


def test_tokens_never_appear_in_config_errors() -> None:
    secret = "s3cr3t-t0ken-value-0000"
    message = problem(
        {"toggl": {"api_token": secret, "workspace_id": secret}, "exist": {"token": secret}}
    )
    assert secret not in message


def test_config_file_problems_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(PersonalConfigError, match=r"nowhere\.toml: no such file"):
        load_personal_config(missing, {})
    broken = tmp_path / "broken.toml"
    broken.write_text('[toggl\napi_token = "x"\n')
    with pytest.raises(PersonalConfigError, match=r"broken.toml: not valid TOML: .*line 1"):
        load_personal_config(broken, {})
    good = tmp_path / "timebridge.toml"
    good.write_text('[toggl]\napi_token = "abc"\n[exist]\ntoken = "def"\n[mapping]\n1234 = "tv"\n')
    assert load_personal_config(good, {}).mapping == {"1234": "tv_min"}


# --- resolving names ------------------------------------------------------------------------------


def project(project_id: int, name: str, workspace_id: int = 1) -> Project:
    return Project(id=project_id, workspace_id=workspace_id, name=name)


PROJECTS = [project(11, "Series"), project(12, "Movies"), project(13, "Deep work")]


def test_projects_resolve_by_name_case_insensitively_or_by_id() -> None:
    resolved = resolve_projects({"series": "tv_min", "12": "movies_min"}, PROJECTS)
    assert [(r.key, r.project_id, r.project_name, r.attribute) for r in resolved] == [
        ("series", 11, "Series", "tv_min"),
        ("12", 12, "Movies", "movies_min"),
    ]


def test_an_unknown_project_name_lists_the_real_ones() -> None:
    with pytest.raises(PersonalConfigError) as caught:
        resolve_projects({"Serie": "tv_min"}, PROJECTS)
    assert str(caught.value) == (
        'mapping."Serie": no such Toggl project; projects are: Deep work, Movies, Series '
        '(did you mean "Series"?)'
    )


def test_ambiguous_and_contradictory_keys_are_refused() -> None:
    twins = [*PROJECTS, project(21, "Series", workspace_id=2)]
    with pytest.raises(PersonalConfigError, match=r"several Toggl projects are named.*11, 21"):
        resolve_projects({"Series": "tv_min"}, twins)
    with pytest.raises(PersonalConfigError, match=r'mapping."11": is the same project as'):
        resolve_projects({"Series": "tv_min", "11": "movies_min"}, PROJECTS)


def test_mapping_is_current_judges_by_last_seen_names_and_ids() -> None:
    config = parse_personal_config(
        {**VALID, "mapping": {"Series": "tv", "12": "movies", "deep WORK": "productive"}}, {}
    )
    stored = [
        ProjectMapping(1, 11, "Series", "tv_min"),
        # Exist refused the movies template: movies live in a custom attribute.
        ProjectMapping(1, 12, "Movies", "watching_movies"),
        ProjectMapping(1, 13, "Deep work", "productive_min"),
    ]
    assert mapping_is_current(config, stored)
    assert not mapping_is_current(config, stored[:2]), "a line added"
    renamed = PersonalConfig.model_validate(
        {**config.model_dump(), "mapping": {**config.mapping, "Series": "gaming_min"}}
    )
    assert not mapping_is_current(renamed, stored), "an attribute changed"
    elsewhere = parse_personal_config(
        {
            **VALID,
            "toggl": {"api_token": "t" * 32, "workspace_id": 2},
            "mapping": {"Series": "tv", "12": "movies", "Deep work": "productive"},
        },
        {},
    )
    assert not mapping_is_current(elsewhere, stored), "another workspace"


# --- runs against the simulators ------------------------------------------------------------------


@pytest.fixture
def person(
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
    clock: FakeClock,
) -> Person:
    return seed_person(toggl_sim, exist_sim, exist_oauth_client, clock)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def personal(
    config: dict[str, Any], settings: Settings, store: Store, clock: FakeClock
) -> PersonalSync:
    return PersonalSync(
        parse_personal_config(config, {}),
        settings,
        Bridge.from_settings(store, settings, clock=clock, retry=RetryPolicy.testing()),
    )


async def test_first_run_brings_exist_to_the_truth_and_the_next_costs_one_toggl_request(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
) -> None:
    config = config_data(person, toggl_url, exist_api_url)
    first = await personal(config, settings, store, clock).run()
    assert isinstance(first.result, RunReport)
    assert first.result.outcome is RunOutcome.SUCCEEDED
    assert first.mapping_update is not None
    ids = person.projects
    assert first.mapping_update.mapping == {
        ids["Series"]: "tv_min",
        ids["Movies"]: "movies_min",
        ids["Deep work"]: "productive_min",
    }
    assert_exist_holds_the_truth(
        person, toggl_sim, exist_sim, clock, dict(first.mapping_update.mapping)
    )
    account = await store.accounts.by_email(PERSONAL_ACCOUNT_EMAIL)
    assert account is not None
    assert await store.sync_runs.count(account.id) == 1

    toggl_sim.clear_requests()
    exist_sim.clear_requests()
    second = await personal(config, settings, store, clock).run()
    assert second.mapping_update is None
    assert isinstance(second.result, RunReport)
    assert second.result.outcome is RunOutcome.SUCCEEDED
    assert [request.path for request in toggl_sim.requests] == ["/api/v9/me/time_entries"]
    assert exist_sim.requests == []


async def test_a_new_entry_is_synced_and_an_edited_mapping_is_resolved_again(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
) -> None:
    config = config_data(person, toggl_url, exist_api_url)
    await personal(config, settings, store, clock).run()
    clock.advance(timedelta(minutes=30))
    toggl_sim.add_time_entry(
        person.toggl_user,
        start=clock.now() - timedelta(minutes=90),
        duration=3600,
        project_id=person.projects["Chores"],
    )
    edited = config_data(person, toggl_url, exist_api_url, {"Series": "tv", "Chores": "neutral"})
    run = await personal(edited, settings, store, clock).run()
    assert run.mapping_update is not None
    assert isinstance(run.result, RunReport)
    assert run.result.outcome is RunOutcome.SUCCEEDED
    mapping = {person.projects["Series"]: "tv_min", person.projects["Chores"]: "neutral_min"}
    assert_exist_holds_the_truth(person, toggl_sim, exist_sim, clock, mapping)
    # Unmapped attributes are brought down to zero before they are released.
    movies = exist_sim.stored_values(person.exist_username, "movies_min")
    assert all(value == 0 for value in movies.values())


async def test_a_project_renamed_in_toggl_keeps_syncing_without_extra_requests(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_api_url: str,
) -> None:
    config = config_data(person, toggl_url, exist_api_url)
    await personal(config, settings, store, clock).run()
    toggl_sim.world.update_project(
        person.toggl_user.default_workspace_id, person.projects["Series"], {"name": "Shows"}
    )
    toggl_sim.clear_requests()
    run = await personal(config, settings, store, clock).run()
    assert run.mapping_update is None
    assert len(toggl_sim.requests) == 1


async def test_movies_fall_back_to_a_custom_attribute_and_stay_current(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
) -> None:
    exist_sim.refuse_template(person.exist_username, "movies_min")
    config = config_data(person, toggl_url, exist_api_url, {"Movies": "movies"})
    first = await personal(config, settings, store, clock).run()
    assert first.mapping_update is not None
    [fallback] = first.mapping_update.mapping.values()
    assert fallback != "movies_min"
    assert_exist_holds_the_truth(
        person, toggl_sim, exist_sim, clock, {person.projects["Movies"]: fallback}
    )
    toggl_sim.clear_requests()
    second = await personal(config, settings, store, clock).run()
    assert second.mapping_update is None
    assert len(toggl_sim.requests) == 1


async def test_a_refused_token_is_not_stored_over_a_working_one(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_url: str,
    exist_api_url: str,
) -> None:
    config = config_data(person, toggl_url, exist_api_url)
    await personal(config, settings, store, clock).run()
    mistyped = {**config, "toggl": {**config["toggl"], "api_token": "mistyped-token-000000"}}
    with pytest.raises(AuthenticationError):
        await personal(mistyped, settings, store, clock).run()
    account = await store.accounts.by_email(PERSONAL_ACCOUNT_EMAIL)
    assert account is not None
    connection = await store.toggl_connections.default(account.id)
    assert connection is not None
    token = await store.toggl_connections.token(account.id, connection.id)
    assert token == SecretStr(person.toggl_token)
    assert len(await store.mappings.for_account(account.id)) == 3


async def test_preview_writes_nothing_anywhere(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
) -> None:
    config = config_data(person, toggl_url, exist_api_url)
    preview = await personal(config, settings, store, clock).preview()
    assert preview.account_id is None
    assert preview.to_acquire == ("movies_min", "productive_min", "tv_min")
    assert preview.writes
    assert all(write.current == 0 for write in preview.writes), "Exist holds nothing yet"
    assert await store.accounts.by_email(PERSONAL_ACCOUNT_EMAIL) is None
    assert [r for r in exist_sim.requests if r.method != "GET"] == []
    assert exist_sim.attributes(person.exist_username) == [], "nothing acquired"


async def test_a_workspace_that_is_not_yours_is_named(
    person: Person,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    toggl_url: str,
    exist_api_url: str,
) -> None:
    config = config_data(person, toggl_url, exist_api_url)
    config["toggl"]["workspace_id"] = 99_999_999
    with pytest.raises(PersonalConfigError, match=r"toggl\.workspace_id: 99999999 is not one of"):
        await personal(config, settings, store, clock).run()
