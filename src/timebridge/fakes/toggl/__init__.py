"""The Toggl Track v9 simulator."""

from timebridge.fakes.toggl.simulator import QUOTA_MESSAGE, RecordedRequest, TogglSimulator
from timebridge.fakes.toggl.state import SimulatorError, SimUser, TogglWorld
from timebridge.fakes.toggl.webhooks import DeliveryFault, WebhookService, WebhookSettings

__all__ = [
    "QUOTA_MESSAGE",
    "DeliveryFault",
    "RecordedRequest",
    "SimUser",
    "SimulatorError",
    "TogglSimulator",
    "TogglWorld",
    "WebhookService",
    "WebhookSettings",
]
