"""OAuth2 against the simulator: the browser flow, code exchange, refresh rotation, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from timebridge.clock import FakeClock
from timebridge.exist import (
    BRIDGE_SCOPES,
    AsyncExistClient,
    AuthenticationError,
    AuthorizationDenied,
    Callback,
    ExistClient,
    ExistTokens,
    OAuthApp,
    authorize_url,
)
from timebridge.fakes.exist import TOKEN_LIFETIME, ExistSimulator, SimUser
from timebridge.retry import RetryPolicy

from .conftest import CLIENT_ID, REDIRECT_URI, Approve

TokenFactory = Callable[..., ExistTokens]


def _query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def test_authorize_url_asks_for_the_bridge_scopes_joined_by_spaces() -> None:
    url = authorize_url("cid", "http://127.0.0.1:8000/", state="s1")
    assert url.startswith("https://exist.io/oauth2/authorize?")
    assert "scope=productivity_read+productivity_write+media_read+media_write" in url
    query = _query(url)
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == "http://127.0.0.1:8000/"
    assert query["state"] == "s1"


def test_full_oauth_round_trip_gives_a_working_token(
    approve: Approve, app: OAuthApp, api_url: str, oauth_url: str, clock: FakeClock
) -> None:
    location = approve()
    assert location.startswith(REDIRECT_URI)
    callback = Callback.parse(_query(location), expected_state="state-123")
    saved: list[ExistTokens] = []
    with ExistClient(
        app=app, on_tokens=saved.append, base_url=api_url, oauth_base_url=oauth_url, clock=clock
    ) as client:
        tokens = client.exchange_code(callback.code, REDIRECT_URI)
        assert saved == [tokens]
        assert tokens.refresh_token is not None
        assert tokens.scopes == set(BRIDGE_SCOPES)
        assert tokens.expires_at == clock.now() + timedelta(seconds=31535999)
        assert client.profile().username == "alice"


def test_denying_the_client_redirects_with_access_denied(approve: Approve) -> None:
    location = approve(decision="deny")
    assert _query(location) == {"error": "access_denied", "state": "state-123"}
    with pytest.raises(AuthorizationDenied, match="access_denied"):
        Callback.parse(_query(location), expected_state="state-123")


def test_a_forged_callback_state_is_refused(approve: Approve) -> None:
    with pytest.raises(AuthorizationDenied, match="state"):
        Callback.parse(_query(approve()), expected_state="another-state")


def test_a_code_works_only_once(
    approve: Approve, app: OAuthApp, api_url: str, oauth_url: str
) -> None:
    code = _query(approve())["code"]
    with ExistClient(app=app, base_url=api_url, oauth_base_url=oauth_url) as client:
        client.exchange_code(code, REDIRECT_URI)
        with pytest.raises(AuthenticationError, match="authorization code"):
            client.exchange_code(code, REDIRECT_URI)


def test_the_code_exchange_checks_secret_and_redirect_uri(
    approve: Approve, api_url: str, oauth_url: str
) -> None:
    wrong_secret = OAuthApp(client_id=CLIENT_ID, client_secret=SecretStr("nope"))
    with ExistClient(app=wrong_secret, base_url=api_url, oauth_base_url=oauth_url) as client:
        with pytest.raises(AuthenticationError) as raised:
            client.exchange_code(_query(approve())["code"], REDIRECT_URI)
        assert raised.value.status_code == 401
        assert "nope" not in str(raised.value)
    right = OAuthApp(client_id=CLIENT_ID, client_secret=SecretStr("timebridge-test-secret"))
    with (
        ExistClient(app=right, base_url=api_url, oauth_base_url=oauth_url) as client,
        pytest.raises(AuthenticationError, match="redirect"),
    ):
        client.exchange_code(_query(approve())["code"], "http://127.0.0.1:9999/other")


REGISTERED_URI = "https://bridge.example/exist/callback"


def test_the_flow_works_without_any_redirect_uri(
    approve: Approve, exist_sim: ExistSimulator, app: OAuthApp, api_url: str, oauth_url: str
) -> None:
    # A production client (existintegrations2) names no redirect_uri, neither when sending the
    # user to Exist nor when exchanging the code: Exist uses the client's registered one.
    registered = exist_sim.add_client(
        "Registered", client_id="registered", client_secret="s3cret", redirect_uris=[REGISTERED_URI]
    )
    url = authorize_url(registered.client_id, state="s1", oauth_base_url=oauth_url)
    assert "redirect_uri" not in url
    location = approve(url, client_id=registered.client_id)
    assert location.startswith(REGISTERED_URI + "?")
    code = Callback.parse(_query(location), expected_state="s1").code
    credentials = OAuthApp(client_id="registered", client_secret=SecretStr("s3cret"))
    with ExistClient(app=credentials, base_url=api_url, oauth_base_url=oauth_url) as client:
        tokens = client.exchange_code(code)
        assert tokens.refresh_token is not None
        assert client.profile().username == "alice"


def test_a_code_for_a_named_redirect_uri_needs_it_again_at_the_exchange(
    approve: Approve, app: OAuthApp, api_url: str, oauth_url: str
) -> None:
    # RFC 6749 4.1.3: the URI named at authorize must be repeated (here: the test client has
    # none registered, so there is no default to fall back on).
    code = _query(approve())["code"]
    with (
        ExistClient(app=app, base_url=api_url, oauth_base_url=oauth_url) as client,
        pytest.raises(AuthenticationError, match="redirect"),
    ):
        client.exchange_code(code)


def test_no_redirect_uri_and_none_registered_is_refused_without_redirecting(
    oauth_url: str, oauth_client: object
) -> None:
    answer = httpx.get(authorize_url(CLIENT_ID, oauth_base_url=oauth_url), follow_redirects=False)
    assert answer.status_code == 400
    assert "redirect URI" in answer.text


def test_blank_redirect_uris_are_refused_before_any_request(app: OAuthApp) -> None:
    with pytest.raises(ValueError, match="redirect_uri"):
        authorize_url(CLIENT_ID, " ")
    with ExistClient(app=app, base_url="http://127.0.0.1:9/api/2/") as client:
        with pytest.raises(ValueError, match="redirect_uri"):
            client.exchange_code("a-code", "")
        assert client.requests_sent == 0


def test_unknown_scopes_are_refused_on_the_redirect(approve: Approve, oauth_url: str) -> None:
    url = authorize_url(CLIENT_ID, REDIRECT_URI, scopes=["bogus_write"], oauth_base_url=oauth_url)
    with httpx.Client() as browser:
        answer = browser.get(url, follow_redirects=False)
    assert answer.status_code == 302
    assert _query(answer.headers["location"])["error"] == "invalid_scope"


def test_refresh_invalidates_the_old_pair(
    oauth_tokens: TokenFactory, app: OAuthApp, api_url: str, oauth_url: str
) -> None:
    old = oauth_tokens()
    saved: list[ExistTokens] = []
    with ExistClient(
        old, app=app, on_tokens=saved.append, base_url=api_url, oauth_base_url=oauth_url
    ) as client:
        new = client.refresh()
        assert saved == [new]
        assert new.access_token != old.access_token
        assert new.refresh_token != old.refresh_token
        assert client.profile().username == "alice"
    with ExistClient(
        old, base_url=api_url, oauth_base_url=oauth_url, retry=RetryPolicy.never()
    ) as stale:
        with pytest.raises(AuthenticationError) as raised:
            stale.profile()
        assert raised.value.status_code == 401
    with (
        ExistClient(old, app=app, base_url=api_url, oauth_base_url=oauth_url) as stale,
        pytest.raises(AuthenticationError, match="refresh token"),
    ):
        stale.refresh()


def test_a_401_refreshes_once_and_hands_the_new_pair_to_on_tokens(
    oauth_tokens: TokenFactory,
    app: OAuthApp,
    api_url: str,
    oauth_url: str,
    exist_sim: ExistSimulator,
) -> None:
    issued = oauth_tokens()
    # The access token is no longer accepted (say, revoked upstream), the refresh token still is.
    broken = issued.model_copy(update={"access_token": SecretStr("not-a-valid-token")})
    saved: list[ExistTokens] = []
    exist_sim.clear_requests()
    with ExistClient(
        broken, app=app, on_tokens=saved.append, base_url=api_url, oauth_base_url=oauth_url
    ) as client:
        assert client.profile().username == "alice"
        assert len(saved) == 1
        assert client.tokens == saved[0]
        assert client.requests_sent == 3
    assert [(r.path, r.status) for r in exist_sim.requests] == [
        ("/api/2/accounts/profile/", 401),
        ("/oauth2/access_token", 200),
        ("/api/2/accounts/profile/", 200),
    ]


def test_a_401_without_refresh_credentials_is_raised(
    oauth_tokens: TokenFactory, api_url: str, oauth_url: str
) -> None:
    issued = oauth_tokens()
    broken = issued.model_copy(update={"access_token": SecretStr("not-a-valid-token")})
    with (
        ExistClient(broken, base_url=api_url, oauth_base_url=oauth_url) as client,
        pytest.raises(AuthenticationError, match="Invalid token"),
    ):
        client.profile()


def test_expired_token_is_a_401(exist: ExistClient, personal_token: str, clock: FakeClock) -> None:
    assert exist.profile().username == "alice"
    clock.advance(TOKEN_LIFETIME + timedelta(seconds=1))
    with pytest.raises(AuthenticationError) as raised:
        exist.profile()
    assert raised.value.status_code == 401
    assert "expired" in raised.value.message
    assert personal_token not in str(raised.value)
    assert personal_token not in repr(exist)


def test_a_token_near_expiry_is_refreshed_before_the_call(
    oauth_tokens: TokenFactory,
    app: OAuthApp,
    api_url: str,
    oauth_url: str,
    clock: FakeClock,
    exist_sim: ExistSimulator,
) -> None:
    issued = oauth_tokens()
    clock.advance(TOKEN_LIFETIME - timedelta(days=3))
    exist_sim.clear_requests()
    saved: list[ExistTokens] = []
    with ExistClient(
        issued,
        app=app,
        on_tokens=saved.append,
        base_url=api_url,
        oauth_base_url=oauth_url,
        clock=clock,
    ) as client:
        client.profile()
    assert [r.path for r in exist_sim.requests] == [
        "/oauth2/access_token",
        "/api/2/accounts/profile/",
    ]
    assert saved[0].expires_at == clock.now() + timedelta(seconds=31535999)


def test_an_expired_pair_still_refreshes(
    oauth_tokens: TokenFactory, app: OAuthApp, api_url: str, oauth_url: str, clock: FakeClock
) -> None:
    issued = oauth_tokens()
    clock.advance(TOKEN_LIFETIME + timedelta(days=1))
    with ExistClient(
        issued, app=app, base_url=api_url, oauth_base_url=oauth_url, clock=clock
    ) as client:
        assert client.profile().username == "alice"


async def test_concurrent_401s_refresh_only_once(
    oauth_tokens: TokenFactory,
    app: OAuthApp,
    api_url: str,
    oauth_url: str,
    exist_sim: ExistSimulator,
) -> None:
    issued = oauth_tokens()
    broken = issued.model_copy(update={"access_token": SecretStr("not-a-valid-token")})
    saved: list[ExistTokens] = []

    async def persist(tokens: ExistTokens) -> None:
        await asyncio.sleep(0)
        saved.append(tokens)

    exist_sim.clear_requests()
    async with AsyncExistClient(
        broken, app=app, on_tokens=persist, base_url=api_url, oauth_base_url=oauth_url
    ) as client:
        profiles = await asyncio.gather(*(client.profile() for _ in range(5)))
    assert {p.username for p in profiles} == {"alice"}
    assert len(saved) == 1
    assert len(exist_sim.requests_to("/oauth2/access_token")) == 1


def test_personal_token_works_without_oauth(exist: ExistClient, user: SimUser) -> None:
    profile = exist.profile()
    assert profile.timezone == user.timezone
    assert exist.tokens is not None and not exist.tokens.can_refresh


def test_secrets_stay_out_of_reprs(oauth_tokens: TokenFactory, app: OAuthApp) -> None:
    tokens = oauth_tokens()
    shown = repr(tokens) + str(tokens) + repr(app)
    assert tokens.access_token.get_secret_value() not in shown
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() not in shown
    assert "timebridge-test-secret" not in shown


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [(31535999, timedelta(seconds=31535999)), ("3600", timedelta(hours=1)), ("soon", None)],
)
def test_token_answers_parse_whatever_form_expires_in_takes(
    expires_in: object, lifetime: timedelta | None, clock: FakeClock
) -> None:
    tokens = ExistTokens.from_token_response(
        {"access_token": "abc", "expires_in": expires_in}, now=clock.now()
    )
    assert tokens.expires_at == (clock.now() + lifetime if lifetime is not None else None)
    assert not tokens.can_refresh
