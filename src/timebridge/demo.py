"""`timebridge demo`: the whole bridge on embedded defaults, with nothing to set up.

Both simulators run in this process on loopback, seeded with a demo Toggl account (two weeks of
entries in seven projects) and a demo Exist user (whose productive time RescueTime fed until
now). A personal-mode account connects them in a fresh data directory (SQLite, generated key),
the first sync runs, and what Exist now holds for the last days, today marked, is read back.

Before anything starts, every port the demo needs is checked (`claim_ports`), so a busy one is
one clear message naming the option that picks another. The temporary data directory is removed
however the demo ends (`demo_directory`). The requests the demo makes are counted phase by phase
(`DemoRequests`), each HTTP attempt once, as `/metrics` counts them.
"""

from __future__ import annotations

import errno
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pydantic import SecretStr

from timebridge import metrics
from timebridge.bridge import Bridge, PersonalRun, PersonalSync
from timebridge.config import Settings
from timebridge.exist import AsyncExistClient
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import TogglSimulator
from timebridge.personal import parse_personal_config
from timebridge.store import WebhookEndpoint, open_store
from timebridge.sync.runner import RunReport

#: Where the demo's servers listen: loopback only, nothing is reachable from outside.
LOOPBACK = "127.0.0.1"
DEMO_TOGGL_TOKEN = "demo-toggl-token"
DEMO_EXIST_TOKEN = "demo-exist-token"
#: The demo's mapping, as a person would write it in timebridge.toml.
DEMO_MAPPING = {
    "Series": "tv",
    "Movies": "movies",
    "Games": "gaming",
    "Deep work": "productive",
    "Email": "neutral",
    "Social media": "distracting",
}


# --- ports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPort:
    """One port the demo listens on, and the command-line option that chooses it."""

    #: What listens there, for messages ("the Toggl Track simulator").
    role: str
    #: The option that sets it ("--toggl-port").
    option: str
    #: 0: any free port.
    number: int


class PortUnavailable(Exception):
    """Ports the demo needs cannot be listened on; the message names each one and how to
    choose another."""


#: How to pick other ports, appended to every `PortUnavailable` message.
FREE_PORTS_HINT = "or 0 for any free port; --free-ports picks free ports for all three"


