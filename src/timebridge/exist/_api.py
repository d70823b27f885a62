"""Every Exist API v2 call, built in one place as an I/O-free operation.

Each function validates its arguments (raising `ValueError` before any request), yields the
request(s) it needs and parses the answers into models. `AsyncExistClient` and `ExistClient` run
these operations; nothing else builds Exist requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from timebridge._http import ApiRequest, Operation, ParamValue
from timebridge.exist.errors import ExistError
from timebridge.exist.models import (
    ERROR_UNREPORTED,
    AcquireItem,
    Attribute,
    AttributeWithValues,
    CreateItem,
    DayValue,
    ExistTokens,
    Failed,
    IncrementItem,
    OAuthApp,
    Page,
    Payload,
    Profile,
    ReleaseItem,
    Succeeded,
    Template,
    UpdateItem,
    WriteResult,
)

M = TypeVar("M", bound=BaseModel)
ItemT = TypeVar("ItemT", bound=Payload)

#: Exist refuses a write body of more than this many objects.
BATCH_SIZE = 35
#: `attributes/with-values/` returns at most this many days per attribute.
MAX_DAYS = 31
#: `attributes/values/` pages hold at most this many values.
MAX_VALUES_PER_PAGE = 100


# --- argument checks ------------------------------------------------------------------------------


def _local_date(name: str, value: date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise ValueError(f"{name} must be the user's local date (a datetime.date), not a datetime")
    return value.isoformat()


def _names(name: str, values: Iterable[str] | None) -> str | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    cleaned = [value.strip() for value in values]
    if not cleaned or not all(cleaned):
        raise ValueError(f"{name} must be a non-empty list of non-blank names")
    return ",".join(cleaned)


def _page_params(
    page: int | None, limit: int | None, max_limit: int | None = None
) -> dict[str, ParamValue]:
    if page is not None and page < 1:
        raise ValueError("page numbers start at 1")
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    if limit is not None and max_limit is not None and limit > max_limit:
        raise ValueError(f"limit must be at most {max_limit}")
    return {"page": page, "limit": limit}


def _page(model: type[M], response: httpx.Response) -> Page[M]:
    return Page[model].model_validate_json(response.content)  # type: ignore[valid-type]


# --- reading --------------------------------------------------------------------------------------


def profile() -> Operation[Profile]:
    response = yield ApiRequest("GET", "accounts/profile/")
    return Profile.model_validate_json(response.content)


def templates(
    *,
    groups: Iterable[str] | None = None,
    include_low_priority: bool | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Operation[Page[Template]]:
    params: dict[str, ParamValue] = {
        "groups": _names("groups", groups),
        "include_low_priority": include_low_priority,
        **_page_params(page, limit),
    }
    response = yield ApiRequest("GET", "attributes/templates/", params)
    return _page(Template, response)


def _attribute_filters(
    *,
    groups: Iterable[str] | None,
    names: Iterable[str] | None,
    manual: bool | None,
    exclude_custom: bool | None,
    include_inactive: bool | None,
    include_low_priority: bool | None,
    page: int | None,
    limit: int | None,
) -> dict[str, ParamValue]:
    return {
        "groups": _names("groups", groups),
        "attributes": _names("names", names),
        "manual": manual,
        "exclude_custom": exclude_custom,
        "include_inactive": include_inactive,
        "include_low_priority": include_low_priority,
        **_page_params(page, limit),
    }


def attributes(
    *,
    owned: bool | None = None,
    groups: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
    manual: bool | None = None,
    exclude_custom: bool | None = None,
    include_inactive: bool | None = None,
    include_low_priority: bool | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Operation[Page[Attribute]]:
    """`GET attributes/`: the user's attributes without values, limited to the read scopes;
    those with priority >= 10 only with `include_low_priority` (reference/attributes.md)."""
    params = _attribute_filters(
        groups=groups,
        names=names,
        manual=manual,
        exclude_custom=exclude_custom,
        include_inactive=include_inactive,
        include_low_priority=include_low_priority,
        page=page,
        limit=limit,
    )
    params["owned"] = owned
    response = yield ApiRequest("GET", "attributes/", params)
    return _page(Attribute, response)


def owned_attributes(
    *,
    groups: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
    include_inactive: bool | None = None,
    include_low_priority: bool | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Operation[Page[Attribute]]:
    """`GET attributes/owned/`: the attributes this client owns, each with its `service`.

    Like `attributes/`, it hides attributes with priority >= 10 unless `include_low_priority`
    is true (reference/attribute_ownership.md)."""
    params = _attribute_filters(
        groups=groups,
        names=names,
        manual=None,
        exclude_custom=None,
        include_inactive=include_inactive,
        include_low_priority=include_low_priority,
        page=page,
        limit=limit,
    )
    response = yield ApiRequest("GET", "attributes/owned/", params)
    return _page(Attribute, response)


def attributes_with_values(
    *,
    days: int = 1,
    date_max: date | None = None,
    groups: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
    templates: Iterable[str] | None = None,
    manual: bool | None = None,
    include_low_priority: bool | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Operation[Page[AttributeWithValues]]:
    """`GET attributes/with-values/`: attributes with their last `days` values (at most 31).

    reference/attributes.md does not list `include_low_priority` for this endpoint (it does for
    `attributes/` and `owned/`); it is sent when set, in case Exist hides low-priority
    attributes here too."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS} (got {days})")
    params: dict[str, ParamValue] = {
        "days": days,
        "date_max": _local_date("date_max", date_max),
        "groups": _names("groups", groups),
        "attributes": _names("names", names),
        "templates": _names("templates", templates),
        "manual": manual,
        "include_low_priority": include_low_priority,
        **_page_params(page, limit),
    }
    response = yield ApiRequest("GET", "attributes/with-values/", params)
    return _page(AttributeWithValues, response)


