"""The application layer: one account turned into a run.

    async with await open_store(settings) as store:
        bridge = Bridge.from_settings(store, settings)
        report = await bridge.sync(account_id)          # or plan / zero_out / repair
        saved = await bridge.save_mapping(account_id, projects)

`Bridge` (`service.py`) is what every caller uses — the schedulers, personal mode, the CLI and
the web pages, the gateway and webhooks; `Upstreams` (`clients.py`) builds an account's Toggl and
Exist clients from its connections' origins; `PersonalSync` (`personal.py`) keeps a
`timebridge.toml` in the store and runs it through the bridge; `Views` (`views.py`, as
`bridge.views`) is what the pages and the API show of an account; `Webhooks` (`webhooks.py`,
as `bridge.webhooks`) turns an account's Toggl webhooks on and off and keeps them working.
"""

from timebridge.bridge.clients import Upstreams
from timebridge.bridge.personal import MappingUpdate, PersonalRun, PersonalSync
from timebridge.bridge.results import (
    MappingSaved,
    PlannedWrite,
    Skipped,
    SkipReason,
    SyncNotPossible,
    SyncPreview,
)
from timebridge.bridge.service import Bridge
from timebridge.bridge.views import (
    AttributeDays,
    DayNotFound,
    DayView,
    EntryPart,
    Overview,
    ProjectListing,
    ProjectView,
    StatusView,
    Views,
)
from timebridge.bridge.webhooks import (
    CheckReport,
    Webhooks,
    WebhookStatus,
    WebhooksUnavailable,
)

__all__ = [
    "AttributeDays",
    "Bridge",
    "CheckReport",
    "DayNotFound",
    "DayView",
    "EntryPart",
    "MappingSaved",
    "MappingUpdate",
    "Overview",
    "PersonalRun",
    "PersonalSync",
    "PlannedWrite",
    "ProjectListing",
    "ProjectView",
    "SkipReason",
    "Skipped",
    "StatusView",
    "SyncNotPossible",
    "SyncPreview",
    "Upstreams",
    "Views",
    "WebhookStatus",
    "Webhooks",
    "WebhooksUnavailable",
]
