"""The mapping page: every project of the user's workspaces from Toggl Track, a choice of none
or one attribute each, takeovers confirmed before saving, and saving acquiring and releasing in
Exist (the simulator) as the sync layer does."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from tests.web.test_pages import (
    Page,
    client_fixture,
    get,
    settings_fixture,
    sign_in,
    submit,
)
from timebridge.exist import ExistTokens
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.store import Integration, ProjectMapping, Store

SIX = [
    "None",
    "Watching TV",
    "Watching movies",
    "Gaming",
    "Productive time",
    "Neutral time",
    "Distracting time",
]

#: The pages' fixtures, which tests here ask for by name ("client", "settings").
_FIXTURES = (client_fixture, settings_fixture)


@dataclass
class Alice:
    account_id: int
    workspace_id: int
    series: int
    deep_work: int
    email: int
    reading: int


@pytest.fixture
async def alice(
    store: Store,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_client: SimClient,
) -> Alice:
    """Alice with both services connected, projects in two workspaces, nothing mapped yet;
    RescueTime feeds her productive time in Exist."""
    user = toggl_sim.add_user(api_token="toggl-alice-mapping-0123", workspace_name="Personal")
    workspace = user.default_workspace_id
    home = toggl_sim.add_client(workspace, "Home")
    series = toggl_sim.add_project(workspace, "Series", client_id=home.id, color="#c7741c")
    deep = toggl_sim.add_project(workspace, "Deep work", color="#2da608")
    email = toggl_sim.add_project(workspace, "Email", active=False)
    club = toggl_sim.world.add_workspace(owner_id=user.id, name="Book club")
    reading = toggl_sim.add_project(club.id, "Reading", color="url(http://evil.example/x)")
    account = await store.accounts.create("alice@example.com")
    await store.toggl_connections.create(account.id, user.api_token, origin=toggl_url)
    exist_sim.add_user("alice", timezone="Europe/Berlin")
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute("alice", template="productive_min", owner="rescuetime")
    token = exist_sim.issue_personal_token("alice", exist_oauth_client.client_id)
    await store.exist_connections.save(
        account.id, ExistTokens(access_token=SecretStr(token)), origin=exist_api_url
    )
    return Alice(account.id, workspace, series.id, deep.id, email.id, reading.id)


def owner(exist_sim: ExistSimulator, attribute: str) -> str | None:
    service = exist_sim.attribute("alice", attribute).service
    return service.name if service is not None else None


async def test_the_mapping_page_lists_every_project_with_client_colour_and_the_six_choices(
    client: httpx.AsyncClient, store: Store, alice: Alice, toggl_sim: TogglSimulator
) -> None:
    await sign_in(client, store, alice.account_id)
    toggl_sim.clear_requests()
    await get(client, "/")
    await get(client, "/status")
    assert toggl_sim.requests == [], "only the mapping page asks Toggl Track for projects"

    page = await get(client, "/mapping")
    assert page.h1 == "Set the Attributes from Toggl Track to send to Exist"
    assert toggl_sim.requests, "the projects come from Toggl Track"
    assert sorted(page.labels.values()) == ["Deep work", "Email", "Reading", "Series"]
    assert page.by_id(f"meta-{alice.series}") == "Home · Personal"
    assert page.by_id(f"meta-{alice.email}") == "Personal · archived"
    assert page.by_id(f"meta-{alice.reading}") == "Book club"
    assert "background-color: #c7741c" in page.html
    assert "evil.example" not in page.html, "only a colour ever reaches the style"
    series = page.field_labelled("Series")
    assert [o.label for o in series.options] == SIX
    assert series.chosen == ""
    assert "Exist gets Productive time from RescueTime now." in page.text
    assert f"{len(toggl_sim.requests)} Toggl Track requests" in page.text


async def test_saving_asks_before_a_takeover_then_acquires_in_exist(
    client: httpx.AsyncClient, store: Store, alice: Alice, exist_sim: ExistSimulator
) -> None:
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    chosen = {
        f"attribute_{alice.series}": "tv_min",
        f"attribute_{alice.deep_work}": "productive_min",
    }

    confirm = Page(await submit(client, page, "/mapping", **chosen))
    assert confirm.status == 200
    assert confirm.h1 == "Take over attributes from another service?"
    assert "Productive time, fed by RescueTime now (from your projects Deep work)" in (
        confirm.by_id("takeovers")
    )
    assert await store.mappings.for_account(alice.account_id) == [], "nothing saved yet"
    assert owner(exist_sim, "productive_min") == "rescuetime"

    saved = Page(await submit(client, confirm, "/mapping"))
    assert saved.h1 == "Mapping saved"
    assert "Watching TV from Series" in saved.by_id("mapped")
    assert "Productive time from Deep work" in saved.by_id("mapped")
    assert "Productive time was fed by RescueTime; Timebridge feeds it now." in saved.text
    assert await store.mappings.project_map(alice.account_id) == {
        alice.series: "tv_min",
        alice.deep_work: "productive_min",
    }
    assert owner(exist_sim, "tv_min") == owner(exist_sim, "productive_min") == "timebridge"

    again = await get(client, "/mapping")
    assert again.field_labelled("Series").chosen == "tv_min"
    assert again.field_labelled("Deep work").chosen == "productive_min"
    assert "RescueTime" not in again.text, "nothing to take over any more"


async def test_unmapping_gives_the_attribute_back_to_exist(
    client: httpx.AsyncClient, store: Store, alice: Alice, exist_sim: ExistSimulator
) -> None:
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    saved = Page(await submit(client, page, "/mapping", **{f"attribute_{alice.series}": "tv_min"}))
    assert saved.h1 == "Mapping saved", "no takeover, no question"
    assert owner(exist_sim, "tv_min") == "timebridge"

    page = await get(client, "/mapping")
    cleared = Page(await submit(client, page, "/mapping", **{f"attribute_{alice.series}": ""}))
    assert "No project is mapped now" in cleared.text
    assert cleared.by_id("released") == (
        "Watching TV is no longer mapped and was given back to Exist."
    )
    assert owner(exist_sim, "tv_min") is None
    assert await store.mappings.for_account(alice.account_id) == []


async def test_an_attribute_another_integration_holds_cannot_be_mapped(
    client: httpx.AsyncClient, store: Store, alice: Alice
) -> None:
    await store.claims.claim(alice.account_id, "tv_min", Integration.TRAKT)
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    assert "Watching TV is fed by your Trakt integration, so it cannot be mapped here." in (
        page.text
    )
    series = page.field_labelled("Series")
    assert next(o for o in series.options if o.value == "tv_min").disabled

    # A form sent anyway (an old tab, a crafted post): the store refuses it, in words.
    form = page.form("/mapping").data()
    form[f"attribute-{alice.series}"] = ["tv_min"]
    refused = Page(await client.post("/mapping", data=form))
    assert refused.status == 409
    assert refused.h1 == "Mapping not saved"
    assert "Watching TV is fed by your Trakt integration" in refused.text
    assert await store.mappings.for_account(alice.account_id) == []


async def test_an_attribute_exist_refuses_is_said_and_its_project_left_out(
    client: httpx.AsyncClient, store: Store, alice: Alice, exist_sim: ExistSimulator
) -> None:
    exist_sim.fail_items("alice", "gaming_min", "forbidden", "Not for you", endpoints=["acquire"])
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    saved = Page(
        await submit(
            client,
            page,
            "/mapping",
            **{f"attribute_{alice.series}": "gaming_min", f"attribute_{alice.email}": "tv_min"},
        )
    )
    assert saved.by_id("mapped") == "Watching TV from Email"
    assert saved.by_id("refused").startswith("Gaming: Exist did not let Timebridge feed it")
    assert "so Series is not sent" in saved.by_id("refused")
    assert await store.mappings.project_map(alice.account_id) == {alice.email: "tv_min"}


async def test_a_mapped_project_toggl_no_longer_lists_is_shown_and_can_be_dropped(
    client: httpx.AsyncClient, store: Store, alice: Alice
) -> None:
    await store.mappings.replace(
        alice.account_id, [ProjectMapping(alice.workspace_id, 999_999, "Old hobby", "gaming_min")]
    )
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    assert page.by_id("meta-999999") == "no longer in Toggl Track"
    assert page.field_labelled("Old hobby").chosen == "gaming_min"


async def test_a_form_with_an_attribute_not_offered_is_refused(
    client: httpx.AsyncClient, store: Store, alice: Alice
) -> None:
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    form = page.form("/mapping").data()
    form[f"attribute-{alice.series}"] = ["steps"]
    response = await client.post("/mapping", data=form)
    assert response.status_code == 400
    assert await store.mappings.for_account(alice.account_id) == []


async def test_the_mapping_page_says_what_to_connect_first(
    client: httpx.AsyncClient, store: Store, alice: Alice
) -> None:
    await sign_in(client, store, alice.account_id)
    await store.exist_connections.delete(alice.account_id)
    page = await get(client, "/mapping")
    assert "Connect Exist first" in page.text
    assert page.links["Connect Exist"] == "/connect/exist"
    assert not any(form.action == "/mapping" for form in page.forms)

    connection = await store.toggl_connections.default(alice.account_id)
    assert connection is not None
    await store.toggl_connections.delete(alice.account_id, connection.id)
    page = await get(client, "/mapping")
    assert "Connect Toggl Track first" in page.text
    assert page.links["Connect Toggl Track"] == "/connect/toggl"


async def test_a_form_naming_a_project_twice_or_a_huge_id_is_handled(
    client: httpx.AsyncClient, store: Store, alice: Alice
) -> None:
    await sign_in(client, store, alice.account_id)
    page = await get(client, "/mapping")
    form = page.form("/mapping").data(**{f"attribute_{alice.series}": "tv_min"})
    form["project"].append(f"{alice.workspace_id}:{alice.series}")
    saved = Page(await client.post("/mapping", data=form))
    assert saved.h1 == "Mapping saved"
    assert await store.mappings.project_map(alice.account_id) == {alice.series: "tv_min"}

    form["project"].append(f"{alice.workspace_id}:{2**64}")
    form[f"attribute-{2**64}"] = ["tv_min"]
    assert (await client.post("/mapping", data=form)).status_code == 400