def _bind(number: int, host: str) -> socket.socket:
    """A TCP socket bound to (host, number), as uvicorn binds its own: with SO_REUSEADDR, so a
    port only lingering in TIME_WAIT after an earlier run counts as free."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, number))
    except BaseException:
        sock.close()
        raise
    return sock


def _why_unusable(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "is in use by another program"
    if error.errno == errno.EACCES:
        return "needs privileges this user lacks"
    return f"cannot be listened on ({error.strerror or error})"


def claim_ports(
    service: DemoPort, simulators: Sequence[DemoPort], *, host: str = LOOPBACK
) -> socket.socket:
    """Check every port before anything starts; returns the service's socket, bound.

    The service's port is bound here and stays bound until the service listens on it, so it
    cannot be lost in between (port 0 binds a free one: the socket says which). A simulator's
    port is only tried (bound and released), since the simulators bind their own; port 0 is not
    tried, it is free by definition. `PortUnavailable` names every busy port and its option.
    """
    problems: list[str] = []
    seen: dict[int, DemoPort] = {}
    for port in (service, *simulators):
        earlier = seen.get(port.number)
        if port.number and earlier is not None:
            problems.append(
                f"port {port.number} is given twice: to {earlier.role} ({earlier.option}) "
                f"and to {port.role} ({port.option}); choose another with {port.option} N"
            )
        seen.setdefault(port.number, port)
    for port in simulators:
        if port.number == 0 or seen[port.number] is not port:
            continue
        try:
            _bind(port.number, host).close()
        except OSError as exc:
            problems.append(
                f"port {port.number} ({port.role}) {_why_unusable(exc)}; "
                f"choose another with {port.option} N"
            )
    service_socket: socket.socket | None = None
    try:
        service_socket = _bind(service.number, host)
    except OSError as exc:
        problems.insert(
            0,
            f"port {service.number} ({service.role}) {_why_unusable(exc)}; "
            f"choose another with {service.option} N",
        )
    if problems:
        if service_socket is not None:
            service_socket.close()
        raise PortUnavailable("\n".join([*problems, f"({FREE_PORTS_HINT})"]))
    assert service_socket is not None
    return service_socket


# --- the data directory ---------------------------------------------------------------------


@dataclass(frozen=True)
class DemoDirectory:
    """Where the demo keeps its SQLite file and key."""

    path: Path
    #: Made for this run: removed when the demo ends unless kept.
    temporary: bool


@contextmanager
def demo_directory(data_dir: Path | None, *, keep: bool = False) -> Iterator[DemoDirectory]:
    """`data_dir` (created 0700 if missing, never removed), or a new temporary directory (0700)
    that is removed when the block ends, however it ends (Ctrl+C and errors included), unless
    `keep`."""
    if data_dir is not None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        yield DemoDirectory(data_dir, temporary=False)
        return
    path = Path(tempfile.mkdtemp(prefix="timebridge-demo-"))
    try:
        yield DemoDirectory(path, temporary=True)
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


# --- the simulators -------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoServers:
    toggl: RunningServer
    exist: RunningServer
    toggl_lines: tuple[str, ...]
    exist_lines: tuple[str, ...]
    #: The Exist simulator itself, to register the service's OAuth redirect once it listens.
    exist_sim: ExistSimulator
    #: The Toggl simulator itself, to name the demo's projects in hints.
    toggl_sim: TogglSimulator

    @property
    def toggl_api(self) -> str:
        return f"{self.toggl.url}/api/v9"

    def toggl_project_id(self, name: str) -> int:
        """The id of the demo's Toggl project called `name`."""
        with self.toggl_sim.world.lock:
            return next(p.id for p in self.toggl_sim.world.projects.values() if p.name == name)

    @property
    def exist_api(self) -> str:
        return f"{self.exist.url}/api/2"


@contextmanager
def demo_simulators(toggl_port: int = 0, exist_port: int = 0) -> Iterator[DemoServers]:
    """Both simulators, seeded, serving on loopback for the duration of the block.

    `PortUnavailable` when one cannot listen on its port (check first with `claim_ports`:
    this is the fallback for a port taken in between).
    """
    toggl, exist = TogglSimulator(), ExistSimulator()
    toggl_lines, exist_lines = toggl.seed_demo(), exist.seed_demo()
    with ExitStack() as stack:
        # Webhook deliveries stop with the simulator (none is left waiting at exit).
        stack.callback(toggl.webhooks.close)
        servers: list[RunningServer] = []
        for app, port in ((toggl.asgi_app, toggl_port), (exist.asgi_app, exist_port)):
            try:
                servers.append(stack.enter_context(serve_in_thread(app, host=LOOPBACK, port=port)))
            except RuntimeError as exc:  # serve_in_thread's "did not start": the bind failed
                role = "Toggl Track" if app is toggl.asgi_app else "Exist"
                option = "--toggl-port" if app is toggl.asgi_app else "--exist-port"
                raise PortUnavailable(
                    f"the {role} simulator could not listen on port {port}; "
                    f"choose another with {option} N\n({FREE_PORTS_HINT})"
                ) from exc
        toggl_server, exist_server = servers
        yield DemoServers(
            toggl_server, exist_server, tuple(toggl_lines), tuple(exist_lines), exist, toggl
        )


#: The Exist simulator's demo OAuth client ("Sign in with Exist" in the demo).
DEMO_EXIST_CLIENT = ("timebridge-demo", "timebridge-demo-secret")


