"""The pages, as a signed-in person uses them: in-process through the app, against both
simulators over real HTTP, on SQLite and PostgreSQL.

Pages are read the way a browser shows them — their text, their forms and links — with a small
HTML reader (`Page`), and forms are submitted with the fields the page gave, as a browser
would (CSRF token included).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.jobs.test_tasks import World, make_world
from tests.web.test_app import running
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.store import AccountNotFound, Store
from timebridge.sync.runner import RunReport
from timebridge.web import create_app

BERLIN = ZoneInfo("Europe/Berlin")

# --- reading pages --------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}
#: Elements a browser lays out as blocks (or cells): their edges separate words.
_BLOCKS = {
    "address", "br", "caption", "dd", "div", "dl", "dt", "footer", "form", "h1", "h2", "h3",
    "header", "li", "main", "nav", "ol", "option", "p", "section", "table", "td", "th", "tr",
    "ul",
}  # fmt: skip


@dataclass
class Option:
    value: str
    label: str
    selected: bool
    disabled: bool


@dataclass
class Field:
    name: str
    value: str
    kind: str
    id: str | None = None
    options: list[Option] = field(default_factory=list)

    @property
    def chosen(self) -> str:
        """What a browser sends for this field."""
        if self.kind != "select":
            return self.value
        selected = [o for o in self.options if o.selected]
        return (selected or self.options)[0].value if self.options else ""


@dataclass
class Form:
    action: str
    method: str
    fields: list[Field] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def data(self, **changes: str) -> dict[str, list[str]]:
        """The form as a browser would post it, with `changes` typed or chosen by the user
        (names with "_" for "-": attribute_12 is attribute-12)."""
        wanted = {name.replace("_", "-"): value for name, value in changes.items()}
        wanted |= {name: value for name, value in changes.items() if name in self._names()}
        posted: dict[str, list[str]] = {}
        for item in self.fields:
            value = wanted.get(item.name, item.chosen)
            if item.kind == "select" and item.name in wanted:
                choice = next((o for o in item.options if o.value == value), None)
                assert choice is not None, f"{item.name} offers no {value!r}"
                assert not choice.disabled, f"{item.name}: {value!r} cannot be chosen"
            posted.setdefault(item.name, []).append(value)
        return posted

    def _names(self) -> set[str]:
        return {item.name for item in self.fields}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.by_id: dict[str, list[str]] = {}
        self.forms: list[Form] = []
        self.links: list[tuple[str, list[str]]] = []
        self.labels: dict[str, list[str]] = {}
        self.headings: list[tuple[str, list[str]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._stack: list[str] = []
        self._open_ids: list[tuple[str, int]] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._option: Option | None = None
        self._button: list[str] | None = None
        self._link: list[str] | None = None
        self._label: list[str] | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in _BLOCKS:
            self._space()
        if tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and "name" in a:
            self._form.fields.append(
                Field(a["name"], a.get("value", ""), a.get("type", "text"), a.get("id"))
            )
        elif tag == "select" and self._form is not None:
            self._select = Field(a.get("name", ""), "", "select", a.get("id"))
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = Option(a.get("value", ""), "", "selected" in a, "disabled" in a)
            self._select.options.append(self._option)
        elif tag == "button":
            self._button = []
        elif tag == "a" and "href" in a:
            self._link = []
            self.links.append((a["href"], self._link))
        elif tag == "label" and "for" in a:
            self._label = self.labels.setdefault(a["for"], [])
        elif tag in {"h1", "h2", "h3"}:
            self._heading = []
            self.headings.append((tag, self._heading))
        elif tag == "table" and "id" in a:
            self._table = self.tables[a["id"]] = []
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in {"td", "th"} and self._table is not None:
            self._cell = []
        if tag in _VOID:
            return
        self._stack.append(tag)
        if "id" in a:
            self.by_id[a["id"]] = []
            self._open_ids.append((a["id"], len(self._stack)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def _space(self) -> None:
        self.text.append(" ")
        for ident, _ in self._open_ids:
            self.by_id[ident].append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._space()
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._option = None
        elif tag == "button" and self._button is not None:
            if self._form is not None:
                self._form.buttons.append(" ".join("".join(self._button).split()))
            self._button = None
        elif tag == "a":
            self._link = None
        elif tag == "label":
            self._label = None
        elif tag in {"h1", "h2", "h3"}:
            self._heading = None
        elif tag == "table":
            self._table = None
        elif tag in {"td", "th"} and self._table is not None and self._cell is not None:
            self._table[-1].append(_words(self._cell))
            self._cell = None
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        self._open_ids = [(i, depth) for i, depth in self._open_ids if depth <= len(self._stack)]

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for ident, _ in self._open_ids:
            self.by_id[ident].append(data)
        for sink in (self._button, self._link, self._label, self._heading, self._cell):
            if sink is not None:
                sink.append(data)
        if self._option is not None:
            self._option.label += data


def _words(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


class Page:
    """A page as a person sees it: its text, headings, forms and links."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        reader = _Reader()
        reader.feed(response.text)
        self.html = response.text
        self.text = _words(reader.text)
        self.forms = reader.forms
        self.links = {_words(text): href for href, text in reader.links}
        self.hrefs = [href for href, _ in reader.links]
        self._ids = {ident: _words(parts) for ident, parts in reader.by_id.items()}
        self.labels = {ident: _words(parts) for ident, parts in reader.labels.items()}
        self.headings = [(tag, _words(parts)) for tag, parts in reader.headings]
        self.tables = reader.tables

    @property
    def h1(self) -> str:
        return next(text for tag, text in self.headings if tag == "h1")

    def by_id(self, ident: str) -> str:
        return self._ids[ident]

    def rows(self, table_id: str) -> list[list[str]]:
        """The body rows of a table, cell by cell (its header row left out)."""
        return self.tables[table_id][1:]

    def form(self, action: str) -> Form:
        return next(f for f in self.forms if f.action == action and f.method == "post")

    def field_labelled(self, label: str) -> Field:
        """The form field whose <label> reads `label`."""
        ident = next(i for i, text in self.labels.items() if text == label)
        return next(f for form in self.forms for f in form.fields if f.id == ident)


