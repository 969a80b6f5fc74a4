"""Webinar admin API: webinars, sessions, attendee lists, hand moves on the waitlist, the outbox.

Routes only translate HTTP to `booking.admin_service` calls; the app-wide `admin_guard` already
refuses anyone not signed in (401) and unsafe requests without the CSRF token (403).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post, put
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, HTTPException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_409_CONFLICT

from accounts.guards import provide_db
from accounts.service import Admin
from booking.admin_service import (
    AdminSessionOut,
    AdminWebinarOut,
    AdminWebinarSummary,
    AttendeeList,
    AttendeeStatus,
    Conflict,
    OutboxItemOut,
    OutboxPage,
    OutboxState,
    RegistrationChangeOut,
    SessionChangeOut,
    SessionCreate,
    SessionPatch,
    WebinarCreate,
    WebinarEdit,
    WebinarPatch,
    add_webinar,
    add_webinar_session,
    cancel_webinar_session,
    change_session,
    edit_webinar,
    export_attendees,
    list_all_webinars,
    list_outbox,
    promote_registration,
    publish_webinar,
    remove_registration,
    resend_message,
    session_detail,
    unpublish_webinar,
    view_attendees,
    webinar_detail,
)
from booking.routes import http_error_for, provide_settings
from booking.service import BookingError
from core.db import Database
from core.http import http_error
from core.settings import Settings


def booking_error(request: Request[Any, Any, Any], exc: BookingError) -> Response[dict[str, object]]:
    """A booking error as the app's JSON error; each one's detail already says what to do."""
    answer: HTTPException = (
        ClientException(exc.detail, status_code=HTTP_409_CONFLICT)
        if isinstance(exc, Conflict)
        else http_error_for(exc)
    )
    return http_error(request, answer)


class _AdminController(Controller):
    tags = ["admin"]
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
    }
    exception_handlers = {BookingError: booking_error}
    # Attendee data and join links: no browser or proxy may keep a copy.
    cache_control = CacheControlHeader(no_store=True)


class WebinarAdminController(_AdminController):
    path = "/api/admin/webinars"

    @get("", operation_id="adminListWebinars", sync_to_thread=True)
    def list_webinars(self, db: NamedDependency[Database]) -> list[AdminWebinarSummary]:
        """Every webinar, published or not, with how many sessions are still to come."""
        return list_all_webinars(db)

    @post("", operation_id="adminCreateWebinar", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create(
        self,
        data: JSONBody[WebinarCreate],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminWebinarOut:
        """Add a webinar (unpublished until published); presenters are directory provider ids."""
        return add_webinar(db, current_admin, data)

    @get("/{slug:str}", operation_id="adminGetWebinar", sync_to_thread=True)
    def get_one(self, slug: FromPath[str], db: NamedDependency[Database]) -> AdminWebinarOut:
        """One webinar with all its sessions, past and cancelled ones too."""
        return webinar_detail(db, slug)

    @put("/{slug:str}", operation_id="adminReplaceWebinar", sync_to_thread=True)
    def replace(
        self,
        slug: FromPath[str],
        data: JSONBody[WebinarEdit],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminWebinarOut:
        """Replace a webinar's title, description, presenters and topics."""
        return edit_webinar(db, current_admin, slug, data)

    @patch("/{slug:str}", operation_id="adminUpdateWebinar", sync_to_thread=True)
    def update(
        self,
        slug: FromPath[str],
        data: JSONBody[WebinarPatch],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminWebinarOut:
        """Change some of a webinar's fields."""
        return edit_webinar(db, current_admin, slug, data)

    @post(
        "/{slug:str}/publish",
        operation_id="adminPublishWebinar",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def publish(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminWebinarOut:
        """Show the webinar and its sessions on the public site, API and feed."""
        return publish_webinar(db, current_admin, slug)

    @post(
        "/{slug:str}/unpublish",
        operation_id="adminUnpublishWebinar",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def unpublish(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminWebinarOut:
        """Hide the webinar from the public; existing registrations stay."""
        return unpublish_webinar(db, current_admin, slug)

    @post(
        "/{slug:str}/sessions",
        operation_id="adminAddSession",
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
    )
    def add_session(
        self,
        slug: FromPath[str],
        data: JSONBody[SessionCreate],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminSessionOut:
        """Add a date to a webinar."""
        return add_webinar_session(db, current_admin, slug, data)


class SessionAdminController(_AdminController):
    path = "/api/admin/sessions"

    @get("/{session_id:int}", operation_id="adminGetSession", sync_to_thread=True)
    def get_one(self, session_id: FromPath[int], db: NamedDependency[Database]) -> AdminSessionOut:
        """One session with its seats, waitlist length, join link and status."""
        return session_detail(db, session_id)

    @patch("/{session_id:int}", operation_id="adminUpdateSession", sync_to_thread=True)
    def update(
        self,
        session_id: FromPath[int],
        data: JSONBody[SessionPatch],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> SessionChangeOut:
        """Move a session or change its capacity; every registrant affected is e-mailed."""
        return change_session(db, settings, current_admin, session_id, data)

    @post(
        "/{session_id:int}/cancel",
        operation_id="adminCancelSession",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def cancel(
        self,
        session_id: FromPath[int],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> SessionChangeOut:
        """Cancel a session; everyone registered gets the cancellation."""
        return cancel_webinar_session(db, settings, current_admin, session_id)

    @get("/{session_id:int}/attendees", operation_id="adminListAttendees", sync_to_thread=True)
    def attendees(
        self,
        session_id: FromPath[int],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        status: Annotated[AttendeeStatus | None, QueryParameter(description="only this status")] = None,
    ) -> AttendeeList:
        """Who registered: confirmed, the waitlist in order, cancelled. Each view is audited."""
        return view_attendees(db, current_admin, session_id, status)

    @get(
        "/{session_id:int}/attendees.csv",
        operation_id="adminExportAttendees",
        media_type="text/csv",
        sync_to_thread=True,
    )
    def export(
        self, session_id: FromPath[int], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> Response[bytes]:
        """The attendee list as CSV (formula-safe for spreadsheets). Each export is audited."""
        exported = export_attendees(db, current_admin, session_id)
        return Response(
            exported.content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
        )


class RegistrationAdminController(_AdminController):
    path = "/api/admin/registrations"

    @post(
        "/{registration_id:int}/remove",
        operation_id="adminRemoveRegistration",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def remove(
        self,
        registration_id: FromPath[int],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> RegistrationChangeOut:
        """Cancel someone's registration; a freed seat goes to the first person on the waitlist."""
        return remove_registration(db, settings, current_admin, registration_id)

    @post(
        "/{registration_id:int}/promote",
        operation_id="adminPromoteRegistration",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def promote(
        self,
        registration_id: FromPath[int],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> RegistrationChangeOut:
        """Give a waitlisted person a free seat ahead of the line; 409 if the session is full."""
        return promote_registration(db, settings, current_admin, registration_id)


class OutboxAdminController(_AdminController):
    path = "/api/admin/outbox"

    @get("", operation_id="adminListOutbox", sync_to_thread=True)
    def list_messages(
        self,
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        status: Annotated[OutboxState | None, QueryParameter(description="delivery state")] = None,
        session_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        registration_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        before_id: Annotated[int | None, QueryParameter(ge=1, description="next_before_id of a page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> OutboxPage:
        """E-mails newest first with their delivery state (no message bodies). Each view is audited."""
        return list_outbox(
            db,
            current_admin,
            status=status,
            session_id=session_id,
            registration_id=registration_id,
            before_id=before_id,
            limit=limit,
        )

    @post(
        "/{message_id:int}/resend",
        operation_id="adminResendMessage",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def resend(
        self, message_id: FromPath[int], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> OutboxItemOut:
        """Queue a failed or sent e-mail again; 409 if a later e-mail to the same person replaced it."""
        return resend_message(db, current_admin, message_id)