def demo_settings(
    data_dir: Path, servers: DemoServers, public_url: str = "http://127.0.0.1:8000"
) -> Settings:
    """The service's settings in the demo: the simulators, and "Sign in with Exist" through
    the Exist simulator's demo client, redirecting back to `public_url`."""
    servers.exist_sim.allow_redirect(DEMO_EXIST_CLIENT[0], f"{public_url}/signin/exist/callback")
    return Settings(
        data_dir=data_dir,
        database_url="",
        toggl_base_url=servers.toggl_api,
        exist_base_url=servers.exist_api,
        exist_oauth_base_url=f"{servers.exist.url}/oauth2",
        exist_client_id=DEMO_EXIST_CLIENT[0],
        exist_client_secret=SecretStr(DEMO_EXIST_CLIENT[1]),
        public_url=public_url,
    )


async def turn_on_webhooks(settings: Settings, account_id: int) -> WebhookEndpoint:
    """Toggl webhooks for the demo account, as `timebridge webhooks on` turns them on: the
    Toggl simulator probes `settings.public_url` while subscribing, so the service must answer
    there already. Where each workspace stands is in the endpoint's subscriptions."""
    async with await open_store(settings) as store:
        return await Bridge.from_settings(store, settings).webhooks.turn_on(account_id)


#: The demo project a webhook try-out times, and the Exist attribute it feeds.
TRY_PROJECT = ("Series", "tv_min")


def webhook_try_lines(servers: DemoServers, directory: Path, site: str) -> list[str]:
    """Ready-to-run commands that change an entry in the Toggl simulator, and where the change
    shows in Exist (the Toggl CLI's config and cache go to the demo's directory)."""
    project, attribute = TRY_PROJECT
    project_id = servers.toggl_project_id(project)
    return [
        f"  export TIMEBRIDGE_CONFIG={directory / 'cli.toml'} TOGGL_BASE_URL={servers.toggl_api} "
        f"TOGGL_API_TOKEN={DEMO_TOGGL_TOKEN} EXIST_BASE_URL={servers.exist_api} "
        f"EXIST_TOKEN={DEMO_EXIST_TOKEN}",
        f'  timebridge toggl entries start "Watching a series" --project {project_id} --yes',
        "  timebridge toggl entries stop --yes    # a minute or more later",
        f"  timebridge exist values {attribute} --days 1    # today's minutes, seconds after",
        f"  (or the Status page, signed in: {site}/status; "
        f"TIMEBRIDGE_DATA_DIR={directory} TIMEBRIDGE_PUBLIC_URL={site} "
        "timebridge webhooks status shows the subscription)",
    ]


async def sign_in_link(settings: Settings, account_id: int) -> str:
    """A one-time sign-in link to the demo account on the demo's site."""
    from timebridge.web.auth import login_link_url

    async with await open_store(settings) as store:
        secret, _ = await store.login_links.create(account_id)
    return login_link_url(settings.public_url, secret)


def demo_config_toml(servers: DemoServers) -> str:
    """The timebridge.toml that connects the demo account, for `timebridge sync --config`."""
    mapping = "\n".join(
        f'"{project}" = "{attribute}"' for project, attribute in DEMO_MAPPING.items()
    )
    return (
        f'[toggl]\napi_token = "{DEMO_TOGGL_TOKEN}"\nbase_url = "{servers.toggl_api}"\n\n'
        f'[exist]\ntoken = "{DEMO_EXIST_TOKEN}"\nbase_url = "{servers.exist_api}"\n\n'
        f"[mapping]\n{mapping}\n"
    )


async def first_sync(data_dir: Path, servers: DemoServers) -> PersonalRun:
    """Connect the demo account and run its first sync."""
    config = parse_personal_config(
        {
            "toggl": {"api_token": DEMO_TOGGL_TOKEN, "base_url": servers.toggl_api},
            "exist": {"token": DEMO_EXIST_TOKEN, "base_url": servers.exist_api},
            "mapping": DEMO_MAPPING,
        },
        environ={},
    )
    settings = demo_settings(data_dir, servers)
    async with await open_store(settings) as store:
        return await PersonalSync(config, settings, Bridge.from_settings(store, settings)).run()


