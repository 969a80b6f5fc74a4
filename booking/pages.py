"""Webinars as attendees use them in a browser: the upcoming list, one webinar's dates with the
registration form, the confirmation, and the private page behind a registration's manage link.

The pages call the booking services the JSON API calls (`list_webinars`, `get_webinar`, `register`,
`get_registration`, `cancel_registration`), so seats, the waitlist, the per-address limits and
idempotency are the API's own. Forms are plain POSTs answered with a 303 (post/redirect/get), so
everything works with JavaScript off; web/static/booking.js only adds each session's time in the
visitor's own zone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from booking.messages import format_when
from booking.routes import (
    PRIVATE,
    http_error_for,
    provide_db,
    provide_index,
    provide_limits,
    provide_settings,
)
from booking.schemas import RegistrationIn, RegistrationOut, SessionOut, WebinarOut
from booking.service import (
    BookingError,
    IdempotencyMismatch,
    InvalidInput,
    LimitReached,
    NotFound,
    RegistrationClosed,
    RegistrationLimits,
    cancel_registration,
    clean_name,
    get_registration,
    get_webinar,
    list_webinars,
    normalise_email,
    register,
)
from core.db import Database
from core.settings import Settings
from directory.pages import PresenterWebinars, WebinarTeaser
from directory.routes import provide_disclaimer
from directory.search import SearchIndex
from directory.service import DirectoryRefresher
from directory.taxonomy import CONDITION_BY_SLUG, REGION_BY_SLUG, REGIONS, conditions_in
from web.pages import PAGE_EXCEPTION_HANDLERS, PUBLIC_PAGE, page_error

# Dates shown per webinar on the list; the webinar's own page shows them all.
DATES_ON_LIST = 3
SCHEDULED = "scheduled"
CONFIRMED, WAITLISTED, CANCELLED = "confirmed", "waitlisted", "cancelled"
REGISTER_BUTTON = "register-button"


# --- how a page shows a time ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """A session's time three ways: in its own zone and in UTC (server-rendered), and as ISO
    instants that web/static/booking.js turns into the visitor's own zone."""

    when: str
    zone: str
    zone_city: str
    utc: str
    starts_iso: str
    ends_iso: str


def session_times(starts_at: datetime, ends_at: datetime, timezone: str) -> SessionTimes:
    """The same wording as the e-mails (booking.messages.format_when), so page and mail agree."""
    return SessionTimes(
        when=format_when(starts_at, ends_at, ZoneInfo(timezone)),
        zone=timezone,
        zone_city=timezone.rsplit("/", 1)[-1].replace("_", " "),
        utc=format_when(starts_at, ends_at, UTC),
        starts_iso=_iso_utc(starts_at),
        ends_iso=_iso_utc(ends_at),
    )


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class SessionView:
    """One date of a webinar as the list and the registration form show it."""

    id: int
    times: SessionTimes
    seats_left: int
    cancelled: bool

    @property
    def full(self) -> bool:
        return self.seats_left == 0


def session_view(sess: SessionOut) -> SessionView:
    return SessionView(
        id=sess.id,
        times=session_times(sess.starts_at, sess.ends_at, sess.timezone),
        seats_left=sess.seats_left,
        cancelled=sess.status != SCHEDULED,
    )


def local_path(url: str) -> str:
    """The service hands out absolute links for e-mail (BASE_URL); pages link within the site."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def webinar_path(slug: str) -> str:
    return f"/webinars/{slug}"


def manage_path(token: str) -> str:
    return f"/registrations/{token}"


# --- the upcoming list ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebinarFilter:
    """What the list's filter form sent; empty means any."""

    region: str = ""
    condition: str = ""

    @property
    def heading(self) -> str:
        if self.condition:
            return f"Free webinars about {CONDITION_BY_SLUG[self.condition].name.lower()}"
        if self.region:
            return f"Free webinars about the {REGION_BY_SLUG[self.region].name.lower()}"
        return "Free webinars"

    @property
    def filtered(self) -> bool:
        return bool(self.region or self.condition)


def webinar_filter(region: str, condition: str) -> WebinarFilter:
    """The filter, or a 400 page that says which choice we do not know."""
    if region and region not in REGION_BY_SLUG:
        raise ValidationException(
            f"We do not know the body area \u201c{region}\u201d. Choose one from the list."
        )
    if condition and condition not in CONDITION_BY_SLUG:
        raise ValidationException(
            f"We do not know the condition \u201c{condition}\u201d. Choose one from the list."
        )
    return WebinarFilter(region, condition)


