"""Webinar admin pages: webinars (add, edit, publish), their sessions (add, move, resize, cancel),
attendee lists with their CSV, and the mail outbox, for admins in a browser with or without
JavaScript.

Every change goes through booking.admin_service, exactly as the JSON API in booking/admin.py does
(validation, the e-mails each change owes, the audit log, and the record of who looked at an
attendee list); these pages turn forms into its inputs and its errors into words beside the fields.
The app's admin guard covers /admin (sign-in, the `_csrf` field); forms post, then redirect to a
page that says what happened (post/redirect/get). Moving and cancelling a session, which e-mail
everyone registered, first show a confirmation page that says how many people will be told.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
)
from litestar.types import ExceptionHandlersMap

from accounts.guards import provide_db
from accounts.pages import (
    ADMIN_PAGE_EXCEPTION_HANDLERS,
    admin_page_error,
    form_text,
    provide_settings,
    safe_next,
)
from accounts.service import Admin
from booking.admin_service import (
    AdminSessionOut,
    AdminWebinarOut,
    AttendeeStatus,
    Conflict,
    OutboxState,
    SessionCreate,
    SessionPatch,
    WebinarCreate,
    WebinarEdit,
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
from booking.pages import SessionTimes, session_times
from booking.routes import http_error_for, provide_index
from booking.service import (
    BookingError,
    InvalidInput,
    NotFound,
    SessionInput,
    SessionLocked,
    validate_session,
)
from core.db import Database
from core.settings import Settings
from directory.search import SearchIndex
from directory.taxonomy import REGIONS, conditions_in

WEBINARS = "/admin/webinars"
SESSIONS = "/admin/sessions"
OUTBOX = "/admin/outbox"
Errors = list[tuple[str, str]]

SCHEDULED = "scheduled"
ATTENDEE_TABS: dict[str, str] = {
    "": "Everyone",
    "confirmed": "Confirmed",
    "waitlisted": "Waitlist",
    "cancelled": "Cancelled",
}
OUTBOX_STATES: dict[str, str] = {
    "queued": "Queued",
    "sending": "Sending",
    "sent": "Sent",
    "retrying": "Retrying",
    "failed": "Failed",
    "cancelled": "Not sent (no longer needed)",
}
# Only these can be sent again (core.mail.resend).
RESENDABLE = frozenset({"failed", "sent"})
OUTBOX_PAGE = 50
# Presenter checkboxes shown at once; a bigger directory is searched by name (the "Find" button).
PRESENTER_CHOICES = 200
MAX_PRESENTERS = 20  # WebinarEdit's bound
# `?done=` after a redirect says what happened; only these words, so a link cannot make a page say
# anything else.
WEBINAR_NOTICES = {
    "created": "Webinar added. It is not on the public site until you publish it; add its dates below.",
    "saved": "Saved.",
    "publish": "Published: the webinar and its dates are on the public site, API and calendar feed.",
    "unpublish": "Unpublished: the public no longer sees it. Registrations already made stay as they are.",
}
# US zones first: the network's clinics are in the US.
COMMON_ZONES: tuple[tuple[str, str], ...] = (
    ("America/New_York", "Eastern (New York)"),
    ("America/Chicago", "Central (Chicago)"),
    ("America/Denver", "Mountain (Denver)"),
    ("America/Phoenix", "Arizona (Phoenix, no daylight saving)"),
    ("America/Los_Angeles", "Pacific (Los Angeles)"),
    ("America/Anchorage", "Alaska (Anchorage)"),
    ("Pacific/Honolulu", "Hawaii (Honolulu)"),
    ("America/Puerto_Rico", "Atlantic (Puerto Rico)"),
    ("UTC", "UTC"),
)
DEFAULT_ZONE = "America/New_York"


@lru_cache(maxsize=1)
def other_zones() -> tuple[str, ...]:
    """Every other IANA zone with a place name, for the zone list's second group."""
    common = {zone for zone, _ in COMMON_ZONES}
    return tuple(
        sorted(
            z
            for z in available_timezones()
            if "/" in z and z not in common and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
        )
    )


# --- errors -----------------------------------------------------------------------------------

# The service's details are written for API clients ("GET /api/admin/... lists them"); a person
# in a browser gets the same sentence without the API directions.
_API_ASIDE = re.compile(r"\s*\([^()]*/api/[^()]*\)")
_API_SENTENCE = re.compile(r"(?:^|(?<=\.))[^.]*\b(?:GET|PATCH|POST|PUT|DELETE) /api/[^.]*\.")


def plain(detail: str) -> str:
    """A service error's detail without its API directions. Pure."""
    return _API_SENTENCE.sub("", _API_ASIDE.sub("", detail)).strip()


def page_exception(exc: BookingError) -> HTTPException:
    """The HTTP error a booking error becomes (booking.admin.booking_error's mapping), in page words."""
    if isinstance(exc, NotFound):
        return NotFoundException("We could not find that. The link may be wrong, or it was removed.")
    if isinstance(exc, Conflict):
        return ClientException(plain(exc.detail), status_code=HTTP_409_CONFLICT)
    answer = http_error_for(exc)
    answer.detail = plain(exc.detail)
    return answer


def booking_page_error(request: Request[Any, Any, Any], exc: BookingError) -> Response[Any]:
    """A booking error no page handled itself: the admin error page, never a 500."""
    return admin_page_error(request, page_exception(exc))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {**ADMIN_PAGE_EXCEPTION_HANDLERS, BookingError: booking_page_error}


def bounds_errors(exc: msgspec.ValidationError, messages: dict[str, str], fallback: str) -> Errors:
    """msgspec's complaint about a bound ("... - at `$.capacity`") as the message of that field."""
    found = re.search(r"at `\$\.(\w+)", str(exc))
    name = found.group(1) if found else fallback
    return [(name if name in messages else fallback, messages.get(name, str(exc)))]


