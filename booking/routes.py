"""Public booking API: upcoming webinars, registering for a session, one's own registration, feeds."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import CacheControlHeader, ResponseHeader, State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    ServiceUnavailableException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY

from booking.schemas import RegistrationIn, RegistrationOut, WebinarOut
from booking.service import (
    DEFAULT_LIMITS,
    BookingError,
    Busy,
    IdempotencyMismatch,
    InvalidInput,
    InviteFiles,
    LimitReached,
    NoInviteYet,
    NotFound,
    Registrar,
    RegistrationClosed,
    RegistrationLimits,
    SessionLocked,
    cancel_registration,
    get_registration,
    get_webinar,
    list_webinars,
    public_feed,
)
from core.db import Database
from core.settings import Settings
from directory.matching import resolve_condition
from directory.search import SearchIndex
from directory.service import DirectoryRefresher
from directory.taxonomy import CONDITION_BY_SLUG, REGION_BY_SLUG

ICS = "text/calendar"
# Private links: neither the browser nor anything between may keep a copy.
PRIVATE = CacheControlHeader(no_store=True)


def provide_db(state: State) -> Database:
    db: Database = state.db
    return db


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_invite_files(state: State) -> InviteFiles:
    files: InviteFiles = state.invite_files
    return files


def provide_index(state: State) -> SearchIndex:
    refresher: DirectoryRefresher = state.directory
    return refresher.index


def provide_limits(state: State) -> RegistrationLimits:
    limits: RegistrationLimits = state.get("registration_limits", DEFAULT_LIMITS)
    return limits


def http_error_for(exc: BookingError) -> HTTPException:
    """The HTTP answer for a booking error; each one's detail already says what to do."""
    match exc:
        case NotFound():
            return NotFoundException(exc.detail)
        case InvalidInput():
            return ValidationException(
                exc.detail, extra=[{"key": k, "source": "body", "message": v} for k, v in exc.errors.items()]
            )
        case LimitReached():
            return TooManyRequestsException(exc.detail, headers={"Retry-After": str(exc.retry_after)})
        case Busy():
            return ServiceUnavailableException(exc.detail, headers={"Retry-After": "60"})
        case IdempotencyMismatch():
            return ClientException(exc.detail, status_code=HTTP_422_UNPROCESSABLE_ENTITY)
        case RegistrationClosed() | NoInviteYet() | SessionLocked():
            return ClientException(exc.detail, status_code=HTTP_409_CONFLICT)
    return ClientException(exc.detail)


def _conditions_for(text: str) -> list[str]:
    if text in CONDITION_BY_SLUG:
        return [text]
    return [m.condition.slug for m in resolve_condition(text)]


class WebinarController(Controller):
    path = "/api"
    tags = ["webinars"]
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
        "index": Provide(provide_index, sync_to_thread=False),
        "limits": Provide(provide_limits, sync_to_thread=False),
        "invite_files": Provide(provide_invite_files, sync_to_thread=False),
    }

    @get("/webinars", operation_id="listWebinars", sync_to_thread=True)
    def list_webinars(
        self,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        index: NamedDependency[SearchIndex],
        region: Annotated[str | None, QueryParameter(max_length=40, description="A body region slug")] = None,
        condition: Annotated[
            str | None, QueryParameter(max_length=200, description="A condition slug or free text")
        ] = None,
    ) -> list[WebinarOut]:
        """Published webinars with sessions still to come, soonest first; filter by region or condition."""
        if region is not None and region not in REGION_BY_SLUG:
            raise ValidationException(
                f"Unknown region '{region}'. Use one of: {', '.join(REGION_BY_SLUG)}.",
                extra=[{"key": "region", "source": "query", "message": "unknown region"}],
            )
        conditions = _conditions_for(condition.strip()) if condition and condition.strip() else None
        return list_webinars(db, index, settings, region=region, conditions=conditions)

    @get("/webinars/{slug:str}", operation_id="getWebinar", sync_to_thread=True)
    def get_webinar(
        self,
        slug: FromPath[str],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        index: NamedDependency[SearchIndex],
    ) -> WebinarOut:
        """One webinar with its presenters, topics and sessions still to come."""
        try:
            return get_webinar(db, index, settings, slug)
        except BookingError as exc:
            raise http_error_for(exc) from exc

    @post(
        "/sessions/{session_id:int}/registrations",
        operation_id="registerForSession",
        cache_control=PRIVATE,
    )
    async def register(
        self,
        session_id: FromPath[int],
        data: JSONBody[RegistrationIn],
        # The state itself, not dependencies: Litestar resolves sibling dependencies in an anyio
        # task group, a tenth of this route's CPU under a rush of sign-ups.
        state: State,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                min_length=1,
                max_length=255,
                description="Any unique value (a UUID); a retry with the same key gets the first answer",
            ),
        ] = None,
    ) -> Response[RegistrationOut]:
        """Register for a session: 201 confirmed or waitlisted; 200 if this address is already registered."""
        registrar: Registrar = state.registrar
        try:
            status, out = await registrar.register(
                session_id, data, idempotency_key=idempotency_key, limits=provide_limits(state)
            )
        except BookingError as exc:
            raise http_error_for(exc) from exc
        return Response(out, status_code=status)

    @get(
        "/registrations/{token:str}",
        operation_id="getRegistration",
        sync_to_thread=True,
        cache_control=PRIVATE,
    )
    def get_registration(
        self, token: FromPath[str], db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> RegistrationOut:
        """One's own registration, from the private link's token."""
        try:
            return get_registration(db, settings, token)
        except BookingError as exc:
            raise http_error_for(exc) from exc

    @delete(
        "/registrations/{token:str}",
        operation_id="cancelRegistration",
        sync_to_thread=True,
        status_code=200,
        cache_control=PRIVATE,
    )
    def cancel_registration(
        self, token: FromPath[str], db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> RegistrationOut:
        """Cancel one's own registration; a freed seat goes to the first person on the waitlist."""
        try:
            return cancel_registration(db, settings, token)
        except BookingError as exc:
            raise http_error_for(exc) from exc

    @get(
        "/registrations/{token:str}/invite.ics",
        operation_id="downloadInvite",
        media_type=ICS,
        cache_control=PRIVATE,
        response_headers=[
            ResponseHeader(name="Content-Disposition", value='attachment; filename="invite.ics"')
        ],
    )
    async def invite(self, token: FromPath[str], invite_files: NamedDependency[InviteFiles]) -> bytes:
        """The calendar invite: METHOD:REQUEST while the seat is held, METHOD:CANCEL once it is not."""
        try:
            return await invite_files.download(token)
        except BookingError as exc:
            raise http_error_for(exc) from exc


class WebinarFeedController(Controller):
    path = "/"
    tags = ["webinars"]
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
    }

    @get(
        "/webinars.ics",
        operation_id="webinarFeed",
        sync_to_thread=True,
        media_type=ICS,
        # A subscribed calendar polls; a minute's staleness is fine for a public schedule.
        cache_control=CacheControlHeader(public=True, max_age=60),
    )
    def feed(self, db: NamedDependency[Database], settings: NamedDependency[Settings]) -> Response[bytes]:
        """Every upcoming session as a subscribable calendar (METHOD:PUBLISH), no attendee data."""
        return Response(public_feed(db, settings), media_type=ICS)