def values(
    attribute: str,
    *,
    date_max: date | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Operation[Page[DayValue]]:
    """`GET attributes/values/`: one page of an attribute's values, newest first, every day."""
    if not attribute or not attribute.strip():
        raise ValueError("attribute must be a non-blank name")
    params: dict[str, ParamValue] = {
        "attribute": attribute.strip(),
        "date_max": _local_date("date_max", date_max),
        **_page_params(page, limit, MAX_VALUES_PER_PAGE),
    }
    response = yield ApiRequest("GET", "attributes/values/", params)
    return _page(DayValue, response)


def all_pages(fetch: Callable[[int], Operation[Page[M]]]) -> Operation[list[M]]:
    """Every result of a paged list: `fetch(page)` for page 1, 2, … until `next` is null."""
    results: list[M] = []
    number = 1
    while True:
        page = yield from fetch(number)
        results.extend(page.results)
        if not page.has_next or not page.results:
            return results
        number += 1


def values_between(attribute: str, start: date, end: date) -> Operation[list[DayValue]]:
    """The values of `attribute` for every local date in [start, end], newest first."""
    _local_date("start", start)
    _local_date("end", end)
    if end < start:
        raise ValueError("end must not be before start")
    found: list[DayValue] = []
    number = 1
    while True:
        page = yield from values(attribute, date_max=end, page=number, limit=MAX_VALUES_PER_PAGE)
        found.extend(value for value in page.results if start <= value.date <= end)
        reached_start = any(value.date <= start for value in page.results)
        if reached_start or not page.has_next or not page.results:
            return found
        number += 1


# --- writing --------------------------------------------------------------------------------------


def _batches(items: Sequence[ItemT]) -> Iterable[Sequence[ItemT]]:
    for offset in range(0, len(items), BATCH_SIZE):
        yield items[offset : offset + BATCH_SIZE]


def _as_attribute(echo: Mapping[str, object]) -> Attribute | None:
    if not isinstance(echo.get("group"), dict) or "value_type" not in echo:
        return None
    try:
        return Attribute.model_validate(echo)
    except ValidationError:
        return None


def _batch_result(batch: Sequence[ItemT], response: httpx.Response) -> WriteResult[ItemT]:
    """Pair Exist's `success`/`failed` echoes with the items sent, so each failure keeps the
    original item. An echo that matches no item takes the first unclaimed item (Exist keeps
    the request's order); an item no echo mentions is reported as failed (`unreported`)."""
    payload = response.json()
    if not isinstance(payload, dict):
        raise ExistError(f"unexpected answer to a write: {response.text[:200]}")
    success = payload.get("success") or []
    failed = payload.get("failed") or []
    if not isinstance(success, list) or not isinstance(failed, list):
        raise ExistError(f"unexpected answer to a write: {response.text[:200]}")
    unclaimed = list(range(len(batch)))

    def claim(echo: Mapping[str, object]) -> ItemT | None:
        for position, index in enumerate(unclaimed):
            if batch[index].matches(echo):
                del unclaimed[position]
                return batch[index]
        return batch[unclaimed.pop(0)] if unclaimed else None

    succeeded: list[Succeeded[ItemT]] = []
    for echo in success:
        if not isinstance(echo, dict):
            continue
        item = claim(echo)
        if item is None:
            continue
        current = echo.get("current")
        name = echo.get("name")
        succeeded.append(
            Succeeded(
                item=item,
                current=current if isinstance(current, int | float | str) else None,
                attribute=_as_attribute(echo),
                name=name if isinstance(name, str) else None,
            )
        )
    failures: list[Failed[ItemT]] = []
    for echo in failed:
        if not isinstance(echo, dict):
            continue
        item = claim(echo)
        if item is None:
            continue
        failures.append(
            Failed(
                item=item,
                error_code=str(echo.get("error_code") or "unknown"),
                error=str(echo.get("error") or ""),
            )
        )
    for index in unclaimed:
        failures.append(
            Failed(
                item=batch[index],
                error_code=ERROR_UNREPORTED,
                error="Exist's answer did not mention this item",
            )
        )
    return WriteResult(succeeded=succeeded, failed=failures)


def _write(
    path: str,
    items: Iterable[ItemT],
    *,
    idempotent: bool,
    params: Mapping[str, ParamValue] | None = None,
) -> Operation[WriteResult[ItemT]]:
    """POST the items in batches of at most 35 and merge the batches' results.

    A 202 (some items failed) is a normal answer here: its failures are data, never dropped.
    """
    pending = list(items)
    result: WriteResult[ItemT] = WriteResult()
    for batch in _batches(pending):
        response = yield ApiRequest(
            "POST",
            path,
            params or {},
            json=[item.body() for item in batch],
            idempotent=idempotent,
        )
        result = result.merged(_batch_result(batch, response))
    return result


def acquire(items: Iterable[AcquireItem]) -> Operation[WriteResult[AcquireItem]]:
    """Become the owner of attributes. By template, a missing attribute is created first; by
    name, any existing attribute (custom ones too: the `allow_user_defined` flag left Exist's
    docs in 2022). Acquiring one we already own succeeds again (guide/write_client.md)."""
    return (
        yield from _write(
            "attributes/acquire/", items, idempotent=False, params={"success_objects": 1}
        )
    )


def release(items: Iterable[ReleaseItem]) -> Operation[WriteResult[ReleaseItem]]:
    return (yield from _write("attributes/release/", items, idempotent=False))


def create(items: Iterable[CreateItem]) -> Operation[WriteResult[CreateItem]]:
    """Create attributes; read each created `name` from the result (it is a slug of the label,
    not guaranteed). An existing one fails with `error_code == "exists"`."""
    return (
        yield from _write(
            "attributes/create/", items, idempotent=False, params={"success_objects": 1}
        )
    )


def update(items: Iterable[UpdateItem]) -> Operation[WriteResult[UpdateItem]]:
    """Set day totals. Absolute values make a repeated request harmless, so it may be retried."""
    return (yield from _write("attributes/update/", items, idempotent=True))


def increment(items: Iterable[IncrementItem]) -> Operation[WriteResult[IncrementItem]]:
    """Add to day totals. Never retried after an unclear failure: that could count twice."""
    return (yield from _write("attributes/increment/", items, idempotent=False))


# --- OAuth2 tokens --------------------------------------------------------------------------------


def _tokens(response: httpx.Response, now: datetime) -> ExistTokens:
    payload = response.json()
    if not isinstance(payload, dict) or not payload.get("access_token"):
        raise ExistError("Exist's token endpoint answered without an access token")
    return ExistTokens.from_token_response(payload, now=now)


def exchange_code(
    app: OAuthApp, *, code: str, redirect_uri: str | None, token_url: str, now: datetime
) -> Operation[ExistTokens]:
    """Trade an authorization code for the first token pair.

    `redirect_uri` must be the one the authorization request named; None leaves it out, for a
    request that named none (Exist then uses the client's registered one)."""
    if not code.strip():
        raise ValueError("the authorization code is empty")
    form = {
        "grant_type": "authorization_code",
        "code": code.strip(),
        "client_id": app.client_id,
        "client_secret": app.client_secret.get_secret_value(),
    }
    if redirect_uri is not None:
        if not redirect_uri.strip():
            raise ValueError("redirect_uri is empty (leave it out with None)")
        form["redirect_uri"] = redirect_uri
    response = yield ApiRequest(
        "POST",
        token_url,
        form=form,
        # A code works once: a lost answer cannot be recovered by sending it again.
        idempotent=False,
    )
    return _tokens(response, now)


def refresh_tokens(
    app: OAuthApp, *, refresh_token: str, token_url: str, now: datetime
) -> Operation[ExistTokens]:
    """Trade the refresh token for a new pair; Exist invalidates the old access and refresh
    tokens at once, so the new pair must be persisted before anything else."""
    response = yield ApiRequest(
        "POST",
        token_url,
        form={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.client_id,
            "client_secret": app.client_secret.get_secret_value(),
        },
        idempotent=False,
    )
    return _tokens(response, now)