def service_errors(exc: InvalidInput, field_ids: dict[str, str], fallback: str) -> Errors:
    """InvalidInput's errors by field, each beside the form field it is about."""
    return [(field_ids.get(key, fallback), plain(message)) for key, message in exc.errors.items()]


# --- showing times ----------------------------------------------------------------------------


def times_of(sess: AdminSessionOut) -> SessionTimes:
    return session_times(sess.starts_at, sess.ends_at, sess.timezone)


def short_time(moment: datetime | None, zone: str = "UTC") -> str:
    """'Nov 25, 2026, 4:28 PM EST' in `zone`; empty for None. Pure."""
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(zone))
    hour = local.hour % 12 or 12
    return (
        f"{local.strftime('%b')} {local.day}, {local.year}, {hour}:{local.minute:02d} "
        f"{'AM' if local.hour < 12 else 'PM'} {local.tzname()}"
    )


def session_state(sess: AdminSessionOut, now: datetime) -> str:
    """What a list says about a session: scheduled, cancelled, under way or over."""
    if sess.status != SCHEDULED:
        return "Cancelled"
    if sess.ends_at <= now:
        return "Over"
    if sess.starts_at <= now:
        return "Under way"
    return "Scheduled"


# --- the webinar form -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PresenterChoice:
    id: int
    name: str
    # In the public directory (published): only those are shown as presenters on the public site.
    listed: bool = True


def presenter_choices(
    index: SearchIndex, chosen: Sequence[int], query: str, limit: int = PRESENTER_CHOICES
) -> tuple[list[PresenterChoice], int]:
    """The presenters to offer: those chosen, then the directory's published providers (whose
    name contains `query`) by name, at most `limit` of them; and how many matched in all."""
    wanted = query.strip().lower()
    everyone = {}
    for doc in index.docs:
        if doc is not None and doc.listed:
            label = f"{doc.name}, {doc.credentials}" if doc.credentials else doc.name
            everyone[doc.id] = PresenterChoice(doc.id, label)
    picked = [everyone.get(pid, PresenterChoice(pid, f"Provider {pid}", listed=False)) for pid in chosen]
    taken = set(chosen)
    matching = sorted(
        (c for pid, c in everyone.items() if pid not in taken and wanted in c.name.lower()),
        key=lambda c: (c.name.lower(), c.id),
    )
    return picked + matching[: max(0, limit - len(picked))], len(matching)


def _ids(values: Iterable[object]) -> list[int]:
    # Checkbox values are provider ids; anything else was not sent by this form.
    return [int(v) for v in values if isinstance(v, str) and v.isdigit() and len(v) <= 12]


@dataclass(slots=True)
class WebinarForm:
    """The webinar form as typed, so it comes back unchanged beside its errors."""

    title: str = ""
    description: str = ""
    presenter_ids: list[int] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    presenter_query: str = ""

    @classmethod
    def of(cls, webinar: AdminWebinarOut) -> WebinarForm:
        return cls(
            title=webinar.title,
            description=webinar.description,
            presenter_ids=list(webinar.presenter_ids),
            regions=list(webinar.regions),
            conditions=list(webinar.conditions),
        )

    @classmethod
    def parse(cls, form: Any) -> WebinarForm:
        return cls(
            title=form_text(form, "title", 400).strip(),
            description=form_text(form, "description", 10_000).strip(),
            presenter_ids=list(dict.fromkeys(_ids(form.getall("presenter_ids", []))))[:100],
            regions=[v for v in form.getall("regions", []) if isinstance(v, str)][:40],
            conditions=[v for v in form.getall("conditions", []) if isinstance(v, str)][:200],
            presenter_query=form_text(form, "presenter_query", 100),
        )

    def to_input(self) -> dict[str, Any]:
        """What the API would get (converted to WebinarEdit/WebinarCreate, bounds and all)."""
        return {
            "title": self.title,
            "description": self.description,
            "presenter_ids": self.presenter_ids,
            "regions": self.regions,
            "conditions": self.conditions,
        }


WEBINAR_BOUNDS = {
    "title": "Give the webinar a title (at most 200 characters).",
    "description": "Keep the description under 5,000 characters.",
    "presenter_ids": f"Choose at most {MAX_PRESENTERS} presenters.",
    "regions": "Choose body areas from the list.",
    "conditions": "Choose conditions from the list.",
}
WEBINAR_FIELDS = {name: name for name in WEBINAR_BOUNDS}


def _webinar_context(
    admin: Admin,
    form: WebinarForm,
    errors: Errors,
    webinar: AdminWebinarOut | None,
    index: SearchIndex,
    notice: str | None = None,
) -> dict[str, Any]:
    choices, matching = presenter_choices(index, form.presenter_ids, form.presenter_query)
    now = datetime.now(UTC)
    return {
        "admin": admin,
        "form": form,
        "errors": errors,
        "webinar": webinar,
        "notice": notice,
        "presenters": choices,
        # More providers than checkboxes: the form offers a search by name.
        "presenter_search": matching + len(form.presenter_ids) > PRESENTER_CHOICES
        or bool(form.presenter_query),
        "presenters_shown": len(choices),
        "presenters_matching": matching + len(form.presenter_ids),
        "chosen_presenters": set(form.presenter_ids),
        "regions": REGIONS,
        "conditions_by_region": [(region, conditions_in(region.slug)) for region in REGIONS],
        "selected_conditions": set(form.conditions),
        "selected_regions": set(form.regions),
        "sessions": [(s, times_of(s), session_state(s, now)) for s in (webinar.sessions if webinar else [])],
        "action": f"{WEBINARS}/{webinar.slug}/edit" if webinar else f"{WEBINARS}/new",
    }


