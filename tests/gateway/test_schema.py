"""Schemathesis over the gateway's and the connections API's OpenAPI: generated requests, valid
and invalid, with a key of every scope, against the Toggl simulator over real HTTP. No answer
is a 5xx, and every answer the gateway gives itself follows its documented schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import ASGIApp, get_client
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.store.fixtures import run_blocking
from timebridge.config import Settings
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.toggl import TogglSimulator
from timebridge.gateway.keys import SCOPES, new_key
from timebridge.store import Store, open_store
from timebridge.web import create_app

EXAMPLES = 10
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture
def upstream() -> Iterator[tuple[TogglSimulator, RunningServer]]:
    sim = TogglSimulator(enforce_quotas=False)
    with serve_in_thread(sim.asgi_app) as server:
        yield sim, server


@pytest.fixture
def app_settings(upstream: tuple[TogglSimulator, RunningServer], tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        toggl_base_url=f"{upstream[1].url}/api/v9",
        gateway_rate_limit=10_000,
    )


def _setup(app_settings: Settings, sim: TogglSimulator, origin: str) -> str:
    user = sim.add_user(api_token="tok-schema-0123456789", plan="premium")
    made = new_key()

    async def go() -> None:
        async with await open_store(app_settings) as store:
            await _seed(store, made.secret, made.prefix, user.api_token, user.id, origin)

    run_blocking(go())
    return made.secret


async def _seed(
    store: Store, key: str, prefix: str, token: str, toggl_user: int, origin: str
) -> None:
    account = (await store.accounts.create("schema@example.com")).id
    await store.toggl_connections.create(account, token, toggl_user_id=toggl_user, origin=origin)
    await store.api_keys.create(account, key, prefix=prefix, scopes=SCOPES)


def test_gateway_operations_never_5xx_and_answer_as_documented(
    app_settings: Settings, upstream: tuple[TogglSimulator, RunningServer]
) -> None:
    sim, server = upstream
    key = _setup(app_settings, sim, server.url)
    app: FastAPI = create_app(app_settings, run_scheduler=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if operation.path.startswith(("/connections", "/toggl-track/")):
            operations.append(operation)
    assert len(operations) == 4 + 7, [o.label for o in operations]
    statuses: Counter[int] = Counter()
    sent: Counter[str] = Counter()
    with get_client(cast(ASGIApp, app)) as client:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
                def check(case: schemathesis.Case[Any]) -> None:
                    response = case.call_and_validate(
                        session=client,
                        headers={"Authorization": f"Bearer {key}"},
                        checks=CHECKS,
                    )
                    statuses[response.status_code] += 1
                    sent[case.operation.label] += 1

                try:
                    check()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, operation.label
    assert len(sent) == len(operations)
    assert not [s for s in statuses if s >= 500], statuses
    print(f"\nschemathesis (gateway): {sum(sent.values())} requests; {dict(statuses)}")
