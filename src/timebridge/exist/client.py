"""`AsyncExistClient` and its synchronous twin `ExistClient`.

Both run the same operations from `_api` through a driver that retries according to a
`RetryPolicy` and raises the exceptions of `timebridge.exist.errors`. On top of the driver they
own the token pair: a 401 triggers one refresh (when the client has a refresh token and the OAuth
client credentials), and every new pair goes to `on_tokens` before the next call, because Exist
invalidates the old pair the moment it issues a new one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable
from datetime import date, timedelta
from types import TracebackType
from typing import Self, TypeVar

import httpx

from timebridge import __version__
from timebridge._http import ApiRequest, AsyncDriver, Operation, SyncDriver, tls_for
from timebridge.clock import Clock, SystemClock
from timebridge.exist import _api
from timebridge.exist.errors import AuthenticationError, ExistErrors
from timebridge.exist.models import (
    AcquireItem,
    Attribute,
    AttributeWithValues,
    CreateItem,
    DayValue,
    ExistTokens,
    IncrementItem,
    OAuthApp,
    Page,
    Profile,
    ReleaseItem,
    Template,
    UpdateItem,
    WriteResult,
)
from timebridge.exist.oauth import DEFAULT_OAUTH_BASE_URL, token_url
from timebridge.retry import RetryPolicy

T = TypeVar("T")

DEFAULT_BASE_URL = "https://exist.io/api/2/"
USER_AGENT = f"timebridge/{__version__}"

#: Called with every new token pair; must persist it before returning. May be async for the
#: async client.
TokensCallback = Callable[[ExistTokens], Awaitable[None] | None]
SyncTokensCallback = Callable[[ExistTokens], None]


class _Credentials:
    """The token pair in use and what is needed to renew it; shared logic of both clients."""

    def __init__(
        self,
        token: str | ExistTokens | None,
        app: OAuthApp | None,
        clock: Clock,
        refresh_margin: timedelta,
        oauth_base_url: str,
    ) -> None:
        self.tokens = ExistTokens.personal(token) if isinstance(token, str) else token
        self.app = app
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.token_url = token_url(oauth_base_url)

    def secrets(self) -> list[str]:
        found: list[str] = []
        if self.tokens is not None:
            found.append(self.tokens.access_token.get_secret_value())
            if self.tokens.refresh_token is not None:
                found.append(self.tokens.refresh_token.get_secret_value())
        if self.app is not None:
            found.append(self.app.client_secret.get_secret_value())
        return found

    @property
    def can_refresh(self) -> bool:
        return self.app is not None and self.tokens is not None and self.tokens.can_refresh

    def refresh_due(self) -> bool:
        """Renew ahead of expiry (Exist tokens live a year), not on every call."""
        return (
            self.can_refresh
            and self.tokens is not None
            and self.tokens.expires_within(self.clock.now(), self.refresh_margin)
        )

    def require_tokens(self) -> ExistTokens:
        if self.tokens is None:
            raise AuthenticationError("not connected to Exist: no access token yet")
        return self.tokens

    def refresh_operation(self) -> Operation[ExistTokens]:
        tokens = self.require_tokens()
        if self.app is None or tokens.refresh_token is None:
            raise AuthenticationError(
                "cannot refresh the Exist token: it needs a refresh token and the OAuth client "
                "credentials"
            )
        return _api.refresh_tokens(
            self.app,
            refresh_token=tokens.refresh_token.get_secret_value(),
            token_url=self.token_url,
            now=self.clock.now(),
        )

    def exchange_operation(self, code: str, redirect_uri: str | None) -> Operation[ExistTokens]:
        if self.app is None:
            raise ValueError("exchanging a code needs the OAuth client credentials (app=...)")
        return _api.exchange_code(
            self.app,
            code=code,
            redirect_uri=redirect_uri,
            token_url=self.token_url,
            now=self.clock.now(),
        )


class _BearerAuth(httpx.Auth):
    """Signs API requests with the current access token; never the OAuth token endpoint."""

    def __init__(self, credentials: _Credentials) -> None:
        self._credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        tokens = self._credentials.tokens
        if tokens is not None and str(request.url) != self._credentials.token_url:
            request.headers["Authorization"] = f"Bearer {tokens.access_token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(<hidden>)"


def _with_slash(base_url: str) -> str:
    return base_url if base_url.endswith("/") else base_url + "/"


_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


def _release_items(items: Iterable[ReleaseItem | str]) -> list[ReleaseItem]:
    return [item if isinstance(item, ReleaseItem) else ReleaseItem(name=item) for item in items]


class AsyncExistClient:
    """Async client for the Exist API v2.

    `token` is a personal access token (a string) or an `ExistTokens` pair from the OAuth flow;
    with `app` (the OAuth client credentials) and a refresh token, the client refreshes once on a
    401 and shortly before the known expiry, handing each new pair to `on_tokens`. Base URLs
    point at Exist or at the simulator. Use it as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        token: str | ExistTokens | None = None,
        *,
        app: OAuthApp | None = None,
        on_tokens: TokensCallback | None = None,
        base_url: str = DEFAULT_BASE_URL,
        oauth_base_url: str = DEFAULT_OAUTH_BASE_URL,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        refresh_margin: timedelta = timedelta(days=7),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._credentials = _Credentials(
            token, app, clock or SystemClock(), refresh_margin, oauth_base_url
        )
        self._on_tokens = on_tokens
        self._refreshing = asyncio.Lock()
        self._base_url = _with_slash(base_url)
        open_http = functools.partial(
            httpx.AsyncClient,
            transport=transport,
            auth=_BearerAuth(self._credentials),
            base_url=self._base_url,
            timeout=httpx.Timeout(timeout),
            headers=_HEADERS,
            verify=tls_for(self._base_url),
        )
        self._driver = AsyncDriver(
            open_http, ExistErrors(self._credentials.secrets), retry or RetryPolicy()
        )

    def __repr__(self) -> str:
        return f"AsyncExistClient(base_url={self._base_url!r})"

    @property
    def tokens(self) -> ExistTokens | None:
        """The pair in use now (after any refresh)."""
        return self._credentials.tokens

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (retries and token refreshes included), for run reports."""
        return self._driver.requests_sent

    async def aclose(self) -> None:
        await self._driver.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- tokens ---

    async def _adopt(self, tokens: ExistTokens) -> None:
        # Kept in memory first: should persisting fail, this process still holds the only
        # working pair (the old one is already dead).
        self._credentials.tokens = tokens
        if self._on_tokens is not None:
            outcome = self._on_tokens(tokens)
            if inspect.isawaitable(outcome):
                await outcome

    async def _refresh_unless_replaced(self, used: ExistTokens | None) -> None:
        async with self._refreshing:
            # Another call may have refreshed while we waited: its pair is the one to use.
            if self._credentials.tokens is not used:
                return
            await self._adopt(await self._driver.run(self._credentials.refresh_operation()))

    async def refresh(self) -> ExistTokens:
        """Trade the refresh token for a new pair now (Exist invalidates the old pair)."""
        await self._refresh_unless_replaced(self._credentials.tokens)
        return self._credentials.require_tokens()

    async def exchange_code(self, code: str, redirect_uri: str | None = None) -> ExistTokens:
        """Finish the OAuth flow: trade the callback's code for the first pair.

        Give the `redirect_uri` the authorization URL named, or None if it named none."""
        tokens = await self._driver.run(self._credentials.exchange_operation(code, redirect_uri))
        await self._adopt(tokens)
        return tokens

    async def _send(self, request: ApiRequest) -> httpx.Response:
        if self._credentials.refresh_due():
            await self._refresh_unless_replaced(self._credentials.tokens)
        used = self._credentials.require_tokens()
        try:
            return await self._driver.send(request)
        except AuthenticationError:
            if not self._credentials.can_refresh:
                raise
        await self._refresh_unless_replaced(used)
        return await self._driver.send(request)

    async def _run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                response = await self._send(request)
                request = operation.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    # --- reading ---

    async def profile(self) -> Profile:
        """The user, with the time zone that defines their days."""
        return await self._run(_api.profile())

    async def templates(
        self,
        *,
        groups: Iterable[str] | None = None,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Template]:
        return await self._run(
            _api.templates(
                groups=groups, include_low_priority=include_low_priority, page=page, limit=limit
            )
        )

    async def all_templates(
        self, *, groups: Iterable[str] | None = None, include_low_priority: bool | None = None
    ) -> list[Template]:
        return await self._run(
            _api.all_pages(
                lambda page: _api.templates(
                    groups=groups, include_low_priority=include_low_priority, page=page
                )
            )
        )

    async def attributes(
        self,
        *,
        owned: bool | None = None,
        groups: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        include_inactive: bool | None = None,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Attribute]:
        """One page of the user's attributes (limited to the read scopes; those with priority
        >= 10 only with `include_low_priority`)."""
        return await self._run(
            _api.attributes(
                owned=owned,
                groups=groups,
                names=names,
                include_inactive=include_inactive,
                include_low_priority=include_low_priority,
                page=page,
                limit=limit,
            )
        )

    async def all_attributes(
        self,
        *,
        owned: bool | None = None,
        groups: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        include_inactive: bool | None = None,
        include_low_priority: bool | None = None,
    ) -> list[Attribute]:
        return await self._run(
            _api.all_pages(
                lambda page: _api.attributes(
                    owned=owned,
                    groups=groups,
                    names=names,
                    include_inactive=include_inactive,
                    include_low_priority=include_low_priority,
                    page=page,
                )
            )
        )

    async def owned_attributes(
        self,
        *,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Attribute]:
        """One page of the attributes this client owns (without `include_low_priority`, Exist
        leaves out those with priority >= 10)."""
        return await self._run(
            _api.owned_attributes(include_low_priority=include_low_priority, page=page, limit=limit)
        )

    async def all_owned_attributes(self, *, include_low_priority: bool = True) -> list[Attribute]:
        """Every attribute this client owns, low-priority ones included unless told otherwise:
        what we own does not depend on where Exist lists it."""
        return await self._run(
            _api.all_pages(
                lambda page: _api.owned_attributes(
                    include_low_priority=include_low_priority, page=page
                )
            )
        )

    async def attributes_with_values(
        self,
        *,
        days: int = 1,
        date_max: date | None = None,
        names: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[AttributeWithValues]:
        """One page of attributes with their last `days` (≤ 31) values up to `date_max`; a day
        without data reads as None or 0 (Exist answers either, see `DayValue.is_empty`)."""
        return await self._run(
            _api.attributes_with_values(
                days=days,
                date_max=date_max,
                names=names,
                groups=groups,
                include_low_priority=include_low_priority,
                page=page,
                limit=limit,
            )
        )

    async def all_attributes_with_values(
        self,
        *,
        days: int = 1,
        date_max: date | None = None,
        names: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        include_low_priority: bool | None = None,
    ) -> list[AttributeWithValues]:
        return await self._run(
            _api.all_pages(
                lambda page: _api.attributes_with_values(
                    days=days,
                    date_max=date_max,
                    names=names,
                    groups=groups,
                    include_low_priority=include_low_priority,
                    page=page,
                )
            )
        )

    async def values(
        self,
        attribute: str,
        *,
        date_max: date | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[DayValue]:
        """One page of an attribute's values, newest first; days without data are None."""
        return await self._run(_api.values(attribute, date_max=date_max, page=page, limit=limit))

    async def values_between(self, attribute: str, start: date, end: date) -> list[DayValue]:
        """Every day's value in [start, end], newest first, fetching as many pages as needed."""
        return await self._run(_api.values_between(attribute, start, end))

    # --- writing ---

    async def acquire(self, items: Iterable[AcquireItem]) -> WriteResult[AcquireItem]:
        """Own attributes (by template or by name); owning one already counts as success."""
        return await self._run(_api.acquire(items))

    async def release(self, items: Iterable[ReleaseItem | str]) -> WriteResult[ReleaseItem]:
        return await self._run(_api.release(_release_items(items)))

    async def create(self, items: Iterable[CreateItem]) -> WriteResult[CreateItem]:
        return await self._run(_api.create(items))

    async def update(self, items: Iterable[UpdateItem]) -> WriteResult[UpdateItem]:
        """Set day totals, in batches of 35; read `failed` — a 202 is a partial failure."""
        return await self._run(_api.update(items))

    async def increment(self, items: Iterable[IncrementItem]) -> WriteResult[IncrementItem]:
        return await self._run(_api.increment(items))


