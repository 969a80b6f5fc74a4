"""The admin's pages for signing in and out, and the dashboard: /admin/login, /admin/logout, /admin.

They call the same service functions as the JSON login (accounts.service) and set the same session
cookie (accounts.routes.session_cookie). Every /admin route sits behind the app's `admin_guard`, so
a page without a session raises 401, which ADMIN_PAGE_EXCEPTION_HANDLERS turns into a redirect to
the sign-in page; every form posts the session's CSRF token as `_csrf` (see the `csrf` macro in
accounts/templates/accounts/_form.html). Admin pages keep the default `Cache-Control: no-store`.

Other domains' admin pages (directory/admin_pages.py, ...) set
`exception_handlers = ADMIN_PAGE_EXCEPTION_HANDLERS`, pass `admin` (the signed-in Admin) to their
templates so the header shows the admin menu, and use `safe_next` for any "go back to" URL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_429_TOO_MANY_REQUESTS,
)
from litestar.types import ExceptionHandlersMap

from accounts.guards import ANONYMOUS, SESSION_COOKIE, provide_db
from accounts.routes import session_cookie
from accounts.service import (
    MAX_PASSWORD_LENGTH,
    SESSION_IDLE,
    Admin,
    BadCredentials,
    LoginThrottled,
    list_audit,
    login,
    logout,
    resume_session,
)
from core.db import Database
from core.settings import Settings
from web.pages import page_error

DASHBOARD_PATH = "/admin"
LOGIN_PATH = "/admin/login"
# Only a path on this site under /admin: a crafted ?next= must not send a fresh session elsewhere.
_LOCAL_ADMIN_PATH = re.compile(r"/admin(?:[/?#][^\x00-\x20\\]*)?")
BAD_LOGIN = "E-mail or password is not correct."


def safe_next(value: str | None) -> str:
    """`value` if it is a local /admin path (with its query), else the dashboard: no open redirect."""
    if value and len(value) <= 2000 and _LOCAL_ADMIN_PATH.fullmatch(value):
        return value
    return DASHBOARD_PATH


def login_url(next_path: str) -> str:
    target = safe_next(next_path)
    return LOGIN_PATH if target == DASHBOARD_PATH else f"{LOGIN_PATH}?{urlencode({'next': target})}"


def to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    """No (live) session on an admin page: off to the sign-in page, and back here afterwards."""
    # A form posted after the session ended cannot be replayed by a GET; its page can be opened.
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = Redirect(
        login_url(here if request.method == "GET" else DASHBOARD_PATH), status_code=HTTP_303_SEE_OTHER
    )
    if request.cookies.get(SESSION_COOKIE):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


ADMIN_ERROR_TITLES = {
    400: "That did not work",
    403: "This form is out of date",
    404: "We could not find that",
    409: "That cannot be done right now",
    413: "That file is too big",
    429: "Too many requests",
}
# The guard's 403 speaks to API clients (headers); a person needs to know what to do.
STALE_FORM = (
    "The form was sent without this session's security token (or from another site). "
    "Go back, reload the page and try again."
)


def admin_page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on admin pages: plain words and a way back to the admin pages."""
    if not isinstance(exc, HTTPException) or exc.status_code >= 500:
        return page_error(request, exc)
    status = exc.status_code
    detail = STALE_FORM if status == HTTP_403_FORBIDDEN else str(exc.detail)
    return Template(
        "accounts/error.html",
        context={
            "status": status,
            "title": ADMIN_ERROR_TITLES.get(status, "That did not work"),
            "detail": detail,
        },
        status_code=status,
        headers=exc.headers,
    )


