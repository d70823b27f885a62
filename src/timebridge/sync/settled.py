"""When a run may skip planning: nothing it plans from has changed since a run found nothing to do.

In steady state (hourly runs, nothing tracked since the last one) a run fetches an empty delta
and plans exactly what the last run planned: nothing. Planning means decoding two weeks of
entries and splitting each at midnights, which is not needed to prove, again, that nothing
changed.

A run that ends with nothing left to do leaves a `Settled` mark: a digest of everything a plan
depends on besides the clock (the entry snapshot's content, the mapping, the ledger and the
zone), the instant it was made, and until when the plan holds (`plan_holds_until`: the next
local midnight, or no time at all while a mapped entry runs). A later run whose inputs have
the same digest, inside that span, would plan nothing and so plans nothing. Any change (an
edit in Toggl, a new mapping, a value written or refused, a zone) changes the digest and the run
plans as always; Zero Out and Repair always plan.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from hashlib import blake2b
from zoneinfo import ZoneInfo

from timebridge.entries import EntrySnapshot
from timebridge.records import AttributeDate, Settled

__all__ = ["Settled", "inputs_digest"]


def inputs_digest(
    snapshot: EntrySnapshot,
    mapping: Mapping[int, str],
    ledger: Mapping[AttributeDate, int],
    zone: ZoneInfo,
) -> str:
    """A fingerprint of a plan's inputs other than the clock, the same in every process."""
    cells = [(name, day.toordinal(), value) for (name, day), value in sorted(ledger.items())]
    # JSON: unambiguous whatever the names hold.
    inputs = json.dumps(
        [snapshot.digest, zone.key, sorted(mapping.items()), cells], separators=(",", ":")
    )
    return blake2b(inputs.encode(), digest_size=16).hexdigest()