# --- the registration form --------------------------------------------------------------------


class RegistrationForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the registration form posts. Bounds are the API's (RegistrationIn); the inputs carry
    the same maxlength, so only a hand-made request meets them, and it gets a plain 400 page."""

    session: int | None = None
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    consent: bool = False
    # A fresh random key in every form the page renders: a double click or a resubmitted form
    # replays the first answer, with its private link, instead of "already registered".
    key: Annotated[str, msgspec.Meta(max_length=255)] = ""


Errors = list[tuple[str, str]]


def session_field_id(sessions: Sequence[SessionView]) -> str:
    """The radio the error summary's "choose a date" link leads to: the first open one."""
    open_ = [s for s in sessions if not s.cancelled]
    return f"session-{open_[0].id}" if open_ else REGISTER_BUTTON


def form_errors(form: RegistrationForm, sessions: Sequence[SessionView]) -> Errors:
    """Every problem at once, in the form's order, as (field id, what to do)."""
    errors: Errors = []
    open_ids = {s.id for s in sessions if not s.cancelled}
    if form.session not in open_ids:
        errors.append((session_field_id(sessions), "Choose the date you want to attend."))
    if not form.name.strip():
        errors.append(("name", "Enter your name."))
    else:
        errors += _service_errors(clean_name, form.name)
    if not form.email.strip():
        errors.append(("email", "Enter your e-mail address, so we can send you the invitation."))
    else:
        errors += _service_errors(normalise_email, form.email)
    return errors


def _service_errors(check: Callable[[str], str], value: str) -> Errors:
    # The service's own checks, one field at a time, so the form can show every error together.
    try:
        check(value)
    except InvalidInput as exc:
        return list(exc.errors.items())
    return []


# --- presenters on provider profiles ----------------------------------------------------------


def presenter_webinars(db: Database, directory: DirectoryRefresher, settings: Settings) -> PresenterWebinars:
    """The hook directory's profile page calls (app.state[PRESENTER_WEBINARS]); runs in a thread."""

    def webinars_presented_by(provider_slug: str) -> Sequence[WebinarTeaser]:
        teasers = []
        for webinar in list_webinars(db, directory.index, settings):
            if not any(p.slug == provider_slug for p in webinar.presenters):
                continue
            upcoming = [s for s in webinar.sessions if s.status == SCHEDULED]
            if upcoming:
                when = session_times(upcoming[0].starts_at, upcoming[0].ends_at, upcoming[0].timezone).when
                teasers.append(WebinarTeaser(webinar.title, webinar_path(webinar.slug), when))
        return teasers

    return webinars_presented_by


# --- search engines ---------------------------------------------------------------------------


def webinar_json_ld(webinar: WebinarOut, page_url: str, network_name: str) -> dict[str, Any]:
    """schema.org EducationEvents, one per date, so a search engine can list them as online events."""
    return {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@type": "EducationEvent",
                "name": webinar.title,
                "description": webinar.description,
                "url": page_url,
                "startDate": sess.starts_at.isoformat(),
                "endDate": sess.ends_at.isoformat(),
                "eventAttendanceMode": "https://schema.org/OnlineEventAttendanceMode",
                "eventStatus": "https://schema.org/"
                + ("EventScheduled" if sess.status == SCHEDULED else "EventCancelled"),
                "location": {"@type": "VirtualLocation", "url": page_url},
                "isAccessibleForFree": True,
                "organizer": {"@type": "Organization", "name": network_name},
                "performer": [
                    {"@type": "Person", "name": f"{p.name}, {p.credentials}" if p.credentials else p.name}
                    for p in webinar.presenters
                ],
            }
            for sess in webinar.sessions
        ],
    }


# --- the pages --------------------------------------------------------------------------------


