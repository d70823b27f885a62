"""The one place where API operations meet HTTP, shared by the Toggl and Exist clients.

An API call is written once, as an *operation*: a generator that yields the `ApiRequest`s it
needs and receives each `httpx.Response` back, then returns its parsed result. Operations do no
I/O themselves, so the async and the sync client drive the very same code, and a multi-request
call (such as a window fetch that splits itself) is still one function. The drivers own retries,
sleeping and the translation of HTTP failures into the API's exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

import httpx

from timebridge.errors import UpstreamError
from timebridge.retry import RetryPolicy

T = TypeVar("T")
HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)

ParamValue = str | int | float | bool | None

#: Methods that can be repeated without changing the outcome (RFC 9110, section 9.2.2).
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request of an API, relative to the client's base URL.

    `path` is joined to the base URL (`me` under `https://api.track.toggl.com/api/v9/` is
    `…/api/v9/me`); each leading `../` first climbs one segment of the base URL's path, to reach
    a sibling API of the same service (`../../webhooks/api/v1/event_filters` is
    `https://api.track.toggl.com/webhooks/api/v1/event_filters`, and under a gateway's
    `…/toggl-track/api/v9/` it is `…/toggl-track/webhooks/api/v1/event_filters`). Climbing above
    the base URL's path is a `ValueError`. An absolute `http(s)://` URL is used as it is.
    """

    method: str
    path: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    json: object = None
    form: Mapping[str, str] | None = None
    #: Whether sending it twice is as good as sending it once; defaults by method.
    idempotent: bool | None = None

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in _IDEMPOTENT_METHODS

    def query(self) -> dict[str, str]:
        """Query parameters as strings; None values are left out, booleans are lowercase."""
        rendered: dict[str, str] = {}
        for key, value in self.params.items():
            if value is None:
                continue
            rendered[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return rendered


Operation = Generator[ApiRequest, httpx.Response, T]


class ErrorTranslator(Protocol):
    """Turns HTTP failures into one API's own exceptions."""

    #: The API's short name, for metrics and logs ("toggl", "exist").
    service: str

    def for_response(self, response: httpx.Response) -> UpstreamError | None:
        """The exception for a response, or None when the response is a success."""

    def for_transport(self, error: httpx.TransportError) -> UpstreamError:
        """The exception for a request that got no usable response."""


ResponseHook = Callable[[httpx.Response], None]
#: Told about every attempt: the service, the status (None when no answer came) and seconds.
RequestObserver = Callable[[str, int | None, float], None]
_observers: list[RequestObserver] = []


def observe_requests(observer: RequestObserver) -> None:
    """Register an observer of every upstream attempt (metrics); the core never imports them."""
    if observer not in _observers:
        _observers.append(observer)


def _notify(service: str, outcome: httpx.Response | httpx.TransportError, seconds: float) -> None:
    status = outcome.status_code if isinstance(outcome, httpx.Response) else None
    for observer in _observers:
        observer(service, status, seconds)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context per process for every client: building one loads the CA bundle, which
    costs about 20 ms, and a sync run opens two clients."""
    return ssl.create_default_context()


def tls_for(base_url: str) -> ssl.SSLContext | bool:
    """What a client of `base_url` verifies TLS with: the shared context for https; nothing to
    load for a plain-http origin (a simulator on loopback), which never speaks TLS."""
    return shared_ssl_context() if base_url.startswith("https://") else False


def _build(http: httpx.Client | httpx.AsyncClient, request: ApiRequest) -> httpx.Request:
    """The request, its URL put together as text and parsed once.

    `build_request` parses a URL three times over (path, merge with the base, query), about
    0.1 ms a request; the clients here set no client-wide query or cookies, so nothing is lost.
    """
    path = request.path
    if path.startswith(_ABSOLUTE):
        url = path
    elif path.startswith(_UP):
        climbed = len(path) - len(path.lstrip("./"))
        url = _climb(str(http.base_url), path[:climbed]) + path[climbed:]
    else:
        url = f"{http.base_url}{path.lstrip('/')}"
    query = request.query()
    if query:
        url += ("&" if "?" in url else "?") + str(httpx.QueryParams(query))
    return httpx.Request(
        request.method,
        httpx.URL(url),
        headers=http.headers,
        json=request.json if request.form is None else None,
        data=request.form,
        extensions={"timeout": http.timeout.as_dict()},
    )


_ABSOLUTE = ("http://", "https://")
_UP = "../"


@functools.lru_cache(maxsize=64)
def _climb(base_url: str, ups: str) -> str:
    """`base_url` (which ends with `/`) with as many trailing path segments removed as `ups`
    holds `../`; `ups` is only `.` and `/` characters, and must be a run of `../`."""
    levels, rest = divmod(len(ups), len(_UP))
    if rest or ups != _UP * levels:
        raise ValueError(f"a path may climb only with leading '../' segments (got {ups!r})")
    authority_end = base_url.find("/", base_url.find("//") + 2)
    origin, base_path = base_url[:authority_end], base_url[authority_end:]
    segments = base_path.strip("/").split("/") if base_path.strip("/") else []
    if levels > len(segments):
        raise ValueError(f"{ups!r} climbs above the base URL {base_url}")
    kept = segments[: len(segments) - levels]
    return origin + "/" + "".join(f"{segment}/" for segment in kept)


def _result(stop: StopIteration) -> object:
    return stop.value


class _Driver(Generic[HttpT]):
    """What both drivers share: their HTTP client, opened on first use, and judging each
    attempt's outcome against the retry policy."""

    def __init__(
        self,
        open_http: Callable[[], HttpT],
        errors: ErrorTranslator,
        policy: RetryPolicy,
        on_response: ResponseHook | None = None,
    ) -> None:
        self._open_http: Callable[[], HttpT] = open_http
        self._http: HttpT | None = None
        self._closed = False
        self._errors = errors
        self._policy = policy
        self._on_response = on_response
        #: HTTP requests sent so far, retries included: what a run spends of the API's quota.
        self.requests_sent = 0

    @property
    def http(self) -> HttpT:
        """The HTTP client, opened on first use: a run that never calls an API (most runs
        never write to Exist) pays nothing for it."""
        if self._http is None:
            if self._closed:
                raise RuntimeError("the client is closed")
            self._http = self._open_http()
        return self._http

    def _judge(
        self, request: ApiRequest, attempt: int, outcome: httpx.Response | httpx.TransportError
    ) -> httpx.Response | float:
        """The response if it is a success, else seconds to wait before retrying.

        Raises the API's exception when the policy gives up.
        """
        if isinstance(outcome, httpx.TransportError):
            error = self._errors.for_transport(outcome)
        else:
            if self._on_response is not None:
                self._on_response(outcome)
            failure = self._errors.for_response(outcome)
            if failure is None:
                return outcome
            error = failure
        delay = self._policy.next_delay(
            error.retry_reason,
            attempt,
            idempotent=request.is_idempotent,
            retry_after=error.retry_after,
        )
        if delay is None:
            raise error
        return delay


class AsyncDriver(_Driver[httpx.AsyncClient]):
    """Runs operations over an `httpx.AsyncClient`, with retries."""

    async def aclose(self) -> None:
        self._closed = True
        if self._http is not None:
            await self._http.aclose()

    async def run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                response = await self.send(request)
                request = operation.send(response)
        except StopIteration as stop:
            return cast(T, _result(stop))

    async def send(self, request: ApiRequest) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | httpx.TransportError
            self.requests_sent += 1
            began = time.perf_counter()
            try:
                outcome = await self.http.send(_build(self.http, request))
                await outcome.aread()
            except httpx.TransportError as exc:
                outcome = exc
            _notify(self._errors.service, outcome, time.perf_counter() - began)
            verdict = self._judge(request, attempt, outcome)
            if isinstance(verdict, httpx.Response):
                return verdict
            await asyncio.sleep(verdict)


class SyncDriver(_Driver[httpx.Client]):
    """Runs operations over an `httpx.Client`, with retries."""

    def close(self) -> None:
        self._closed = True
        if self._http is not None:
            self._http.close()

    def run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                response = self.send(request)
                request = operation.send(response)
        except StopIteration as stop:
            return cast(T, _result(stop))

    def send(self, request: ApiRequest) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | httpx.TransportError
            self.requests_sent += 1
            began = time.perf_counter()
            try:
                outcome = self.http.send(_build(self.http, request))
                outcome.read()
            except httpx.TransportError as exc:
                outcome = exc
            _notify(self._errors.service, outcome, time.perf_counter() - began)
            verdict = self._judge(request, attempt, outcome)
            if isinstance(verdict, httpx.Response):
                return verdict
            time.sleep(verdict)
