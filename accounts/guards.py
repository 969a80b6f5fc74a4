"""Who may reach /api/admin and the /admin pages: an app-wide guard, and the `current_admin` dependency.

The guard is installed once on the app and covers every route whose path is under /api/admin or /admin, so
a new admin controller or page is protected without remembering to ask; only a route that opts out
with `opt={ANONYMOUS: True}` (the logins) is open. Unsafe methods must also carry the session's CSRF
token (synchronizer token pattern): the X-CSRF-Token header, or a `_csrf` form field from pages.
"""

from __future__ import annotations

import hmac
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from accounts.service import Admin, resume_session
from core.db import Database

SESSION_COOKIE = "orthodex_admin"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "_csrf"
ADMIN_PREFIX = "/api/admin"
# The admin's pages (accounts/pages.py, directory/admin_pages.py, ...): the same guard covers them.
ADMIN_PAGES_PREFIX = "/admin"
# Route opt key for the admin routes that must work signed out (the API's and the page's login).
ANONYMOUS = "admin_anonymous"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_STATE_KEY = "orthodex_admin"


def is_admin_path(path: str) -> bool:
    return any(
        path == prefix or path.startswith(prefix + "/") for prefix in (ADMIN_PREFIX, ADMIN_PAGES_PREFIX)
    )


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """401 without a live session, 403 without the CSRF token, on every /api/admin and /admin route."""
    # The matched route's full template (a handler's own `paths` are relative to its controller).
    route = connection.scope.get("path_template") or connection.scope["path"]
    if is_admin_path(route) and not handler.opt.get(ANONYMOUS):
        await authenticate(connection)


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Admin:
    """The admin behind this request, checked once per request (the guard and the dependency share it)."""
    cached = connection.state.get(_STATE_KEY)
    if isinstance(cached, Admin):
        return cached
    token = connection.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotAuthorizedException("Sign in first: POST /api/admin/login.")
    db: Database = connection.app.state.db
    admin = await anyio.to_thread.run_sync(resume_session, db, token)
    if admin is None:
        raise NotAuthorizedException("Your session has ended. Sign in again: POST /api/admin/login.")
    if connection.scope.get("method", "GET") not in SAFE_METHODS:
        sent = connection.headers.get(CSRF_HEADER) or await _form_csrf(connection)
        if not sent or not hmac.compare_digest(sent.encode(), admin.csrf_token.encode()):
            raise PermissionDeniedException(
                f"Missing or wrong CSRF token: send the {CSRF_HEADER} header with the csrf_token "
                "from POST /api/admin/login or GET /api/admin/session."
            )
    connection.state[_STATE_KEY] = admin
    return admin


async def _form_csrf(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    if not isinstance(connection, Request):
        return None
    if not connection.headers.get("content-type", "").startswith(_FORMS):
        return None
    # Litestar keeps the parsed form on the request, so the handler does not read the body twice.
    value = (await connection.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def provide_current_admin(request: Request[Any, Any, Any]) -> Admin:
    """Dependency `current_admin`: the signed-in admin (401/403 like the guard if it did not run)."""
    return await authenticate(request)


def provide_db(state: State) -> Database:
    db: Database = state.db
    return db
