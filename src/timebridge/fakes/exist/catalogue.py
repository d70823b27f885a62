"""What the simulated Exist knows before any user exists: groups, templates, value types, scopes.

Taken from Exist's published lists (developer.exist.io, object types and OAuth2 scopes); only a
subset of the templates is included, enough for the bridge and for realistic neighbours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from timebridge.exist.models import ValueType


@dataclass(frozen=True)
class GroupSpec:
    name: str
    label: str
    priority: int


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    label: str
    group: str
    value_type: ValueType
    priority: int


GROUPS: dict[str, GroupSpec] = {
    spec.name: spec
    for spec in (
        GroupSpec("activity", "Activity", 1),
        GroupSpec("productivity", "Productivity", 2),
        GroupSpec("mood", "Mood", 3),
        GroupSpec("sleep", "Sleep", 4),
        GroupSpec("workouts", "Workouts", 5),
        GroupSpec("events", "Events", 6),
        GroupSpec("media", "Media", 7),
        GroupSpec("social", "Social", 8),
        GroupSpec("health", "Health and body", 9),
        GroupSpec("food", "Food and drink", 10),
        GroupSpec("finance", "Finance", 11),
        GroupSpec("location", "Location", 12),
        GroupSpec("weather", "Weather", 13),
        GroupSpec("symptoms", "Symptoms", 14),
        GroupSpec("medication", "Medication", 15),
        GroupSpec("custom", "Custom tags", 16),
    )
}

VALUE_TYPE_DESCRIPTIONS: dict[ValueType, str] = {
    ValueType.QUANTITY: "Integer",
    ValueType.DECIMAL: "Float",
    ValueType.STRING: "String",
    ValueType.DURATION: "Period (min)",
    ValueType.TIME_OF_DAY: "Time of day (min from midnight)",
    ValueType.PERCENTAGE: "Percentage",
    ValueType.TIME_OF_DAY_FROM_MIDDAY: "Time of day (min from midday)",
    ValueType.BOOLEAN: "Boolean",
    ValueType.SCALE: "Scale (1-9)",
}

_T = ValueType
TEMPLATES: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        TemplateSpec("steps", "Steps", "activity", _T.QUANTITY, 1),
        TemplateSpec("steps_active_min", "Active minutes", "activity", _T.DURATION, 2),
        TemplateSpec("productive_min", "Productive time", "productivity", _T.DURATION, 1),
        TemplateSpec("neutral_min", "Neutral time", "productivity", _T.DURATION, 2),
        TemplateSpec("distracting_min", "Distracting time", "productivity", _T.DURATION, 3),
        TemplateSpec("pomodoros_min", "Pomodoros", "productivity", _T.DURATION, 4),
        TemplateSpec("tasks_completed", "Tasks completed", "productivity", _T.QUANTITY, 5),
        TemplateSpec("commits", "Commits", "productivity", _T.QUANTITY, 6),
        TemplateSpec("words_written", "Words written", "productivity", _T.QUANTITY, 7),
        # [guess] its priority: one template hidden as "low priority" (>= 10) by default.
        TemplateSpec("keystrokes", "Keystrokes", "productivity", _T.QUANTITY, 10),
        TemplateSpec("mood", "Mood", "mood", _T.SCALE, 1),
        TemplateSpec("mood_note", "Mood note", "mood", _T.STRING, 2),
        TemplateSpec("energy_level", "Energy", "mood", _T.SCALE, 3),
        TemplateSpec("sleep", "Time asleep", "sleep", _T.DURATION, 1),
        TemplateSpec("sleep_start", "Bedtime", "sleep", _T.TIME_OF_DAY_FROM_MIDDAY, 2),
        TemplateSpec("sleep_end", "Wake time", "sleep", _T.TIME_OF_DAY, 3),
        TemplateSpec("events_duration", "Time in events", "events", _T.DURATION, 1),
        TemplateSpec("tracks", "Tracks played", "media", _T.QUANTITY, 1),
        TemplateSpec("tv_min", "Time watching TV", "media", _T.DURATION, 2),
        TemplateSpec("movies_min", "Time watching movies", "media", _T.DURATION, 3),
        TemplateSpec("gaming_min", "Time gaming", "media", _T.DURATION, 4),
        TemplateSpec("mobile_screen_min", "Phone screen time", "media", _T.DURATION, 5),
        TemplateSpec("pages_read", "Pages read", "media", _T.QUANTITY, 6),
        TemplateSpec("meditation_min", "Meditation", "health", _T.DURATION, 1),
        TemplateSpec("weight", "Weight", "health", _T.DECIMAL, 2),
        TemplateSpec("body_fat", "Body fat", "health", _T.PERCENTAGE, 3),
        TemplateSpec("coffees", "Coffees", "food", _T.QUANTITY, 1),
        TemplateSpec("money_spent", "Money spent", "finance", _T.DECIMAL, 1),
    )
}

_SCOPE_GROUPS = (
    "activity",
    "productivity",
    "mood",
    "sleep",
    "workouts",
    "events",
    "finance",
    "food",
    "health",
    "location",
    "media",
    "social",
    "weather",
    "symptoms",
    "medication",
    "custom",
    "manual",
)
#: Every OAuth2 scope Exist defines: `<group>_read` and `<group>_write`, plus the `manual_` pair.
SCOPES: frozenset[str] = frozenset(
    f"{group}_{access}" for group in _SCOPE_GROUPS for access in ("read", "write")
)

#: Attributes and templates whose `priority` is at least this are "low priority": reads hide
#: them unless `include_low_priority` is set (reference/attributes.md and
#: attribute_ownership.md: "include attributes with a `priority` >= 10").
LOW_PRIORITY = 10


def slugify(label: str) -> str:
    """Exist's API name for a custom attribute's label: "Time reading" -> "time_reading"."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return slug or "attribute"
