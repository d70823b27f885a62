"""`timebridge demo`: the whole bridge on embedded defaults, with nothing to set up.

Both simulators run in this process on loopback, seeded with a demo Toggl account (two weeks of
entries in seven projects) and a demo Exist user (whose productive time RescueTime fed until
now). A personal-mode account connects them in a fresh data directory (SQLite, generated key),
the first sync runs, and what Exist now holds is shown next to what Toggl says.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from timebridge.config import Settings
from timebridge.exist import AsyncExistClient
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import TogglSimulator
from timebridge.personal import PersonalRun, PersonalSync, parse_personal_config
from timebridge.store import open_store

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


@dataclass(frozen=True)
class DemoServers:
    toggl: RunningServer
    exist: RunningServer
    toggl_lines: tuple[str, ...]
    exist_lines: tuple[str, ...]

    @property
    def toggl_api(self) -> str:
        return f"{self.toggl.url}/api/v9"

    @property
    def exist_api(self) -> str:
        return f"{self.exist.url}/api/2"


@contextmanager
def demo_simulators(toggl_port: int = 0, exist_port: int = 0) -> Iterator[DemoServers]:
    """Both simulators, seeded, serving on loopback for the duration of the block."""
    toggl, exist = TogglSimulator(), ExistSimulator()
    toggl_lines, exist_lines = toggl.seed_demo(), exist.seed_demo()
    with ExitStack() as stack:
        toggl_server = stack.enter_context(serve_in_thread(toggl.asgi_app, port=toggl_port))
        exist_server = stack.enter_context(serve_in_thread(exist.asgi_app, port=exist_port))
        yield DemoServers(toggl_server, exist_server, tuple(toggl_lines), tuple(exist_lines))


def demo_settings(data_dir: Path, servers: DemoServers) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url="",
        toggl_base_url=servers.toggl_api,
        exist_base_url=servers.exist_api,
        exist_oauth_base_url=f"{servers.exist.url}/oauth2",
    )


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
        return await PersonalSync(config, settings, store).run()


async def exist_values(
    servers: DemoServers, attributes: list[str], days: int = 3
) -> Mapping[str, Mapping[date, int | None]]:
    """What Exist holds for `attributes` over the last `days` days (read back over HTTP)."""
    async with AsyncExistClient(DEMO_EXIST_TOKEN, base_url=servers.exist_api) as exist:
        profile = await exist.profile()
        today = profile.local_time.date() if profile.local_time else date.today()
        values: dict[str, dict[date, int | None]] = {}
        for attribute in attributes:
            found = await exist.values_between(attribute, today - timedelta(days=days - 1), today)
            values[attribute] = {
                item.date: int(item.value) if item.value is not None else None for item in found
            }
        return values
