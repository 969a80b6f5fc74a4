"""Admin sign-in API: login, logout, the current session, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import CacheControlHeader, Cookie
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from accounts.guards import ANONYMOUS, SESSION_COOKIE, provide_db
from accounts.schemas import AuditPage, LoginIn, SessionOut
from accounts.service import (
    SESSION_ABSOLUTE,
    SESSION_IDLE,
    Admin,
    BadCredentials,
    LoginThrottled,
    list_audit,
    login,
    logout,
)
from core.db import Database
from core.settings import Settings


def session_out(admin: Admin) -> SessionOut:
    return SessionOut(
        email=admin.email,
        csrf_token=admin.csrf_token,
        expires_at=admin.expires_at,
        idle_timeout_seconds=int(SESSION_IDLE.total_seconds()),
    )


def session_cookie(settings: Settings, token: str) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        max_age=int(SESSION_ABSOLUTE.total_seconds()),
        httponly=True,
        # Plain http only on a developer's machine (BASE_URL http://...).
        secure=settings.secure_cookies,
        samesite="strict",
    )


class AdminSessionController(Controller):
    path = "/api/admin"
    tags = ["admin"]
    dependencies = {"db": Provide(provide_db, sync_to_thread=False)}
    # Admin answers can hold health data: no browser or proxy may keep a copy.
    cache_control = CacheControlHeader(no_store=True)

    @post("/login", operation_id="adminLogin", status_code=HTTP_200_OK, opt={ANONYMOUS: True})
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginIn], db: NamedDependency[Database]
    ) -> Response[SessionOut]:
        """Sign in with e-mail and password; sets the session cookie and returns the CSRF token."""
        settings: Settings = request.app.state.settings
        try:
            signed_in = await login(
                db,
                data.email,
                data.password,
                ip=request.client.host if request.client else "unknown",
                user_agent=request.headers.get("user-agent", ""),
                # Whatever session the browser had is revoked; the new one gets a fresh token.
                replaces=request.cookies.get(SESSION_COOKIE),
            )
        except LoginThrottled as exc:
            raise TooManyRequestsException(
                f"Too many failed sign-ins. Try again in {exc.retry_after} seconds.",
                headers={"Retry-After": str(exc.retry_after)},
            ) from exc
        except BadCredentials as exc:
            raise NotAuthorizedException("E-mail or password is not correct.") from exc
        return Response(session_out(signed_in.admin), cookies=[session_cookie(settings, signed_in.token)])

    @post("/logout", operation_id="adminLogout", status_code=HTTP_204_NO_CONTENT)
    async def logout(
        self, current_admin: NamedDependency[Admin], db: NamedDependency[Database]
    ) -> Response[None]:
        """End this session and clear the cookie."""
        await anyio.to_thread.run_sync(logout, db, current_admin)
        response: Response[None] = Response(None, status_code=HTTP_204_NO_CONTENT)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/session", operation_id="adminSession")
    async def session(self, current_admin: NamedDependency[Admin]) -> SessionOut:
        """Who is signed in, and the CSRF token to send with changes."""
        return session_out(current_admin)

    @get("/audit", operation_id="listAuditEntries", sync_to_thread=True)
    def audit(
        self,
        db: NamedDependency[Database],
        entity: Annotated[str | None, QueryParameter(max_length=60, description="e.g. provider")] = None,
        entity_id: Annotated[str | None, QueryParameter(max_length=120, description="e.g. a slug")] = None,
        action: Annotated[
            str | None, QueryParameter(max_length=60, description="e.g. provider.update")
        ] = None,
        actor: Annotated[str | None, QueryParameter(max_length=254, description="an admin's e-mail")] = None,
        before_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> AuditPage:
        """Every admin change, newest first: who, when, what, before and after."""
        return list_audit(
            db,
            entity=entity,
            entity_id=entity_id,
            action=action,
            actor=actor,
            before_id=before_id,
            limit=limit,
        )
