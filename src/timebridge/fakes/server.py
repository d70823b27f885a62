"""Running a simulator on a real socket: in a background thread (tests) or in the foreground."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass(frozen=True)
class RunningServer:
    """A simulator listening on 127.0.0.1."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test thread is not the main thread
        return None


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningServer]:
    """Serve `app` on a free port in a daemon thread for the duration of the block."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=logging.CRITICAL,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        # The host process's logging stays as it configured it (uvicorn's default config would
        # replace its handlers for uvicorn's records).
        log_config=None,
    )
    server = _QuietServer(config)
    thread = threading.Thread(target=server.run, name=f"simulator-{id(app):x}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.005)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(host, bound_port)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