# Set as `exception_handlers` on every admin page Controller.
ADMIN_PAGE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    NotAuthorizedException: to_login,
    HTTPException: admin_page_error,
    Exception: admin_page_error,
}


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def form_text(form: Any, name: str, limit: int) -> str:
    """One text field of a posted form; a file or a missing field is empty, overlong text is cut."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _same_origin(request: Request[Any, Any, Any], settings: Settings) -> bool:
    # Login CSRF (OWASP): another site must not sign this browser in to an account it chose. A
    # browser sends Origin with every POST; without one it is not a browser form.
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin in {settings.base_url, f"{request.url.scheme}://{request.url.netloc}"}


class AdminAccountPages(Controller):
    path = DASHBOARD_PATH
    tags = ["admin pages"]
    include_in_schema = False
    exception_handlers = ADMIN_PAGE_EXCEPTION_HANDLERS
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
    }

    @get("/login", operation_id="adminLoginPage", name="admin:login", opt={ANONYMOUS: True})
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        next_path: Annotated[str, QueryParameter(name="next", max_length=2000)] = "",
        signed_out: FromQuery[bool] = False,
    ) -> Response[Any]:
        """The sign-in form (straight on to `next` if this browser is signed in already)."""
        token = request.cookies.get(SESSION_COOKIE)
        if token and await anyio.to_thread.run_sync(resume_session, db, token) is not None:
            return Redirect(safe_next(next_path), status_code=HTTP_303_SEE_OTHER)
        return _login_form(next_path, signed_out=signed_out)

    @post("/login", operation_id="adminLoginSubmit", opt={ANONYMOUS: True})
    async def login_submit(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        """Check the e-mail and password; on success set the session cookie and go on to `next`."""
        if not _same_origin(request, settings):
            return admin_page_error(request, HTTPException(status_code=HTTP_403_FORBIDDEN))
        form = await request.form()
        email = form_text(form, "email", 254).strip()
        password = form_text(form, "password", MAX_PASSWORD_LENGTH)
        next_path = form_text(form, "next", 2000)
        errors = []
        if not email:
            errors.append(("email", "Enter your e-mail address."))
        if not password:
            errors.append(("password", "Enter your password."))
        if errors:
            return _login_form(next_path, email=email, errors=errors, status_code=HTTP_400_BAD_REQUEST)
        try:
            signed_in = await login(
                db,
                email,
                password,
                ip=request.client.host if request.client else "unknown",
                user_agent=request.headers.get("user-agent", ""),
                replaces=request.cookies.get(SESSION_COOKIE),
            )
        except LoginThrottled as exc:
            minutes = max(1, -(-exc.retry_after // 60))
            message = (
                "Too many failed sign-ins. For your account's safety, wait "
                f"{minutes} minute{'s' if minutes != 1 else ''} and try again."
            )
            response = _login_form(
                next_path, email=email, errors=[("email", message)], status_code=HTTP_429_TOO_MANY_REQUESTS
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except BadCredentials:
            # Which of the two was wrong stays unsaid: that would tell who has an account.
            return _login_form(
                next_path, email=email, errors=[("email", BAD_LOGIN)], status_code=HTTP_400_BAD_REQUEST
            )
        return Redirect(
            safe_next(next_path),
            status_code=HTTP_303_SEE_OTHER,
            cookies=[session_cookie(settings, signed_in.token)],
        )

    @post("/logout", operation_id="adminLogoutSubmit")
    async def logout_submit(
        self, current_admin: NamedDependency[Admin], db: NamedDependency[Database]
    ) -> Redirect:
        """End this browser's session and clear the cookie."""
        await anyio.to_thread.run_sync(logout, db, current_admin)
        response = Redirect(f"{LOGIN_PATH}?signed_out=true", status_code=HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("", operation_id="adminDashboardPage", name="admin:dashboard", sync_to_thread=True)
    def dashboard(self, current_admin: NamedDependency[Admin], db: NamedDependency[Database]) -> Template:
        """Where an admin starts: what they can manage, and the latest changes anyone made."""
        return Template(
            "accounts/dashboard.html",
            context={
                "admin": current_admin,
                "audit": list_audit(db, limit=15).items,
                "idle_minutes": int(SESSION_IDLE.total_seconds() // 60),
            },
        )


def _login_form(
    next_path: str,
    *,
    email: str = "",
    errors: list[tuple[str, str]] | None = None,
    signed_out: bool = False,
    status_code: int = 200,
) -> Template:
    return Template(
        "accounts/login.html",
        context={
            "email": email,
            "next": safe_next(next_path),
            "errors": errors or [],
            "signed_out": signed_out,
        },
        status_code=status_code,
    )
