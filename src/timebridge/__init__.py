"""Timebridge: Toggl Track time into Exist.io, a Toggl Track gateway, and a typed Toggl client."""

__version__ = "0.1.0"
