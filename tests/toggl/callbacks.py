"""A webhook callback endpoint for tests: an ASGI app to serve on loopback."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send


@dataclass
class Receiver:
    """A callback endpoint: records each POST's JSON and answers `status`; with `echo`, answers
    a PING's validation code (Toggl's synchronous validation)."""

    status: int = 200
    echo: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = json.loads(body)
        with self.lock:
            self.events.append(event)
        answer = b""
        if self.echo and self.status == 200 and event.get("validation_code"):
            answer = json.dumps({"validation_code": event["validation_code"]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def pings(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for event in self.events if event.get("payload") == "ping"]