def _webinar_page(
    admin: Admin,
    form: WebinarForm,
    errors: Errors,
    webinar: AdminWebinarOut | None,
    index: SearchIndex,
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    return Template(
        "booking/admin_webinar_form.html",
        context=_webinar_context(admin, form, errors, webinar, index, notice),
        status_code=status_code,
    )


# --- the session form (new session, and the move form) -----------------------------------------


_DAY_US = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::\d{2})?\s*([AaPp]\.?[Mm]\.?)?")


def parse_day(text: str) -> date | None:
    """2026-12-01 (what a date input sends) or 12/01/2026 (typed); None if neither. Pure."""
    text = text.strip()
    try:
        found = _DAY_US.fullmatch(text)
        if found:
            month, day, year = (int(g) for g in found.groups())
            return date(year, month, day)
        return date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def parse_clock(text: str) -> time | None:
    """18:30 (what a time input sends), or 6:30 PM; None if neither. Pure."""
    found = _CLOCK.fullmatch(text.strip())
    if found is None:
        return None
    hour, minute, half = int(found.group(1)), int(found.group(2)), found.group(3)
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half[0].lower() == "p" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def local_start(day_text: str, clock_text: str, zone_name: str) -> tuple[datetime | None, Errors]:
    """The start instant for a wall-clock date and time in an IANA zone, or what to fix. Pure."""
    errors: Errors = []
    day, clock = parse_day(day_text), parse_clock(clock_text)
    if day is None:
        errors.append(("date", "Enter the date as YYYY-MM-DD, for example 2026-12-01."))
    if clock is None:
        errors.append(("time", "Enter the start time as HH:MM, for example 18:30 or 6:30 PM."))
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(("timezone", "Choose a time zone from the list."))
        return None, errors
    if day is None or clock is None:
        return None, errors
    wall = datetime.combine(day, clock)
    start = wall.replace(tzinfo=zone)
    # A time the clocks skip (spring forward) does not exist there; ZoneInfo would quietly shift it.
    if start.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return None, [
            (
                "time",
                f"{clock.strftime('%H:%M')} does not exist on {day.isoformat()} in {zone_name}: "
                "the clocks go forward then. Choose another time.",
            )
        ]
    return start, []


def _whole(text: str, field_id: str, message: str, errors: Errors) -> int | None:
    value = text.strip().replace(",", "")
    if re.fullmatch(r"\d{1,7}", value):
        return int(value)
    errors.append((field_id, message))
    return None


SESSION_BOUNDS = {
    "starts_at": "Enter the date and time the session starts.",
    "timezone": "Choose a time zone from the list.",
    "capacity": "Capacity must be between 1 and 100,000 seats.",
    "duration_minutes": "Duration must be between 5 minutes and 24 hours.",
    "join_url": "The join link must be a web address (https://...) under 500 characters.",
}
# The service's error keys -> the form's fields.
SESSION_FIELDS = {
    "starts_at": "date",
    "timezone": "timezone",
    "capacity": "capacity",
    "duration_minutes": "duration_minutes",
    "join_url": "join_url",
}
DURATION_TEXT = "Enter the length in minutes, for example 60."
CAPACITY_TEXT = "Enter the number of seats, for example 100."


@dataclass(slots=True)
class SessionForm:
    """A session's date, time, zone, length, seats and join link as typed."""

    date: str = ""
    time: str = ""
    timezone: str = DEFAULT_ZONE
    duration_minutes: str = "60"
    capacity: str = "100"
    join_url: str = ""

    @classmethod
    def of(cls, sess: AdminSessionOut) -> SessionForm:
        local = sess.starts_at.astimezone(ZoneInfo(sess.timezone))
        return cls(
            date=local.date().isoformat(),
            time=local.strftime("%H:%M"),
            timezone=sess.timezone,
            duration_minutes=str(sess.duration_minutes),
            capacity=str(sess.capacity),
            join_url=sess.join_url,
        )

    @classmethod
    def parse(cls, form: Any, defaults: SessionForm | None = None) -> SessionForm:
        """From the posted form; a field the form did not have keeps its value in `defaults`."""
        base = defaults or cls()

        def text(name: str, limit: int) -> str:
            return form_text(form, name, limit).strip() if name in form else str(getattr(base, name))

        return cls(
            date=text("date", 40),
            time=text("time", 40),
            timezone=text("timezone", 80),
            duration_minutes=text("duration_minutes", 20),
            capacity=text("capacity", 20),
            join_url=text("join_url", 1000),
        )

    def values(self) -> tuple[dict[str, Any], Errors]:
        """The API's fields (starts_at, timezone, duration_minutes, capacity, join_url), or what to fix."""
        starts_at, errors = local_start(self.date, self.time, self.timezone)
        duration = _whole(self.duration_minutes, "duration_minutes", DURATION_TEXT, errors)
        capacity = _whole(self.capacity, "capacity", CAPACITY_TEXT, errors)
        if not self.join_url:
            errors.append(("join_url", "Enter the link attendees use to join, starting with https://"))
        values = {
            "starts_at": starts_at,
            "timezone": self.timezone,
            "duration_minutes": duration,
            "capacity": capacity,
            "join_url": self.join_url,
        }
        return values, errors


def new_session(form: SessionForm) -> tuple[SessionCreate | None, Errors]:
    """The new session a form describes, or what to fix (before the service's own checks)."""
    values, errors = form.values()
    if errors:
        return None, errors
    try:
        return msgspec.convert(values, SessionCreate), []
    except msgspec.ValidationError as exc:
        return None, [
            (SESSION_FIELDS.get(k, k), m) for k, m in bounds_errors(exc, SESSION_BOUNDS, "starts_at")
        ]