async def get(client: httpx.AsyncClient, path: str) -> Page:
    return Page(await client.get(path))


async def submit(
    client: httpx.AsyncClient, page: Page, action: str, **changes: str
) -> httpx.Response:
    """Submit the page's form for `action` with `changes`, as a browser would."""
    form = page.form(action)
    assert form.field("csrf_token").value, f"the form for {action} carries no CSRF token"
    return await client.post(action, data=form.data(**changes))


async def follow(client: httpx.AsyncClient, response: httpx.Response) -> Page:
    assert response.status_code == 303, response.text
    return await get(client, response.headers["location"])


# --- the site ---------------------------------------------------------------------------------


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, toggl_url: str, exist_api_url: str) -> Settings:
    return Settings(data_dir=tmp_path, toggl_base_url=toggl_url, exist_base_url=exist_api_url)


@pytest.fixture(name="client")
async def client_fixture(
    settings: Settings, store: Store, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings, store=store, run_scheduler=False, clock=clock, retry=RetryPolicy.testing()
    )
    async with running(app) as client:
        yield client


@pytest.fixture(name="world")
def world_fixture(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> World:
    return make_world(
        store, clock, toggl_sim, toggl_url, exist_sim, exist_api_url, exist_oauth_url,
        exist_oauth_client,
    )  # fmt: skip


async def sign_in(client: httpx.AsyncClient, store: Store, account_id: int) -> None:
    """Sign the client in with a one-time link, as `timebridge login-link` prints."""
    client.cookies.clear()
    secret, _ = await store.login_links.create(account_id)
    response = await client.get(f"/signin/link/{secret}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def csrf_of(page: Page) -> str:
    return next(f.value for form in page.forms for f in form.fields if f.name == "csrf_token")


#: Every page a signed-in person can open, with the heading it shows.
PAGES = {
    "/": "Hello",
    "/connect/toggl": "Connect Toggl Track",
    "/connect/exist": "Connect Exist",
    "/mapping": "Set the Attributes from Toggl Track to send to Exist",
    "/status": "Status",
    "/zero-out": "Zero Out",
    "/repair": "Repair",
    "/disconnect/toggl": "Disconnect Toggl Track",
    "/disconnect/exist": "Disconnect Exist",
    "/account/delete": "Delete my account",
    "/settings": "Settings",
}
#: Every change a page can ask for.
ACTIONS = [
    "/sync",
    "/connect/toggl",
    "/connect/exist",
    "/mapping",
    "/zero-out",
    "/repair",
    "/disconnect/toggl",
    "/disconnect/exist",
    "/account/delete",
    "/settings",
]


# --- signed out, signed in ------------------------------------------------------------------------


async def test_signed_out_every_page_and_action_sends_to_sign_in_and_back(
    client: httpx.AsyncClient,
) -> None:
    for path in [*PAGES, "/status/tv_min/2026-03-10"]:
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin?next="), path
        page = await follow(client, response)
        assert page.form("/signin/toggl").field("next").value == path
    for path in ACTIONS:
        response = await client.post(path, data={"csrf_token": "x"})
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin"), path


async def test_every_page_renders_for_a_signed_in_person(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await sign_in(client, store, alice)
    for path, heading in PAGES.items():
        page = await get(client, path)
        assert page.status == 200, (path, page.text)
        assert page.h1.startswith(heading), (path, page.h1)
        nav = [text for text, href in page.links.items() if href in {"/", "/mapping"}]
        assert "Mapping" in nav, "the main navigation is on every page"
        assert page.form("/signout").buttons == ["Sign out"]


async def test_a_page_the_site_does_not_have_is_a_404_page(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    await sign_in(client, store, await world.connect("alice"))
    page = await get(client, "/status/tv_min/not-a-date")
    assert page.status == 404
    assert page.h1 == "Not found"


# --- home -----------------------------------------------------------------------------------------


async def test_home_of_a_new_account_says_what_to_connect(
    client: httpx.AsyncClient, store: Store
) -> None:
    account = await store.accounts.create("new@example.com", display_name="Nina")
    await sign_in(client, store, account.id)
    page = await get(client, "/")
    assert page.h1 == "Hello, Nina"
    assert page.links["Connect Toggl Track"] == "/connect/toggl"
    assert page.links["Connect Exist"] == "/connect/exist"
    assert "Not connected." in page.by_id("toggl-heading") + page.text
    assert page.by_id("last-run") == "None yet."
    assert page.by_id("next-run") == "No sync is planned: connect Toggl Track first."


async def test_home_shows_both_connections_the_last_run_and_the_next(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    report = await world.bridge.sync(alice)
    assert isinstance(report, RunReport)
    await sign_in(client, store, alice)
    page = await get(client, "/")
    assert "Toggl Track Active" in page.text
    assert "Exist Active; Exist counts your days in Europe/Berlin." in page.text
    last = page.by_id("last-run")
    # 12:00 UTC is 13:00 in Berlin, the zone Exist uses for Alice's days.
    assert last.startswith("Tue 10 Mar 2026, 13:00 (Sync): Succeeded.")
    assert (
        f"{report.values_written} values written, {report.toggl_requests} Toggl Track and "
        f"{report.exist_requests} Exist requests." in last
    )
    # Every hour at :40 (UTC): the next is 12:40 UTC, 13:40 in Berlin. This app runs no
    # scheduler of its own (`serve --no-scheduler`): workers run the syncs.
    assert page.by_id("next-run") == (
        "Tue 10 Mar 2026, 13:40. Syncs are run by the worker processes of this service."
    )
    assert "every hour at :40" in page.text
    assert page.form("/sync").buttons == ["Sync now"]


async def test_home_says_why_a_broken_exist_connection_stopped_syncing(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    await store.exist_connections.mark_broken(alice)
    await sign_in(client, store, alice)
    page = await get(client, "/")
    assert "Broken: Exist refused the token even after a refresh" in page.text
    assert page.links["Connect Exist"] == "/connect/exist"
    assert page.links["Disconnect Exist"] == "/disconnect/exist"
    assert page.by_id("next-run") == "No sync is planned: connect Exist first."


async def test_home_says_why_toggl_failed(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    connection = await store.toggl_connections.default(alice)
    assert connection is not None
    await store.toggl_connections.mark_failed(alice, connection.id, "Toggl Track said 403.")
    await sign_in(client, store, alice)
    page = await get(client, "/")
    assert "Broken: Toggl Track said 403. Connect again with a new token." in page.text
    assert page.links["Connect Toggl Track"] == "/connect/toggl"
    assert page.links["Disconnect Toggl Track"] == "/disconnect/toggl"
    assert page.by_id("next-run") == "No sync is planned: connect Toggl Track first."


# --- Sync now -------------------------------------------------------------------------------------


async def test_sync_now_brings_exist_to_toggls_truth_and_says_so(
    world: World, client: httpx.AsyncClient, store: Store, exist_sim: ExistSimulator
) -> None:
    alice = await world.connect("alice")
    await sign_in(client, store, alice)
    home = await get(client, "/")

    refused = await client.post("/sync", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert await store.sync_runs.count(alice) == 0, "nothing ran without the form's token"

    after = await follow(client, await submit(client, home, "/sync"))
    flash = after.by_id("flash")
    assert flash.startswith("Sync finished: Succeeded.")
    assert re.search(r"\d+ values written to Exist, \d+ requests made\.", flash)
    await world.assert_exist_matches_toggl(alice, "alice")


async def test_sync_now_without_toggl_says_nothing_was_synced(
    client: httpx.AsyncClient, store: Store
) -> None:
    account = await store.accounts.create("new@example.com")
    await sign_in(client, store, account.id)
    page = await follow(client, await submit(client, await get(client, "/"), "/sync"))
    assert "Nothing was synced: connect Toggl Track first." in page.text


# --- settings ----------------------------------------------------------------------------------


async def test_settings_keep_a_valid_time_zone_and_refuse_others(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await sign_in(client, store, alice)
    page = await get(client, "/settings")
    assert "every hour at :40" in page.by_id("schedule")
    assert "Exist uses Europe/Berlin for your days" in page.text
    assert page.field_labelled("Time zone").value == ""

    wrong = Page(await submit(client, page, "/settings", time_zone="Mars/Olympus_Mons"))
    assert wrong.status == 400
    assert "“Mars/Olympus_Mons” is not a time zone name" in wrong.text
    assert (await store.accounts.get(alice)).time_zone is None

    saved = await follow(client, await submit(client, page, "/settings", time_zone="Asia/Tokyo"))
    assert "Your time zone is saved." in saved.text
    assert saved.field_labelled("Time zone").value == "Asia/Tokyo"
    assert (await store.accounts.get(alice)).time_zone == "Asia/Tokyo"
    home = await get(client, "/")
    assert "Times here are in Asia/Tokyo" in home.text, "pages follow the chosen zone"

    cleared = await follow(client, await submit(client, saved, "/settings", time_zone=""))
    assert cleared.field_labelled("Time zone").value == ""
    assert (await store.accounts.get(alice)).time_zone is None


async def test_sign_out_everywhere_ends_every_session(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    other_secret, _ = await store.sessions.create(alice)
    await sign_in(client, store, alice)
    page = await get(client, "/settings")
    response = await submit(client, page, "/signout/everywhere")
    assert response.headers["location"] == "/signin"
    assert await store.sessions.get(other_secret) is None
    assert (await client.get("/")).status_code == 303


# --- CSRF and accounts ----------------------------------------------------------------------------


async def test_every_action_needs_the_sessions_csrf_token(
    world: World, client: httpx.AsyncClient, store: Store, exist_sim: ExistSimulator
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    bob = await world.connect("bob")
    await sign_in(client, store, bob)
    bobs_token = csrf_of(await get(client, "/"))
    await sign_in(client, store, alice)
    for path in ACTIONS:
        for token in [None, "forged", bobs_token]:
            data = {"confirm": "DELETE", "time_zone": "Asia/Tokyo", "api_token": "x"}
            if token is not None:
                data["csrf_token"] = token
            response = await client.post(path, data=data)
            assert response.status_code == 403, (path, token)
            assert "This form has expired" in Page(response).text
    assert await store.sync_runs.count(alice) == 1, "no run was started"
    assert await store.toggl_connections.default(alice) is not None
    assert await store.exist_connections.get(alice) is not None
    assert (await store.accounts.get(alice)).time_zone is None


async def test_another_accounts_days_are_not_found(
    world: World, client: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    bob = await store.accounts.create("bob@example.com")
    await sign_in(client, store, bob.id)
    today = clock.now().astimezone(BERLIN).date()
    for path in [
        f"/status/tv_min/{today.isoformat()}",
        f"/status/productive_min/{(today - timedelta(days=1)).isoformat()}",
    ]:
        page = await get(client, path)
        assert page.status == 404, path
        assert "Watching TV" not in page.text
    page = await get(client, "/status")
    assert "No project is mapped yet." in page.text
    assert "Series" not in page.text

    await sign_in(client, store, alice)
    assert (await client.get(f"/status/tv_min/{today.isoformat()}")).status_code == 200
    outside = today - timedelta(days=14)
    assert (await client.get(f"/status/tv_min/{outside.isoformat()}")).status_code == 404


# --- deleting the account -------------------------------------------------------------------------


async def test_delete_my_account_needs_the_word_then_removes_everything(
    world: World, client: httpx.AsyncClient, store: Store, exist_sim: ExistSimulator
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await sign_in(client, store, alice)
    page = await get(client, "/account/delete")
    assert page.field_labelled("Type DELETE to confirm").kind == "text"

    wrong = Page(await submit(client, page, "/account/delete", confirm="delete"))
    assert wrong.status == 400
    assert "Type DELETE in capitals" in wrong.text
    assert (await store.accounts.get(alice)).id == alice

    response = await submit(client, page, "/account/delete", confirm="DELETE")
    assert response.headers["location"] == "/signin?deleted=1"
    signin = await get(client, response.headers["location"])
    assert "Your account is deleted" in signin.text
    with pytest.raises(AccountNotFound):
        await store.accounts.get(alice)
    owned = {a.name for a in exist_sim.attributes("alice") if a.service is not None}
    assert not owned & {"tv_min", "productive_min"}, "the attributes were given back"
    assert (await client.get("/")).status_code == 303
