"""Fault injection for the simulators: chosen statuses, latency or dropped connections.

A `FaultPlan` holds rules; the `FaultInjector` ASGI middleware consults it before every request
reaches the simulator. Rules match by method and path pattern, fire with a probability, and may
be limited to the next N matching calls. Paths under `/_admin` are never faulted.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_admin"


class Fault(BaseModel):
    """One fault rule. Exactly what happens to a matching request:

    - `latency`: the answer is delayed by this many seconds (then the rest applies);
    - `drop`: the connection is closed mid-answer, so the client gets no usable response;
    - `status`: the simulator is bypassed and this status is returned with `body` and `headers`.

    A rule with only `latency` delays the real answer.
    """

    model_config = ConfigDict(extra="forbid")

    method: str | None = None
    path: str = "*"
    status: int | None = Field(default=None, ge=100, le=599)
    body: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    latency: float = Field(default=0.0, ge=0)
    drop: bool = False
    probability: float = Field(default=1.0, ge=0, le=1)
    #: Fire for the next `times` matching calls only; None means until the plan is cleared.
    times: int | None = Field(default=None, ge=1)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None


@dataclass
class FaultPlan:
    """The faults in force for one simulator; thread-safe, changeable while it runs."""

    rng: random.Random = field(default_factory=random.Random)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: How many requests each rule has hit, for tests that assert it.
    fired: int = 0

    def add(self, fault: Fault | None = None, **rule: Any) -> Fault:
        """Add a rule (a `Fault`, or its fields as keyword arguments) and return it."""
        fault = fault if fault is not None else Fault(**rule)
        with self._lock:
            self._rules.append(_Rule(fault, fault.times))
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[Fault]:
        with self._lock:
            return [rule.fault for rule in self._rules]

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, if any (the first matching rule that fires)."""
        if path.startswith(ADMIN_PREFIX):
            return None
        with self._lock:
            for rule in self._rules:
                if not rule.fault.matches(method, path):
                    continue
                if rule.fault.probability < 1 and self.rng.random() >= rule.fault.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                self.fired += 1
                return rule.fault
        return None


class ConnectionDropped(Exception):
    """Raised inside the server to make it abort the connection mid-response."""


class FaultInjector:
    """ASGI middleware applying a `FaultPlan` in front of a simulator."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.plan.pick(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.drop:
            # Start an answer that promises a body, then abort: the client sees the connection
            # close with nothing usable, as when a proxy or the network drops it.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise ConnectionDropped(f"fault plan dropped {scope['method']} {scope['path']}")
        if fault.status is None:
            await self.app(scope, receive, send)
            return
        await _plain_response(send, fault.status, fault.body, fault.headers)


async def _plain_response(send: Send, status: int, body: str, headers: dict[str, str]) -> None:
    encoded = body.encode()
    content_type = "application/json" if _is_json(body) else "text/plain; charset=utf-8"
    raw_headers = [(b"content-type", content_type.encode())]
    raw_headers += [(key.lower().encode(), value.encode()) for key, value in headers.items()]
    raw_headers.append((b"content-length", str(len(encoded)).encode()))
    start: Message = {"type": "http.response.start", "status": status, "headers": raw_headers}
    await send(start)
    await send({"type": "http.response.body", "body": encoded})


def _is_json(body: str) -> bool:
    if not body:
        return False
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