@dataclass(frozen=True, slots=True)
class Move:
    """A reviewed move: the change to send and who it reaches."""

    patch: SessionPatch
    # The changed fields, in the API's names (starts_at, duration_minutes, timezone, join_url).
    changed: tuple[str, ...]
    new_times: SessionTimes
    # Confirmed seat holders and waitlisted people who will be e-mailed.
    confirmed_told: int
    waitlisted_told: int

    @property
    def told(self) -> int:
        return self.confirmed_told + self.waitlisted_told

    @property
    def rescheduled(self) -> bool:
        return "starts_at" in self.changed or "duration_minutes" in self.changed


def people_told(sess: AdminSessionOut, changed: Iterable[str]) -> tuple[int, int]:
    """(seat holders, waitlisted) a change will e-mail, by booking.service.move_session's rule:
    a new time or length reaches everyone registered, a new join link only seat holders (it is
    theirs alone), a new display zone alone nobody (the instant stays). Pure."""
    changed = set(changed)
    if changed & {"starts_at", "duration_minutes"}:
        return sess.seats_taken, sess.waitlisted
    if "join_url" in changed:
        return sess.seats_taken, 0
    return 0, 0


def review_move(sess: AdminSessionOut, form: SessionForm, now: datetime) -> tuple[Move | None, Errors]:
    """What the move form would change, checked as the service will check it, or what to fix."""
    values, errors = form.values()
    errors = [e for e in errors if e[0] != "capacity"]
    if errors:
        return None, errors
    current = {
        # The form has minutes, and instants compare in UTC (a fall-back hour happens twice).
        "starts_at": sess.starts_at.astimezone(UTC).replace(second=0, microsecond=0),
        "duration_minutes": sess.duration_minutes,
        "timezone": sess.timezone,
        "join_url": sess.join_url,
    }
    wanted = {**values, "starts_at": values["starts_at"].astimezone(UTC)}
    changed = tuple(name for name, value in current.items() if wanted[name] != value)
    if not changed:
        return None, [("date", "Nothing to change: enter a new date, time, length, time zone or join link.")]
    try:
        patch = msgspec.convert({name: values[name] for name in changed}, SessionPatch)
    except msgspec.ValidationError as exc:
        return None, [
            (SESSION_FIELDS.get(k, k), m) for k, m in bounds_errors(exc, SESSION_BOUNDS, "starts_at")
        ]
    # The service's own checks, so the confirmation page never offers a move it will refuse.
    problems = validate_session(
        SessionInput(
            starts_at=values["starts_at"],
            timezone=values["timezone"],
            capacity=sess.capacity,
            join_url=values["join_url"],
            duration_minutes=values["duration_minutes"],
        ),
        now=now,
    )
    if "starts_at" not in changed:
        # An unchanged start may be past (a session under way can still get a new link).
        problems.pop("starts_at", None)
    elif "starts_at" in problems:
        problems["starts_at"] = "A session can only be moved to a time in the future."
    problems.pop("capacity", None)
    if problems:
        return None, [(SESSION_FIELDS.get(k, "date"), m) for k, m in problems.items()]
    duration = values["duration_minutes"]
    starts_at = values["starts_at"]
    confirmed, waitlisted = people_told(sess, changed)
    return (
        Move(
            patch=patch,
            changed=changed,
            new_times=session_times(starts_at, starts_at + timedelta(minutes=duration), values["timezone"]),
            confirmed_told=confirmed,
            waitlisted_told=waitlisted,
        ),
        [],
    )


# --- the session page -------------------------------------------------------------------------


def session_notice(done: str, told: int) -> str | None:
    """What the session page says after a change (`?done=`), with how many were e-mailed."""
    people = f"{told} person is" if told == 1 else f"{told} people are"
    return {
        "created": "Session added. People can register while its webinar is published.",
        "moved": (
            f"Saved. {people} being e-mailed the change; seat holders get an updated calendar invitation."
            if told
            else "Saved. Nobody needed an e-mail: nobody is registered, or only the time zone shown changed."
        ),
        "capacity": (
            f"Capacity saved. {told} moved up from the waitlist and {'is' if told == 1 else 'are'} "
            "being e-mailed their seat."
            if told
            else "Capacity saved."
        ),
        "cancelled": f"Session cancelled. {people} being e-mailed the cancellation.",
        "unchanged": "Nothing changed.",
    }.get(done)


def _session_context(
    admin: Admin,
    sess: AdminSessionOut,
    webinar: AdminWebinarOut,
    form: SessionForm,
    errors: Errors,
    notice: str | None = None,
) -> dict[str, Any]:
    return {
        "admin": admin,
        "session": sess,
        "webinar": webinar,
        "times": times_of(sess),
        "state": session_state(sess, datetime.now(UTC)),
        "form": form,
        "errors": errors,
        "notice": notice,
        "common_zones": COMMON_ZONES,
        "other_zones": other_zones(),
        "base": f"{SESSIONS}/{sess.id}",
        "told_if_cancelled": sess.seats_taken + sess.waitlisted,
    }