class ExistClient:
    """Synchronous client for the Exist API v2, with the same methods as `AsyncExistClient`."""

    def __init__(
        self,
        token: str | ExistTokens | None = None,
        *,
        app: OAuthApp | None = None,
        on_tokens: SyncTokensCallback | None = None,
        base_url: str = DEFAULT_BASE_URL,
        oauth_base_url: str = DEFAULT_OAUTH_BASE_URL,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        refresh_margin: timedelta = timedelta(days=7),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._credentials = _Credentials(
            token, app, clock or SystemClock(), refresh_margin, oauth_base_url
        )
        self._on_tokens = on_tokens
        self._refreshing = threading.Lock()
        self._base_url = _with_slash(base_url)
        open_http = functools.partial(
            httpx.Client,
            transport=transport,
            auth=_BearerAuth(self._credentials),
            base_url=self._base_url,
            timeout=httpx.Timeout(timeout),
            headers=_HEADERS,
            verify=tls_for(self._base_url),
        )
        self._driver = SyncDriver(
            open_http, ExistErrors(self._credentials.secrets), retry or RetryPolicy()
        )

    def __repr__(self) -> str:
        return f"ExistClient(base_url={self._base_url!r})"

    @property
    def tokens(self) -> ExistTokens | None:
        return self._credentials.tokens

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (retries and token refreshes included)."""
        return self._driver.requests_sent

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- tokens ---

    def _adopt(self, tokens: ExistTokens) -> None:
        self._credentials.tokens = tokens
        if self._on_tokens is not None:
            self._on_tokens(tokens)

    def _refresh_unless_replaced(self, used: ExistTokens | None) -> None:
        with self._refreshing:
            if self._credentials.tokens is not used:
                return
            self._adopt(self._driver.run(self._credentials.refresh_operation()))

    def refresh(self) -> ExistTokens:
        self._refresh_unless_replaced(self._credentials.tokens)
        return self._credentials.require_tokens()

    def exchange_code(self, code: str, redirect_uri: str | None = None) -> ExistTokens:
        tokens = self._driver.run(self._credentials.exchange_operation(code, redirect_uri))
        self._adopt(tokens)
        return tokens

    def _send(self, request: ApiRequest) -> httpx.Response:
        if self._credentials.refresh_due():
            self._refresh_unless_replaced(self._credentials.tokens)
        used = self._credentials.require_tokens()
        try:
            return self._driver.send(request)
        except AuthenticationError:
            if not self._credentials.can_refresh:
                raise
        self._refresh_unless_replaced(used)
        return self._driver.send(request)

    def _run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                response = self._send(request)
                request = operation.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    # --- reading ---

    def profile(self) -> Profile:
        return self._run(_api.profile())

    def templates(
        self,
        *,
        groups: Iterable[str] | None = None,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Template]:
        return self._run(
            _api.templates(
                groups=groups, include_low_priority=include_low_priority, page=page, limit=limit
            )
        )

    def all_templates(
        self, *, groups: Iterable[str] | None = None, include_low_priority: bool | None = None
    ) -> list[Template]:
        return self._run(
            _api.all_pages(
                lambda page: _api.templates(
                    groups=groups, include_low_priority=include_low_priority, page=page
                )
            )
        )

    def attributes(
        self,
        *,
        owned: bool | None = None,
        groups: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        include_inactive: bool | None = None,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Attribute]:
        return self._run(
            _api.attributes(
                owned=owned,
                groups=groups,
                names=names,
                include_inactive=include_inactive,
                include_low_priority=include_low_priority,
                page=page,
                limit=limit,
            )
        )

    def all_attributes(
        self,
        *,
        owned: bool | None = None,
        groups: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        include_inactive: bool | None = None,
        include_low_priority: bool | None = None,
    ) -> list[Attribute]:
        return self._run(
            _api.all_pages(
                lambda page: _api.attributes(
                    owned=owned,
                    groups=groups,
                    names=names,
                    include_inactive=include_inactive,
                    include_low_priority=include_low_priority,
                    page=page,
                )
            )
        )

    def owned_attributes(
        self,
        *,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Attribute]:
        return self._run(
            _api.owned_attributes(include_low_priority=include_low_priority, page=page, limit=limit)
        )

    def all_owned_attributes(self, *, include_low_priority: bool = True) -> list[Attribute]:
        """Every attribute this client owns, low-priority ones included unless told otherwise."""
        return self._run(
            _api.all_pages(
                lambda page: _api.owned_attributes(
                    include_low_priority=include_low_priority, page=page
                )
            )
        )

    def attributes_with_values(
        self,
        *,
        days: int = 1,
        date_max: date | None = None,
        names: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        include_low_priority: bool | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[AttributeWithValues]:
        return self._run(
            _api.attributes_with_values(
                days=days,
                date_max=date_max,
                names=names,
                groups=groups,
                include_low_priority=include_low_priority,
                page=page,
                limit=limit,
            )
        )

    def all_attributes_with_values(
        self,
        *,
        days: int = 1,
        date_max: date | None = None,
        names: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        include_low_priority: bool | None = None,
    ) -> list[AttributeWithValues]:
        return self._run(
            _api.all_pages(
                lambda page: _api.attributes_with_values(
                    days=days,
                    date_max=date_max,
                    names=names,
                    groups=groups,
                    include_low_priority=include_low_priority,
                    page=page,
                )
            )
        )

    def values(
        self,
        attribute: str,
        *,
        date_max: date | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[DayValue]:
        return self._run(_api.values(attribute, date_max=date_max, page=page, limit=limit))

    def values_between(self, attribute: str, start: date, end: date) -> list[DayValue]:
        return self._run(_api.values_between(attribute, start, end))

    # --- writing ---

    def acquire(self, items: Iterable[AcquireItem]) -> WriteResult[AcquireItem]:
        return self._run(_api.acquire(items))

    def release(self, items: Iterable[ReleaseItem | str]) -> WriteResult[ReleaseItem]:
        return self._run(_api.release(_release_items(items)))

    def create(self, items: Iterable[CreateItem]) -> WriteResult[CreateItem]:
        return self._run(_api.create(items))

    def update(self, items: Iterable[UpdateItem]) -> WriteResult[UpdateItem]:
        return self._run(_api.update(items))

    def increment(self, items: Iterable[IncrementItem]) -> WriteResult[IncrementItem]:
        return self._run(_api.increment(items))
