"""Who is signed in, and how they sign in and out: sessions, CSRF, and the sign-in routes.

Sessions are random ids in an HttpOnly, SameSite=Lax cookie (Secure when the public URL is
https); the store keeps only their SHA-256 (`timebridge.store.sign_in`). Three ways in:
- **Sign in with Exist** (OAuth2 code flow; offered when an Exist OAuth client is configured):
  the Exist user is the identity, and the Exist connection is made in the same step;
- **a Toggl API token**: the Toggl user is the identity, the token the first Toggl connection;
- **a one-time link** from `timebridge login-link` (single use, 10 minutes), for self-hosters.
An account is found again by either identity, so connecting the other side later never makes a
second account.

CSRF: every state-changing request carries the session's token (a form's hidden `csrf_token`,
or the `X-CSRF-Token` header), compared in constant time. Before a session exists, the sign-in
forms use a double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import SecretStr

from timebridge.exist import AuthorizationDenied, Callback, authorize_url, new_state
from timebridge.exist import errors as exist_errors
from timebridge.origins import exist_oauth_url, exist_origin, toggl_origin
from timebridge.store import Account, AccountNotFound, WebSession
from timebridge.toggl import errors as toggl_errors
from timebridge.web.state import bridge_of, settings_of
from timebridge.web.templating import render

SESSION_COOKIE = "tb_session"
#: A signed-out browser's CSRF token (double submit), for the sign-in forms.
PRE_SESSION_CSRF_COOKIE = "tb_csrf"
#: Ties Exist's OAuth callback to the browser that started it.
OAUTH_STATE_COOKIE = "tb_oauth_state"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    """The request needs a signed-in account (pages redirect to /signin, the API says 401)."""


class CsrfRejected(Exception):
    """A state-changing request without the right CSRF token (403)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in account of a request, and its session."""

    account: Account
    session: WebSession

    @property
    def account_id(self) -> int:
        return self.account.id


# --- reading the session ------------------------------------------------------------------------


async def optional_viewer(request: Request) -> Viewer | None:
    """The signed-in account, or None."""
    cached: Viewer | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    store = bridge_of(request).store
    session = await store.sessions.get(secret)
    if session is None:
        return None
    try:
        account = await store.accounts.get(session.account_id)
    except AccountNotFound:
        return None
    viewer = Viewer(account, session)
    request.state.viewer = viewer
    return viewer


async def current_viewer(request: Request) -> Viewer:
    """The signed-in account; `NotSignedIn` otherwise (a FastAPI dependency)."""
    viewer = await optional_viewer(request)
    if viewer is None:
        raise NotSignedIn
    return viewer


async def checked_viewer(request: Request) -> Viewer:
    """`current_viewer` for a state-changing request: its CSRF token is checked too."""
    viewer = await current_viewer(request)
    await _check_csrf(request, viewer.session.csrf_token)
    return viewer


#: Dependencies for routes: a signed-in account; and one whose request is a checked change.
SignedIn = Annotated[Viewer, Depends(current_viewer)]
Changing = Annotated[Viewer, Depends(checked_viewer)]


async def _check_csrf(request: Request, expected: str) -> None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRejected


def pre_session_csrf(request: Request) -> str:
    """A signed-out browser's CSRF token: its cookie's, or a new one (set by `render`)."""
    token = request.cookies.get(PRE_SESSION_CSRF_COOKIE) or getattr(
        request.state, "new_pre_session_csrf", None
    )
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_pre_session_csrf = token
    return token


def remember_pre_session_csrf(request: Request, response: Response) -> None:
    """Set the cookie of a token `pre_session_csrf` made for this response."""
    token = getattr(request.state, "new_pre_session_csrf", None)
    if token:
        response.set_cookie(
            PRE_SESSION_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path="/",
        )


async def _check_pre_session_csrf(request: Request) -> None:
    await _check_csrf(request, request.cookies.get(PRE_SESSION_CSRF_COOKIE, ""))


def _secure(request: Request) -> bool:
    return settings_of(request).public_url.startswith("https://")


# --- signing in and out -----------------------------------------------------------------------


async def start_session(request: Request, account_id: int, to: str = "/") -> RedirectResponse:
    """Sign the browser in to `account_id` and send it to `to` (a path of this site)."""
    secret, _ = await bridge_of(request).store.sessions.create(account_id)
    response = RedirectResponse(_local_path(to), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(bridge_of(request).store.sessions.idle.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(PRE_SESSION_CSRF_COOKIE, path="/")
    return response


def _local_path(target: str) -> str:
    """`target` if it is a path on this site, else "/": never an open redirect."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


router = APIRouter(include_in_schema=False)


@router.get("/signin")
async def signin_page(request: Request, next: str = "/") -> Response:
    """The ways to sign in."""
    if await optional_viewer(request) is not None:
        return RedirectResponse(_local_path(next), status_code=303)
    return render(request, "signin.html", None, next=_local_path(next), **_signin_context(request))