class WebinarPages(Controller):
    path = "/webinars"
    tags = ["pages"]
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
        "index": Provide(provide_index, sync_to_thread=False),
        "limits": Provide(provide_limits, sync_to_thread=False),
        "disclaimer": Provide(provide_disclaimer, sync_to_thread=False),
    }

    @get("/", operation_id="webinarListPage", cache_control=PUBLIC_PAGE, sync_to_thread=True)
    def webinars(
        self,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        index: NamedDependency[SearchIndex],
        region: Annotated[str, QueryParameter(max_length=40)] = "",
        condition: Annotated[str, QueryParameter(max_length=80)] = "",
    ) -> Template:
        """Upcoming webinars, soonest first, filtered by body area or condition."""
        chosen = webinar_filter(region, condition)
        found = list_webinars(
            db,
            index,
            settings,
            region=chosen.region or None,
            conditions=[chosen.condition] if chosen.condition else None,
        )
        return Template(
            "booking/webinars.html",
            context={
                "filter": chosen,
                "webinars": [(w, [session_view(s) for s in w.sessions[:DATES_ON_LIST]]) for w in found],
                "regions": REGIONS,
                "conditions_by_region": [(r, conditions_in(r.slug)) for r in REGIONS],
            },
        )

    @get("/{slug:str}", operation_id="webinarPage", cache_control=PUBLIC_PAGE, sync_to_thread=True)
    def webinar(
        self,
        slug: FromPath[str],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        index: NamedDependency[SearchIndex],
        disclaimer: NamedDependency[str],
        session: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> Template:
        """One webinar: presenters, dates with seats left and times, and the registration form."""
        webinar = _webinar_or_404(db, index, settings, slug)
        return _webinar_page(webinar, settings, disclaimer, RegistrationForm(session=session), [])

    @post("/{slug:str}", operation_id="registerPage", sync_to_thread=True)
    def register(
        self,
        slug: FromPath[str],
        data: Annotated[RegistrationForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        index: NamedDependency[SearchIndex],
        limits: NamedDependency[RegistrationLimits],
        disclaimer: NamedDependency[str],
    ) -> Response[Any]:
        """Register from the form: to the confirmation page, or the form again with what to fix."""
        webinar = _webinar_or_404(db, index, settings, slug)
        sessions = [session_view(s) for s in webinar.sessions]
        errors = form_errors(data, sessions)
        if errors:
            return _webinar_page(webinar, settings, disclaimer, data, errors, status_code=400)
        assert data.session is not None
        form = RegistrationIn(name=data.name, email=data.email, consent=data.consent)
        try:
            try:
                _, out = register(
                    db, settings, data.session, form, idempotency_key=data.key or None, limits=limits
                )
            except IdempotencyMismatch:
                # The browser brought back a form already sent for someone else (the back button):
                # this is a new request, so it gets a new key.
                _, out = register(
                    db, settings, data.session, form, idempotency_key=secrets.token_urlsafe(16), limits=limits
                )
        except RegistrationClosed:
            errors = [
                (
                    session_field_id(sessions),
                    "Registration for that date has closed: it was cancelled or has started. "
                    "Please choose another date.",
                )
            ]
            return _webinar_page(webinar, settings, disclaimer, data, errors, status_code=409)
        except LimitReached as exc:
            response = _webinar_page(
                webinar, settings, disclaimer, data, [(REGISTER_BUTTON, exc.detail)], status_code=429
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except InvalidInput as exc:
            return _webinar_page(
                webinar, settings, disclaimer, data, list(exc.errors.items()), status_code=400
            )
        except BookingError as exc:
            raise http_error_for(exc) from exc
        if out.token is None:
            # Already registered: the answer must not hand this address's private link to whoever typed it.
            return Redirect(f"{webinar_path(slug)}/already-registered", status_code=HTTP_303_SEE_OTHER)
        return Redirect(f"{manage_path(out.token)}/confirmation", status_code=HTTP_303_SEE_OTHER)

    @get("/{slug:str}/already-registered", operation_id="alreadyRegisteredPage", sync_to_thread=True)
    def already_registered(
        self,
        slug: FromPath[str],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        index: NamedDependency[SearchIndex],
    ) -> Template:
        """Where a second registration with the same address lands: the link is in the first e-mail."""
        webinar = _webinar_or_404(db, index, settings, slug)
        return Template("booking/already_registered.html", context={"webinar": webinar})


def _webinar_or_404(db: Database, index: SearchIndex, settings: Settings, slug: str) -> WebinarOut:
    try:
        return get_webinar(db, index, settings, slug)
    except NotFound as exc:
        raise NotFoundException(
            "We could not find that webinar. It may have ended, or the link may be wrong. "
            "See the list of upcoming webinars."
        ) from exc


def _webinar_page(
    webinar: WebinarOut,
    settings: Settings,
    disclaimer: str,
    form: RegistrationForm,
    errors: Errors,
    *,
    status_code: int = 200,
) -> Template:
    sessions = [session_view(s) for s in webinar.sessions]
    open_sessions = [s for s in sessions if not s.cancelled]
    chosen = form.session
    if chosen is None and len(open_sessions) == 1:
        chosen = open_sessions[0].id
    page_url = f"{settings.base_url}{webinar_path(webinar.slug)}"
    return Template(
        "booking/webinar.html",
        context={
            "webinar": webinar,
            "open_sessions": open_sessions,
            "cancelled_sessions": [s for s in sessions if s.cancelled],
            "chosen": chosen,
            "form": form,
            # Each rendering gets its own key; a form sent back with errors keeps the one it had.
            "key": form.key or secrets.token_urlsafe(16),
            "errors": errors,
            "session_field": session_field_id(sessions),
            "disclaimer": disclaimer,
            "json_ld": webinar_json_ld(webinar, page_url, settings.network_name),
        },
        status_code=status_code,
    )


# The token is in these pages' URLs: no copy anywhere (no-store), no Referer to any site, not indexed.
PRIVATE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def private_page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The shared error page, with the private-link headers: a wrong token leaks nowhere either."""
    page = page_error(request, exc)
    page.headers.update(PRIVATE_HEADERS)
    page.headers["Cache-Control"] = PRIVATE.to_header()
    return page


class RegistrationPages(Controller):
    path = "/registrations"
    tags = ["pages"]
    include_in_schema = False
    cache_control = PRIVATE
    response_headers = [ResponseHeader(name=name, value=value) for name, value in PRIVATE_HEADERS.items()]
    exception_handlers = {HTTPException: private_page_error, Exception: private_page_error}
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
    }

    @get("/{token:str}", operation_id="manageRegistrationPage", sync_to_thread=True)
    def manage(
        self,
        token: FromPath[str],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        cancelled: FromQuery[bool] = False,
    ) -> Template:
        """The private manage page: status, join link (seat holders), calendar, cancel."""
        out = _registration_or_404(db, settings, token)
        return Template(
            "booking/manage.html",
            context=_registration_context(out, token)
            | {"just_cancelled": cancelled and out.status == CANCELLED},
        )

    @get("/{token:str}/confirmation", operation_id="registrationConfirmationPage", sync_to_thread=True)
    def confirmation(
        self, token: FromPath[str], db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Template:
        """Right after registering: a confirmed seat or the place on the waitlist, and what comes next."""
        out = _registration_or_404(db, settings, token)
        return Template("booking/confirmation.html", context=_registration_context(out, token))

    @get("/{token:str}/cancel", operation_id="cancelRegistrationPage", sync_to_thread=True)
    def confirm_cancel(
        self, token: FromPath[str], db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        """The confirmation step before cancelling: says what will happen, changes nothing."""
        out = _registration_or_404(db, settings, token)
        if out.status == CANCELLED:
            return Redirect(manage_path(token), status_code=HTTP_303_SEE_OTHER)
        return Template("booking/cancel.html", context=_registration_context(out, token))

    @post("/{token:str}/cancel", operation_id="cancelRegistrationForm", sync_to_thread=True)
    def cancel(
        self, token: FromPath[str], db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Redirect:
        """Cancel (the service gives a freed seat to the waitlist), then back to the manage page."""
        try:
            cancel_registration(db, settings, token)
        except BookingError as exc:
            raise http_error_for(exc) from exc
        return Redirect(f"{manage_path(token)}?cancelled=true", status_code=HTTP_303_SEE_OTHER)


def _registration_or_404(db: Database, settings: Settings, token: str) -> RegistrationOut:
    try:
        return get_registration(db, settings, token)
    except BookingError as exc:
        # One answer for any wrong token (the service's words), so nothing tells a guess from a typo.
        raise http_error_for(exc) from exc


def _registration_context(out: RegistrationOut, token: str) -> dict[str, Any]:
    sess = out.session
    return {
        "registration": out,
        "times": session_times(sess.starts_at, sess.ends_at, sess.timezone),
        "session_cancelled": sess.status != SCHEDULED,
        "webinar_url": webinar_path(sess.webinar_slug),
        "manage_url": manage_path(token),
        "ics_url": local_path(out.ics_url) if out.ics_url else None,
    }
