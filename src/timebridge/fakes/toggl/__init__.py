"""The Toggl Track v9 simulator."""

from timebridge.fakes.toggl.simulator import QUOTA_MESSAGE, RecordedRequest, TogglSimulator
from timebridge.fakes.toggl.state import SimulatorError, SimUser, TogglWorld

__all__ = [
    "QUOTA_MESSAGE",
    "RecordedRequest",
    "SimUser",
    "SimulatorError",
    "TogglSimulator",
    "TogglWorld",
]