# --- what the demo shows --------------------------------------------------------------------


@dataclass(frozen=True)
class Requests:
    """HTTP requests sent to each service, every attempt once (retries too), as `/metrics`
    counts them in `timebridge_upstream_requests_total`."""

    toggl: int = 0
    exist: int = 0

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.toggl + other.toggl, self.exist + other.exist)

    def __sub__(self, other: Requests) -> Requests:
        return Requests(self.toggl - other.toggl, self.exist - other.exist)


def requests_sent() -> Requests:
    """The requests this process has sent so far, read from the counters `/metrics` shows."""
    counts = metrics.upstream_request_counts()
    return Requests(toggl=counts.get("toggl", 0), exist=counts.get("exist", 0))


def demo_attributes(run: PersonalRun) -> list[str]:
    """The Exist attributes the demo account writes: as its mapping was saved (Exist may have
    given movies a custom attribute), or, where the run found the mapping already stored (a
    reused --data-dir), the templates the demo mapping names."""
    if run.mapping_update is not None:
        return sorted(set(run.mapping_update.mapping.values()))
    return sorted(f"{alias}_min" for alias in DEMO_MAPPING.values())


@dataclass(frozen=True)
class ExistTable:
    """What Exist holds for some attributes over the last few days."""

    #: Today in the Exist user's time zone (the day the bridge's window ends on).
    today: date
    #: That zone's IANA name.
    time_zone: str
    #: Oldest first, today last.
    days: tuple[date, ...]
    #: attribute -> date -> minutes; a date is missing where Exist holds nothing.
    values: Mapping[str, Mapping[date, int]]


async def exist_table(servers: DemoServers, attributes: Sequence[str], days: int = 3) -> ExistTable:
    """What Exist holds for `attributes` over the `days` days ending today, read back over HTTP
    (two requests: the profile, for the user's today, and the values of all attributes)."""
    async with AsyncExistClient(DEMO_EXIST_TOKEN, base_url=servers.exist_api) as exist:
        profile = await exist.profile()
        today = profile.local_time.date() if profile.local_time else date.today()
        found = (
            await exist.all_attributes_with_values(days=days, date_max=today, names=attributes)
            if attributes
            else []
        )
    window = tuple(today - timedelta(days=back) for back in reversed(range(days)))
    held: dict[str, dict[date, int]] = {attribute: {} for attribute in attributes}
    for attribute in found:
        if attribute.name not in held:
            continue
        for item in attribute.values:
            if item.date in window and isinstance(item.value, int | float):
                held[attribute.name][item.date] = int(item.value)
    return ExistTable(today, profile.timezone, window, held)


@dataclass(frozen=True)
class DemoRequests:
    """The demo's requests to the simulators, phase by phase, and in all."""

    #: (what was done, its requests), in order; phases that sent nothing are left out.
    phases: tuple[tuple[str, Requests], ...]

    @property
    def total(self) -> Requests:
        return sum((requests for _phase, requests in self.phases), Requests())


def demo_requests(run: PersonalRun, *, first_sync: Requests, read_back: Requests) -> DemoRequests:
    """The demo's requests until now, in phases.

    `first_sync` and `read_back` are what `requests_sent` grew by while `first_sync` and
    `exist_table` ran. The sync's own share is what its run record says (the run history shows
    it); the rest of `first_sync` went into connecting the account: projects resolved,
    attributes acquired, tokens checked.
    """
    result = run.result
    own = (
        Requests(result.toggl_requests, result.exist_requests)
        if isinstance(result, RunReport)
        else Requests()
    )
    phases = (
        ("connecting the account (Toggl projects, Exist attributes)", first_sync - own),
        ("the first sync", own),
        ("reading back the table", read_back),
    )
    return DemoRequests(tuple((phase, n) for phase, n in phases if n != Requests()))