def _signin_context(request: Request) -> dict[str, Any]:
    settings = settings_of(request)
    return {"exist_sign_in": settings.exist_sign_in, "error": None, "token_error": None}


@router.post("/signin/toggl")
async def signin_with_toggl(
    request: Request,
    api_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Sign in with a Toggl Track API token (checked with Toggl's `/me`)."""
    await _check_pre_session_csrf(request)
    token = api_token.strip()
    problem = None
    if not token:
        problem = "Paste your Toggl Track API token (Profile settings → API Token)."
    else:
        origin = toggl_origin(settings_of(request).toggl_base_url)
        try:
            account = await bridge_of(request).sign_in_with_toggl(SecretStr(token), origin)
        except toggl_errors.AuthenticationError:
            problem = "Toggl Track did not accept this token. Copy it again from your profile."
        except toggl_errors.TogglError as exc:
            problem = f"Toggl Track could not be asked right now ({exc.message}). Try again."
        else:
            return await start_session(request, account.id, next)
    context = {**_signin_context(request), "token_error": problem}
    return render(request, "signin.html", None, status_code=400, next=_local_path(next), **context)


@router.get("/signin/exist")
async def signin_with_exist(request: Request) -> Response:
    """Send the browser to Exist to approve Timebridge."""
    settings = settings_of(request)
    if not settings.exist_sign_in or settings.exist_client_id is None:
        return RedirectResponse("/signin", status_code=303)
    state = new_state()
    url = authorize_url(
        settings.exist_client_id,
        _exist_redirect_uri(request),
        state=state,
        oauth_base_url=exist_oauth_url(exist_origin(settings.exist_base_url)),
    )
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        OAUTH_STATE_COOKIE,
        state,
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/signin/exist",
    )
    return response


def _exist_redirect_uri(request: Request) -> str:
    return f"{settings_of(request).public_url}/signin/exist/callback"


@router.get("/signin/exist/callback")
async def signin_with_exist_callback(request: Request) -> Response:
    """Exist sends the browser back here with a code (or an error)."""
    expected = request.cookies.get(OAUTH_STATE_COOKIE) or ""
    problem = None
    try:
        callback = Callback.parse(dict(request.query_params), expected_state=expected or "-")
        if not expected or not hmac.compare_digest(
            request.query_params.get("state", "").encode(), expected.encode()
        ):
            raise AuthorizationDenied("state mismatch")
        origin = exist_origin(settings_of(request).exist_base_url)
        viewer = await optional_viewer(request)
        account = await bridge_of(request).sign_in_with_exist(
            callback.code,
            _exist_redirect_uri(request),
            origin,
            signed_in=viewer.account_id if viewer is not None else None,
        )
    except AuthorizationDenied as exc:
        problem = (
            "Exist did not sign you in (you declined, or the request expired). Try again."
            if exc.error != "state mismatch"
            else "This sign-in was started in another browser tab or expired. Try again."
        )
    except exist_errors.ExistError as exc:
        problem = f"Exist could not be asked right now ({exc.message}). Try again."
    else:
        if viewer is not None and viewer.account_id == account.id:
            response: Response = RedirectResponse("/", status_code=303)
        else:
            response = await start_session(request, account.id)
        response.delete_cookie(OAUTH_STATE_COOKIE, path="/signin/exist")
        return response
    context = {**_signin_context(request), "error": problem}
    return render(request, "signin.html", None, status_code=400, next="/", **context)


@router.get("/signin/link/{token}")
async def signin_with_link(request: Request, token: str) -> Response:
    """A one-time link from `timebridge login-link`."""
    account_id = await bridge_of(request).store.login_links.use(token)
    if account_id is None:
        problem = (
            "This sign-in link was used already or has expired (links work once, for 10 "
            "minutes). Run `timebridge login-link` for a new one."
        )
        context = {**_signin_context(request), "error": problem}
        return render(request, "signin.html", None, status_code=410, next="/", **context)
    return await start_session(request, account_id)


@router.post("/signout")
async def signout(request: Request, viewer: Changing) -> Response:
    """Sign this browser out."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    await bridge_of(request).store.sessions.delete(secret)
    return _signed_out()


@router.post("/signout/everywhere")
async def signout_everywhere(request: Request, viewer: Changing) -> Response:
    """Sign out every browser of the account."""
    await bridge_of(request).store.sessions.delete_all(viewer.account_id)
    return _signed_out()


def _signed_out() -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def signin_redirect(request: Request) -> RedirectResponse:
    """Where a signed-out browser asking for a page goes: /signin, then back."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)


def login_link_url(public_url: str, secret: str) -> str:
    """The URL of a login link's secret on this site."""
    return f"{public_url}/signin/link/{secret}"


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Changing",
    "CsrfRejected",
    "NotSignedIn",
    "SignedIn",
    "Viewer",
    "checked_viewer",
    "current_viewer",
    "login_link_url",
    "optional_viewer",
    "pre_session_csrf",
    "remember_pre_session_csrf",
    "router",
    "signin_redirect",
    "start_session",
]