def _session_page(
    db: Database,
    admin: Admin,
    session_id: int,
    *,
    form: SessionForm | None = None,
    errors: Errors | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    sess = session_detail(db, session_id)
    webinar = webinar_detail(db, sess.webinar_slug)
    return Template(
        "booking/admin_session.html",
        context=_session_context(admin, sess, webinar, form or SessionForm.of(sess), errors or [], notice),
        status_code=status_code,
    )


# --- attendees and outbox ---------------------------------------------------------------------


_ATTENDEE_STATUSES: dict[str, AttendeeStatus] = {
    "confirmed": "confirmed",
    "waitlisted": "waitlisted",
    "cancelled": "cancelled",
}


def attendee_status(value: str) -> AttendeeStatus | None:
    """The attendee tab asked for; a 400 page for one that does not exist."""
    if value in ("", "all"):
        return None
    if value in _ATTENDEE_STATUSES:
        return _ATTENDEE_STATUSES[value]
    raise ValidationException("Show everyone, or only the confirmed, waitlisted or cancelled registrations.")


def _attendees_page(
    db: Database,
    admin: Admin,
    session_id: int,
    tab: AttendeeStatus | None,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Template:
    listing = view_attendees(db, admin, session_id, tab)
    sess = listing.session
    webinar = webinar_detail(db, sess.webinar_slug)
    here = f"{SESSIONS}/{session_id}/attendees" + (f"?status={tab}" if tab else "")
    return Template(
        "booking/admin_attendees.html",
        context={
            "admin": admin,
            "session": sess,
            "webinar": webinar,
            "times": times_of(sess),
            "listing": listing,
            "tab": tab or "",
            "tabs": ATTENDEE_TABS,
            "total": sum(listing.counts.values()),
            "here": here,
            "base": f"{SESSIONS}/{session_id}",
            "notice": notice,
            "problem": problem,
            "when": lambda moment: short_time(moment, sess.timezone),
            # Seats can be given by hand only while a session has not ended (promote_registration).
            "open": sess.status == SCHEDULED and sess.ends_at > datetime.now(UTC),
        },
        status_code=status_code,
    )


ATTENDEE_NOTICES = {
    "removed": "Removed. They are being e-mailed that their registration is cancelled.",
    "removed-promoted": (
        "Removed. They are being e-mailed that their registration is cancelled; the first person on "
        "the waitlist got the seat and is being e-mailed the invitation."
    ),
    "promoted": "Given a seat. They are being e-mailed the invitation.",
}


@dataclass(frozen=True, slots=True)
class OutboxFilter:
    status: OutboxState | None = None
    session_id: int | None = None
    before_id: int | None = None

    def query(self, **changes: Any) -> str:
        values = {"status": self.status, "session": self.session_id, "before": self.before_id, **changes}
        return urlencode({k: v for k, v in values.items() if v is not None})

    def url(self, **changes: Any) -> str:
        query = self.query(**changes)
        return f"{OUTBOX}?{query}" if query else OUTBOX


def outbox_filter(status: str, session: str, before: str) -> OutboxFilter:
    """The outbox filter form's values; a 400 page for values it never sends."""
    chosen: OutboxState | None = None
    if status:
        if status not in OUTBOX_STATES:
            raise ValidationException(f"Choose a state from the list: {', '.join(OUTBOX_STATES)}.")
        chosen = status  # type: ignore[assignment]
    numbers = []
    for value, what in ((session.strip(), "session number"), (before.strip(), "page")):
        if value and not (value.isdigit() and 1 <= int(value) <= 2**62):
            raise ValidationException(f"The {what} must be a whole number, such as 12.")
        numbers.append(int(value) if value else None)
    return OutboxFilter(chosen, numbers[0], numbers[1])


def _outbox_page(
    db: Database,
    admin: Admin,
    chosen: OutboxFilter,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Template:
    page = list_outbox(
        db,
        admin,
        status=chosen.status,
        session_id=chosen.session_id,
        before_id=chosen.before_id,
        limit=OUTBOX_PAGE,
    )
    return Template(
        "booking/admin_outbox.html",
        context={
            "admin": admin,
            "page": page,
            "filter": chosen,
            "states": OUTBOX_STATES,
            "resendable": RESENDABLE,
            "here": chosen.url(),
            "older_url": chosen.url(before=page.next_before_id) if page.next_before_id else None,
            "newest_url": chosen.url(before=None) if chosen.before_id else None,
            "notice": notice,
            "problem": problem,
            "when": short_time,
        },
        status_code=status_code,
    )


def _back_filter(back: str) -> OutboxFilter:
    """The outbox filter of the page a resend button was on (to show it again with an error)."""
    query = dict(parse_qsl(urlsplit(back).query))
    try:
        return outbox_filter(query.get("status", ""), query.get("session", ""), query.get("before", ""))
    except ValidationException:
        return OutboxFilter()


def with_done(url: str, done: str) -> str:
    """`url` with `done` set in its query (replacing an earlier one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "done"] + [("done", done)]
    return f"{parts.path}?{urlencode(query)}"


# --- routes -----------------------------------------------------------------------------------


class _AdminPages(Controller):
    tags = ["admin pages"]
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS
    dependencies = {
        "db": Provide(provide_db, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
        "index": Provide(provide_index, sync_to_thread=False),
    }


class WebinarAdminPages(_AdminPages):
    path = WEBINARS

    @get("", operation_id="adminWebinarsPage", name="admin:webinars", sync_to_thread=True)
    def webinars(
        self,
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        done: Annotated[str, QueryParameter(max_length=20)] = "",
        slug: Annotated[str, QueryParameter(max_length=120)] = "",
    ) -> Template:
        """Every webinar, published or not, with its next date and that date's seats."""
        rows = []
        for summary in list_all_webinars(db):
            upcoming = None
            if summary.next_starts_at is not None:
                detail = webinar_detail(db, summary.slug)
                upcoming = next(
                    (
                        s
                        for s in detail.sessions
                        if s.status == SCHEDULED
                        and s.starts_at.astimezone(UTC) == summary.next_starts_at.astimezone(UTC)
                    ),
                    None,
                )
            rows.append((summary, upcoming, times_of(upcoming) if upcoming else None))
        return Template(
            "booking/admin_webinars.html",
            context={
                "admin": current_admin,
                "rows": rows,
                "notice": WEBINAR_NOTICES.get(done) if done in ("publish", "unpublish") else None,
                "notice_slug": slug if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) else "",
                "here": WEBINARS,
            },
        )

    @get("/new", operation_id="adminNewWebinarPage", sync_to_thread=False)
    def new_form(
        self, current_admin: NamedDependency[Admin], index: NamedDependency[SearchIndex]
    ) -> Template:
        """An empty webinar form."""
        return _webinar_page(current_admin, WebinarForm(), [], None, index)

    @post("/new", operation_id="adminCreateWebinarSubmit")
    async def create(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        index: NamedDependency[SearchIndex],
    ) -> Response[Any]:
        """Add a webinar (unpublished) and open its page; or show the form again with its errors."""
        posted = await request.form()
        form = WebinarForm.parse(posted)
        if posted.get("find"):
            return _webinar_page(current_admin, form, [], None, index, notice=NOT_SAVED)
        try:
            data = msgspec.convert(form.to_input(), WebinarCreate)
            saved = await anyio.to_thread.run_sync(add_webinar, db, current_admin, data)
        except msgspec.ValidationError as exc:
            errors = bounds_errors(exc, WEBINAR_BOUNDS, "title")
            return _webinar_page(current_admin, form, errors, None, index, status_code=HTTP_400_BAD_REQUEST)
        except InvalidInput as exc:
            errors = service_errors(exc, WEBINAR_FIELDS, "title")
            return _webinar_page(current_admin, form, errors, None, index, status_code=HTTP_400_BAD_REQUEST)
        return Redirect(f"{WEBINARS}/{saved.slug}/edit?done=created", status_code=HTTP_303_SEE_OTHER)

    @get("/{slug:str}/edit", operation_id="adminEditWebinarPage", sync_to_thread=True)
    def edit_form(
        self,
        slug: FromPath[str],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        index: NamedDependency[SearchIndex],
        done: Annotated[str, QueryParameter(max_length=20)] = "",
    ) -> Template:
        """A webinar's form, its public status and its sessions."""
        webinar = webinar_detail(db, slug)
        return _webinar_page(
            current_admin, WebinarForm.of(webinar), [], webinar, index, notice=WEBINAR_NOTICES.get(done)
        )

    @post("/{slug:str}/edit", operation_id="adminEditWebinarSubmit")
    async def edit(
        self,
        slug: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        index: NamedDependency[SearchIndex],
    ) -> Response[Any]:
        """Save the webinar's content (publishing has its own buttons); or the form again with errors."""
        posted = await request.form()
        form = WebinarForm.parse(posted)
        webinar = await anyio.to_thread.run_sync(webinar_detail, db, slug)
        if posted.get("find"):
            return _webinar_page(current_admin, form, [], webinar, index, notice=NOT_SAVED)
        try:
            data = msgspec.convert(form.to_input(), WebinarEdit)
            await anyio.to_thread.run_sync(edit_webinar, db, current_admin, slug, data)
        except msgspec.ValidationError as exc:
            errors = bounds_errors(exc, WEBINAR_BOUNDS, "title")
            return _webinar_page(
                current_admin, form, errors, webinar, index, status_code=HTTP_400_BAD_REQUEST
            )
        except InvalidInput as exc:
            errors = service_errors(exc, WEBINAR_FIELDS, "title")
            return _webinar_page(
                current_admin, form, errors, webinar, index, status_code=HTTP_400_BAD_REQUEST
            )
        return Redirect(f"{WEBINARS}/{slug}/edit?done=saved", status_code=HTTP_303_SEE_OTHER)

    @post("/{slug:str}/publish", operation_id="adminPublishWebinarSubmit")
    async def publish(
        self,
        slug: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Redirect:
        """Put the webinar on the public site; then back to where the button was."""
        back = safe_next(form_text(await request.form(), "back", 2000) or f"{WEBINARS}/{slug}/edit")
        await anyio.to_thread.run_sync(publish_webinar, db, current_admin, slug)
        return Redirect(_with_slug(with_done(back, "publish"), slug), status_code=HTTP_303_SEE_OTHER)

    @post("/{slug:str}/unpublish", operation_id="adminUnpublishWebinarSubmit")
    async def unpublish(
        self,
        slug: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Redirect:
        """Take the webinar off the public site; then back to where the button was."""
        back = safe_next(form_text(await request.form(), "back", 2000) or f"{WEBINARS}/{slug}/edit")
        await anyio.to_thread.run_sync(unpublish_webinar, db, current_admin, slug)
        return Redirect(_with_slug(with_done(back, "unpublish"), slug), status_code=HTTP_303_SEE_OTHER)

    @get("/{slug:str}/sessions/new", operation_id="adminNewSessionPage", sync_to_thread=True)
    def new_session_form(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> Template:
        """An empty session form: date and time in a chosen zone, length, seats, join link."""
        webinar = webinar_detail(db, slug)
        return _new_session_page(current_admin, webinar, SessionForm(), [])

    @post("/{slug:str}/sessions/new", operation_id="adminCreateSessionSubmit")
    async def create_session(
        self,
        slug: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Add the session and open its page; or show the form again with its errors."""
        webinar = await anyio.to_thread.run_sync(webinar_detail, db, slug)
        form = SessionForm.parse(await request.form())
        data, errors = new_session(form)
        if data is None:
            return _new_session_page(current_admin, webinar, form, errors, HTTP_400_BAD_REQUEST)
        try:
            added = await anyio.to_thread.run_sync(add_webinar_session, db, current_admin, slug, data)
        except InvalidInput as exc:
            errors = service_errors(exc, SESSION_FIELDS, "date")
            return _new_session_page(current_admin, webinar, form, errors, HTTP_400_BAD_REQUEST)
        return Redirect(f"{SESSIONS}/{added.id}?done=created", status_code=HTTP_303_SEE_OTHER)


NOT_SAVED = "Not saved yet: choose the presenters, then save."


def _with_slug(url: str, slug: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "slug"] + [("slug", slug)]
    return f"{parts.path}?{urlencode(query)}" if parts.path == WEBINARS else url


def _new_session_page(
    admin: Admin, webinar: AdminWebinarOut, form: SessionForm, errors: Errors, status_code: int = 200
) -> Template:
    return Template(
        "booking/admin_session_form.html",
        context={
            "admin": admin,
            "webinar": webinar,
            "form": form,
            "errors": errors,
            "common_zones": COMMON_ZONES,
            "other_zones": other_zones(),
            "action": f"{WEBINARS}/{webinar.slug}/sessions/new",
        },
        status_code=status_code,
    )


class SessionAdminPages(_AdminPages):
    path = SESSIONS

    @get("/{session_id:int}", operation_id="adminSessionPage", sync_to_thread=True)
    def session(
        self,
        session_id: FromPath[int],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        done: Annotated[str, QueryParameter(max_length=20)] = "",
        told: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> Template:
        """One session: its seats and waitlist, and the forms to move, resize or cancel it."""
        return _session_page(db, current_admin, session_id, notice=session_notice(done, told))

    @post("/{session_id:int}/move", operation_id="adminMoveSessionSubmit")
    async def move(
        self,
        session_id: FromPath[int],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """First post: the confirmation page (who will be told). With `confirm`: move, tell, redirect."""
        posted = await request.form()
        sess = await anyio.to_thread.run_sync(session_detail, db, session_id)
        form = SessionForm.parse(posted, SessionForm.of(sess))

        def again(errors: Errors, status_code: int) -> Template:
            return _session_page(
                db, current_admin, session_id, form=form, errors=errors, status_code=status_code
            )

        if sess.status != SCHEDULED:
            return await anyio.to_thread.run_sync(again, [("date", CANCELLED_TEXT)], HTTP_409_CONFLICT)
        move, errors = review_move(sess, form, datetime.now(UTC))
        if move is None:
            return await anyio.to_thread.run_sync(again, errors, HTTP_400_BAD_REQUEST)
        if posted.get("confirm") != "yes":
            webinar = await anyio.to_thread.run_sync(webinar_detail, db, sess.webinar_slug)
            return Template(
                "booking/admin_session_move.html",
                context={
                    "admin": current_admin,
                    "session": sess,
                    "webinar": webinar,
                    "times": times_of(sess),
                    "move": move,
                    "form": form,
                    "base": f"{SESSIONS}/{session_id}",
                },
            )
        try:
            result = await anyio.to_thread.run_sync(
                change_session, db, settings, current_admin, session_id, move.patch
            )
        except InvalidInput as exc:
            errors = service_errors(exc, SESSION_FIELDS, "date")
            return await anyio.to_thread.run_sync(again, errors, HTTP_400_BAD_REQUEST)
        except BookingError as exc:
            problem = page_exception(exc)
            return await anyio.to_thread.run_sync(again, [("date", str(problem.detail))], problem.status_code)
        done = "moved" if result.changed else "unchanged"
        return Redirect(
            f"{SESSIONS}/{session_id}?done={done}&told={result.notified}", status_code=HTTP_303_SEE_OTHER
        )

    @post("/{session_id:int}/capacity", operation_id="adminSessionCapacitySubmit")
    async def capacity(
        self,
        session_id: FromPath[int],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Set the number of seats; new seats go to the waitlist in order (they are told)."""
        errors: Errors = []
        seats = _whole(form_text(await request.form(), "capacity", 20), "capacity", CAPACITY_TEXT, errors)
        status_code = HTTP_400_BAD_REQUEST
        if seats is not None:
            try:
                patch = msgspec.convert({"capacity": seats}, SessionPatch)
                result = await anyio.to_thread.run_sync(
                    change_session, db, settings, current_admin, session_id, patch
                )
            except msgspec.ValidationError:
                errors = [("capacity", SESSION_BOUNDS["capacity"])]
            except InvalidInput as exc:
                errors = service_errors(exc, SESSION_FIELDS, "capacity")
            except (Conflict, SessionLocked) as exc:
                problem = page_exception(exc)
                errors, status_code = [("capacity", str(problem.detail))], problem.status_code
        if errors:
            return await anyio.to_thread.run_sync(
                _capacity_again, db, current_admin, session_id, errors, status_code
            )
        done = "capacity" if result.changed or result.notified else "unchanged"
        return Redirect(
            f"{SESSIONS}/{session_id}?done={done}&told={result.notified}", status_code=HTTP_303_SEE_OTHER
        )

    @get("/{session_id:int}/cancel", operation_id="adminCancelSessionPage", sync_to_thread=True)
    def confirm_cancel(
        self, session_id: FromPath[int], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> Response[Any]:
        """The confirmation step before cancelling: who will be told; changes nothing."""
        sess = session_detail(db, session_id)
        if sess.status != SCHEDULED:
            return Redirect(f"{SESSIONS}/{session_id}", status_code=HTTP_303_SEE_OTHER)
        webinar = webinar_detail(db, sess.webinar_slug)
        return Template(
            "booking/admin_session_cancel.html",
            context={
                "admin": current_admin,
                "session": sess,
                "webinar": webinar,
                "times": times_of(sess),
                "base": f"{SESSIONS}/{session_id}",
                "told": sess.seats_taken + sess.waitlisted,
            },
        )

    @post("/{session_id:int}/cancel", operation_id="adminCancelSessionSubmit")
    async def cancel(
        self,
        session_id: FromPath[int],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> Redirect:
        """Cancel the session: everyone registered is cancelled and told."""
        result = await anyio.to_thread.run_sync(
            cancel_webinar_session, db, settings, current_admin, session_id
        )
        done = "cancelled" if result.changed else "unchanged"
        return Redirect(
            f"{SESSIONS}/{session_id}?done={done}&told={result.notified}", status_code=HTTP_303_SEE_OTHER
        )

    @get("/{session_id:int}/attendees", operation_id="adminAttendeesPage", sync_to_thread=True)
    def attendees(
        self,
        session_id: FromPath[int],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        status: Annotated[str, QueryParameter(max_length=20)] = "",
        done: Annotated[str, QueryParameter(max_length=20)] = "",
    ) -> Template:
        """Who registered, by status; each view is recorded in the audit log (it is health data)."""
        tab = attendee_status(status)
        return _attendees_page(db, current_admin, session_id, tab, notice=ATTENDEE_NOTICES.get(done))

    @get(
        "/{session_id:int}/attendees.csv",
        operation_id="adminAttendeesFile",
        media_type="text/csv",
        sync_to_thread=True,
    )
    def attendees_file(
        self, session_id: FromPath[int], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> Response[bytes]:
        """The attendee list as CSV (formula-safe); each download is recorded in the audit log."""
        exported = export_attendees(db, current_admin, session_id)
        return Response(
            exported.content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
        )

    @post(
        "/{session_id:int}/attendees/{registration_id:int}/remove", operation_id="adminRemoveAttendeeSubmit"
    )
    async def remove(
        self,
        session_id: FromPath[int],
        registration_id: FromPath[int],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Cancel someone's registration (they are told); a freed seat goes to the waitlist's first."""
        tab = attendee_status(form_text(await request.form(), "status", 20))
        try:
            result = await anyio.to_thread.run_sync(
                remove_registration, db, settings, current_admin, registration_id
            )
        except BookingError as exc:
            return await _attendee_problem(db, current_admin, session_id, tab, exc)
        done = "removed-promoted" if result.promoted else "removed"
        return Redirect(_attendees_url(result.session.id, tab, done), status_code=HTTP_303_SEE_OTHER)

    @post(
        "/{session_id:int}/attendees/{registration_id:int}/promote", operation_id="adminPromoteAttendeeSubmit"
    )
    async def promote(
        self,
        session_id: FromPath[int],
        registration_id: FromPath[int],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Give a waitlisted person a free seat ahead of the line; says so if none is free."""
        tab = attendee_status(form_text(await request.form(), "status", 20))
        try:
            result = await anyio.to_thread.run_sync(
                promote_registration, db, settings, current_admin, registration_id
            )
        except BookingError as exc:
            return await _attendee_problem(db, current_admin, session_id, tab, exc)
        return Redirect(_attendees_url(result.session.id, tab, "promoted"), status_code=HTTP_303_SEE_OTHER)


CANCELLED_TEXT = "This session is cancelled, so it cannot be changed. Add a new session instead."


def _capacity_again(
    db: Database, admin: Admin, session_id: int, errors: Errors, status_code: int
) -> Template:
    return _session_page(db, admin, session_id, errors=errors, status_code=status_code)


def _attendees_url(session_id: int, tab: AttendeeStatus | None, done: str) -> str:
    query = urlencode({**({"status": tab} if tab else {}), "done": done})
    return f"{SESSIONS}/{session_id}/attendees?{query}"


async def _attendee_problem(
    db: Database, admin: Admin, session_id: int, tab: AttendeeStatus | None, exc: BookingError
) -> Template:
    """The attendee list again, saying why the button did nothing."""
    problem = page_exception(exc)
    if problem.status_code == HTTP_404_NOT_FOUND:
        raise problem from exc
    return await anyio.to_thread.run_sync(
        lambda: _attendees_page(
            db, admin, session_id, tab, problem=str(problem.detail), status_code=problem.status_code
        )
    )


class OutboxAdminPages(_AdminPages):
    path = OUTBOX

    @get("", operation_id="adminOutboxPage", name="admin:outbox", sync_to_thread=True)
    def outbox(
        self,
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        status: Annotated[str, QueryParameter(max_length=20)] = "",
        session: Annotated[str, QueryParameter(max_length=20)] = "",
        before: Annotated[str, QueryParameter(max_length=20)] = "",
        done: Annotated[str, QueryParameter(max_length=20)] = "",
    ) -> Template:
        """E-mails newest first with their delivery state; each view is recorded in the audit log."""
        notice = "Queued to be sent again. The list shows when it has gone." if done == "resent" else None
        return _outbox_page(db, current_admin, outbox_filter(status, session, before), notice=notice)

    @post("/{message_id:int}/resend", operation_id="adminResendMessageSubmit")
    async def resend(
        self,
        message_id: FromPath[int],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Queue a failed or sent e-mail again; says why not if a later one replaced it."""
        back = form_text(await request.form(), "back", 2000)
        back = back if back == OUTBOX or back.startswith(OUTBOX + "?") else OUTBOX
        try:
            await anyio.to_thread.run_sync(resend_message, db, current_admin, message_id)
        except (BookingError, ClientException) as exc:
            problem = page_exception(exc) if isinstance(exc, BookingError) else exc
            if problem.status_code == HTTP_404_NOT_FOUND:
                raise problem from exc
            return await anyio.to_thread.run_sync(
                lambda: _outbox_page(
                    db,
                    current_admin,
                    _back_filter(back),
                    problem=plain(str(problem.detail)),
                    status_code=problem.status_code,
                )
            )
        return Redirect(with_done(back, "resent"), status_code=HTTP_303_SEE_OTHER)
