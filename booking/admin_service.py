"""What admins do with webinars: edit and publish them, add, move and cancel sessions, read and
export attendee lists, confirm or remove a person by hand, and watch and resend the mail outbox.

Every change commits together with its audit entry (`accounts.service.record_audit`): each
function opens `writing(db)` and calls the booking service inside it, and the service's own
`writing(db)` joins that transaction, so the change, its e-mails and the audit entry are written
together or not at all. Attendee lists are health data (who attends a condition's webinar), so
every view and export is recorded too, and the data leaves only once its record is committed.

Functions take the database, settings, the acting `Admin` and typed inputs; they raise
`BookingError` subclasses (booking.routes.http_error_for maps them; `Conflict` is a 409) or, from
core.mail, litestar exceptions. They are shared by the JSON API (booking/admin.py) and the pages.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, select
from sqlmodel import Session, col

from accounts.service import Admin, record_audit
from booking.messages import MessageKind
from booking.models import (
    Registration,
    RegistrationStatus,
    SessionStatus,
    Webinar,
    WebinarCondition,
    WebinarPresenter,
    WebinarRegion,
    WebinarSession,
    utcnow,
)
from booking.schemas import AttendeeOut, SessionChange
from booking.service import (
    _CLAIM_SEAT,
    BookingError,
    InvalidInput,
    NotFound,
    SessionInput,
    SessionLocked,
    WebinarInput,
    add_session,
    cancel_registration,
    cancel_session,
    change_capacity,
    confirm_from_waitlist,
    create_webinar,
    list_attendees,
    lock_session,
    move_session,
    registration_token,
    token_digest,
    update_webinar,
    writing,
)
from core.db import Database
from core.mail import OutboxMessage, OutboxStatus, resend
from core.settings import Settings

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class Conflict(BookingError):
    """409: the change does not fit the current state (a full session, someone already removed)."""


# --- shapes ---------------------------------------------------------------------------------

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
ProviderIds = Annotated[list[int], msgspec.Meta(max_length=20, description="directory provider ids")]
Regions = Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]], msgspec.Meta(max_length=20)]
Conditions = Annotated[list[Annotated[str, msgspec.Meta(max_length=80)]], msgspec.Meta(max_length=100)]
Zone = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, description="IANA zone, e.g. America/Chicago")
]
Capacity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Minutes = Annotated[int, msgspec.Meta(ge=5, le=1440)]
JoinUrl = Annotated[
    str, msgspec.Meta(min_length=1, max_length=500, description="secret: confirmed attendees only")
]
Start = Annotated[datetime, msgspec.Meta(description="ISO 8601 with its UTC offset")]


class WebinarEdit(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A webinar's content. Publishing has its own actions; slugs are the server's."""

    title: Title
    description: Description = ""
    presenter_ids: ProviderIds = msgspec.field(default_factory=list)
    regions: Regions = msgspec.field(default_factory=list)
    conditions: Conditions = msgspec.field(default_factory=list)


class WebinarCreate(WebinarEdit, forbid_unknown_fields=True, kw_only=True):
    """A new webinar; unpublished until an admin publishes it."""

    slug: Annotated[str, msgspec.Meta(max_length=120, pattern=SLUG_PATTERN)] | None = None


class WebinarPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields sent change."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    presenter_ids: ProviderIds | msgspec.UnsetType = msgspec.UNSET
    regions: Regions | msgspec.UnsetType = msgspec.UNSET
    conditions: Conditions | msgspec.UnsetType = msgspec.UNSET


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    starts_at: Start
    timezone: Zone
    capacity: Capacity
    join_url: JoinUrl
    duration_minutes: Minutes = 60


class SessionPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Move (time, length, zone, join link) and/or resize a session; registrants are told of a move."""

    starts_at: Start | msgspec.UnsetType = msgspec.UNSET
    duration_minutes: Minutes | msgspec.UnsetType = msgspec.UNSET
    timezone: Zone | msgspec.UnsetType = msgspec.UNSET
    join_url: JoinUrl | msgspec.UnsetType = msgspec.UNSET
    capacity: Capacity | msgspec.UnsetType = msgspec.UNSET


class AdminSessionOut(msgspec.Struct, kw_only=True):
    id: int
    webinar_slug: str
    # In the session's display zone, with its UTC offset.
    starts_at: datetime
    ends_at: datetime
    timezone: str
    duration_minutes: int
    capacity: int
    seats_taken: int
    waitlisted: int
    status: str
    join_url: str
    # The public feed's SEQUENCE: rises with every move or cancellation.
    sequence: int
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None


class WebinarRecord(msgspec.Struct, kw_only=True):
    """A webinar's own fields: the audit log's before and after."""

    slug: str
    title: str
    description: str
    published: bool
    presenter_ids: list[int]
    regions: list[str]
    conditions: list[str]


class AdminWebinarOut(WebinarRecord, kw_only=True):
    id: int
    sessions: list[AdminSessionOut]
    created_at: datetime
    updated_at: datetime


class AdminWebinarSummary(msgspec.Struct, kw_only=True):
    slug: str
    title: str
    published: bool
    sessions: int
    upcoming_sessions: int
    next_starts_at: datetime | None
    updated_at: datetime


class SessionChangeOut(msgspec.Struct, kw_only=True):
    session: AdminSessionOut
    changed: bool
    # Registrants e-mailed about the change.
    notified: int


class AttendeeList(msgspec.Struct, kw_only=True):
    session: AdminSessionOut
    # Over the whole session, whatever the filter.
    counts: dict[str, int]
    items: list[AttendeeOut]


class RegistrationChangeOut(msgspec.Struct, kw_only=True):
    registration: AttendeeOut
    # Whoever got the seat that was freed (removing a confirmed person moves the waitlist up).
    promoted: AttendeeOut | None
    session: AdminSessionOut


class OutboxItemOut(msgspec.Struct, kw_only=True):
    """One e-mail's delivery state; the message itself stays in the outbox."""

    id: int
    kind: str
    recipient: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    send_after: datetime
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    registration_id: int | None
    session_id: int | None


class OutboxPage(msgspec.Struct, kw_only=True):
    items: list[OutboxItemOut]
    # Pass as `before_id` for the next (older) page; null on the last page.
    next_before_id: int | None


@dataclass(frozen=True, slots=True)
class CsvFile:
    filename: str
    content: bytes


AttendeeStatus = Literal["confirmed", "waitlisted", "cancelled"]
OutboxState = Literal["queued", "sending", "sent", "retrying", "failed", "cancelled"]


# --- reading --------------------------------------------------------------------------------


def _webinar(session: Session, slug: str) -> Webinar:
    found: Webinar | None = session.execute(
        select(Webinar).where(col(Webinar.slug) == slug).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No webinar '{slug}'. GET /api/admin/webinars lists them all.")
    return found


def _webinar_record(session: Session, webinar: Webinar) -> WebinarRecord:
    wid = webinar.id
    return WebinarRecord(
        slug=webinar.slug,
        title=webinar.title,
        description=webinar.description,
        published=webinar.published,
        presenter_ids=list(
            session.execute(
                select(col(WebinarPresenter.provider_id))
                .where(col(WebinarPresenter.webinar_id) == wid)
                .order_by(col(WebinarPresenter.position))
            ).scalars()
        ),
        regions=sorted(
            session.execute(
                select(col(WebinarRegion.region_slug)).where(col(WebinarRegion.webinar_id) == wid)
            ).scalars()
        ),
        conditions=sorted(
            session.execute(
                select(col(WebinarCondition.condition_slug)).where(col(WebinarCondition.webinar_id) == wid)
            ).scalars()
        ),
    )


def _waitlisted(session: Session, session_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(col(Registration.session_id), func.count())
        .where(
            col(Registration.session_id).in_(session_ids),
            col(Registration.status) == RegistrationStatus.waitlisted,
        )
        .group_by(col(Registration.session_id))
    ).all()
    return {row[0]: row[1] for row in rows}


def _session_out(sess: WebinarSession, webinar_slug: str, waitlisted: int) -> AdminSessionOut:
    assert sess.id is not None
    zone = ZoneInfo(sess.timezone)
    starts = sess.starts_at.astimezone(zone)
    return AdminSessionOut(
        id=sess.id,
        webinar_slug=webinar_slug,
        starts_at=starts,
        ends_at=(sess.starts_at + timedelta(minutes=sess.duration_minutes)).astimezone(zone),
        timezone=sess.timezone,
        duration_minutes=sess.duration_minutes,
        capacity=sess.capacity,
        seats_taken=sess.seats_taken,
        waitlisted=waitlisted,
        status=sess.status,
        join_url=sess.join_url,
        sequence=sess.sequence,
        created_at=sess.created_at,
        updated_at=sess.updated_at,
        cancelled_at=sess.cancelled_at,
    )


def _sessions(session: Session, webinar: Webinar) -> list[AdminSessionOut]:
    rows = (
        session.execute(
            select(WebinarSession)
            .where(col(WebinarSession.webinar_id) == webinar.id)
            .order_by(col(WebinarSession.starts_at), col(WebinarSession.id))
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    waiting = _waitlisted(session, [s.id for s in rows if s.id is not None])
    return [_session_out(s, webinar.slug, waiting.get(s.id or 0, 0)) for s in rows]


def _webinar_out(session: Session, webinar: Webinar) -> AdminWebinarOut:
    assert webinar.id is not None
    record = _webinar_record(session, webinar)
    return AdminWebinarOut(
        **msgspec.structs.asdict(record),
        id=webinar.id,
        sessions=_sessions(session, webinar),
        created_at=webinar.created_at,
        updated_at=webinar.updated_at,
    )


def _load_session(session: Session, session_id: int) -> AdminSessionOut:
    found = session.execute(
        select(WebinarSession, col(Webinar.slug))
        .join(Webinar, col(Webinar.id) == col(WebinarSession.webinar_id))
        .where(col(WebinarSession.id) == session_id)
        .execution_options(populate_existing=True)
    ).first()
    if found is None:
        raise NotFound(
            f"No webinar session {session_id}. GET /api/admin/webinars/{{slug}} lists a webinar's."
        )
    sess, slug = found
    return _session_out(sess, slug, _waitlisted(session, [session_id]).get(session_id, 0))


def list_all_webinars(db: Database) -> list[AdminWebinarSummary]:
    """Every webinar, published or not, newest change first, with how many sessions are to come."""
    now = utcnow()
    with db.session() as session:
        webinars = (
            session.execute(select(Webinar).order_by(col(Webinar.updated_at).desc(), col(Webinar.id).desc()))
            .scalars()
            .all()
        )
        sessions = session.execute(
            select(
                col(WebinarSession.webinar_id),
                col(WebinarSession.starts_at),
                col(WebinarSession.timezone),
                col(WebinarSession.status),
            ).order_by(col(WebinarSession.starts_at))
        ).all()
    total: Counter[int] = Counter()
    upcoming: Counter[int] = Counter()
    next_start: dict[int, datetime] = {}
    for wid, starts_at, zone, status in sessions:
        total[wid] += 1
        if status == SessionStatus.scheduled and starts_at > now:
            upcoming[wid] += 1
            next_start.setdefault(wid, starts_at.astimezone(ZoneInfo(zone)))
    return [
        AdminWebinarSummary(
            slug=w.slug,
            title=w.title,
            published=w.published,
            sessions=total[w.id or 0],
            upcoming_sessions=upcoming[w.id or 0],
            next_starts_at=next_start.get(w.id or 0),
            updated_at=w.updated_at,
        )
        for w in webinars
    ]


def webinar_detail(db: Database, slug: str) -> AdminWebinarOut:
    """One webinar, published or not, with all its sessions (past and cancelled too)."""
    with db.session() as session:
        return _webinar_out(session, _webinar(session, slug))


def session_detail(db: Database, session_id: int) -> AdminSessionOut:
    with db.session() as session:
        return _load_session(session, session_id)


# --- webinars -------------------------------------------------------------------------------


def _webinar_input(record: WebinarRecord) -> WebinarInput:
    return WebinarInput(
        title=record.title,
        description=record.description,
        presenter_ids=list(record.presenter_ids),
        regions=list(record.regions),
        conditions=list(record.conditions),
        published=record.published,
    )


def add_webinar(db: Database, admin: Admin, data: WebinarCreate) -> AdminWebinarOut:
    """A new webinar, unpublished until published."""
    with writing(db) as session:
        if (
            data.slug
            and session.execute(select(col(Webinar.id)).where(col(Webinar.slug) == data.slug)).first()
        ):
            raise Conflict(
                f"The slug '{data.slug}' is taken by another webinar; pick another or leave it out."
            )
        slug = create_webinar(
            db,
            WebinarInput(
                title=data.title,
                description=data.description,
                presenter_ids=list(data.presenter_ids),
                regions=list(data.regions),
                conditions=list(data.conditions),
                published=False,
                slug=data.slug,
            ),
        )
        out = _webinar_out(session, _webinar(session, slug))
        record_audit(session, admin, "webinar.create", "webinar", slug, None, _record_of(out))
        return out


def edit_webinar(db: Database, admin: Admin, slug: str, data: WebinarEdit | WebinarPatch) -> AdminWebinarOut:
    """Change a webinar's content: all of it (WebinarEdit) or the fields sent (WebinarPatch)."""
    with writing(db) as session:
        before = _webinar_record(session, _webinar(session, slug))
        sent = {name: getattr(data, name) for name in data.__struct_fields__}
        wanted = msgspec.structs.replace(
            before, **{name: value for name, value in sent.items() if value is not msgspec.UNSET}
        )
        update_webinar(db, slug, _webinar_input(wanted))
        out = _webinar_out(session, _webinar(session, slug))
        after = _record_of(out)
        # An edit that changes nothing is not a change worth a line in the audit log.
        if after != before:
            record_audit(session, admin, "webinar.update", "webinar", slug, before, after)
        return out


def publish_webinar(db: Database, admin: Admin, slug: str) -> AdminWebinarOut:
    """Show the webinar and its sessions on the public site and feed."""
    return _set_published(db, admin, slug, published=True)


def unpublish_webinar(db: Database, admin: Admin, slug: str) -> AdminWebinarOut:
    """Hide the webinar from the public; registrations already made stay as they are."""
    return _set_published(db, admin, slug, published=False)


def _set_published(db: Database, admin: Admin, slug: str, *, published: bool) -> AdminWebinarOut:
    with writing(db) as session:
        webinar = _webinar(session, slug)
        before = _webinar_record(session, webinar)
        if webinar.published != published:
            webinar.published = published
            webinar.updated_at = utcnow()
            session.add(webinar)
            session.flush()
            action = "webinar.publish" if published else "webinar.unpublish"
            record_audit(session, admin, action, "webinar", slug, before, _webinar_record(session, webinar))
        return _webinar_out(session, webinar)


def _record_of(out: AdminWebinarOut) -> WebinarRecord:
    return WebinarRecord(**{name: getattr(out, name) for name in WebinarRecord.__struct_fields__})


# --- sessions -------------------------------------------------------------------------------


def add_webinar_session(db: Database, admin: Admin, slug: str, data: SessionCreate) -> AdminSessionOut:
    """A new date for a webinar."""
    with writing(db) as session:
        session_id = add_session(
            db,
            slug,
            SessionInput(
                starts_at=data.starts_at,
                timezone=data.timezone,
                capacity=data.capacity,
                join_url=data.join_url,
                duration_minutes=data.duration_minutes,
            ),
        )
        out = _load_session(session, session_id)
        record_audit(session, admin, "session.create", "session", session_id, None, out)
        return out


_MOVES = ("starts_at", "duration_minutes", "timezone", "join_url")


def change_session(
    db: Database, settings: Settings, admin: Admin, session_id: int, data: SessionPatch
) -> SessionChangeOut:
    """Move a session (time, length, zone, join link) and/or change its capacity.

    A move reaches every registrant through the booking service (an updated invite for seat
    holders, the new time for the waitlist); new seats go to the waitlist in order.
    """
    moves = {name: getattr(data, name) for name in _MOVES if getattr(data, name) is not msgspec.UNSET}
    if not moves and data.capacity is msgspec.UNSET:
        raise InvalidInput({"body": f"Send at least one of: {', '.join(_MOVES)}, capacity."})
    with writing(db) as session:
        # Locked first, so `before` is what the change starts from.
        lock_session(session, session_id)
        before = _load_session(session, session_id)
        results: list[SessionChange] = []
        if moves:
            results.append(move_session(db, settings, session_id, **moves))
        if data.capacity is not msgspec.UNSET:
            results.append(change_capacity(db, settings, session_id, data.capacity))
        after = _load_session(session, session_id)
        changed = any(r.changed or r.notified for r in results)
        if changed:
            record_audit(session, admin, "session.update", "session", session_id, before, after)
        return SessionChangeOut(session=after, changed=changed, notified=sum(r.notified for r in results))


def cancel_webinar_session(
    db: Database, settings: Settings, admin: Admin, session_id: int
) -> SessionChangeOut:
    """Cancel a session: everyone registered is cancelled and told (seat holders get METHOD:CANCEL)."""
    with writing(db) as session:
        lock_session(session, session_id)
        before = _load_session(session, session_id)
        result = cancel_session(db, settings, session_id)
        after = _load_session(session, session_id)
        if result.changed:
            record_audit(session, admin, "session.cancel", "session", session_id, before, after)
        return SessionChangeOut(session=after, changed=result.changed, notified=result.notified)


# --- attendee lists: health data, every access recorded --------------------------------------


def view_attendees(
    db: Database, admin: Admin, session_id: int, status: AttendeeStatus | None = None
) -> AttendeeList:
    """A session's registrations (confirmed, then the waitlist in order, then cancelled); recorded."""
    with db.session() as session:
        sess = _load_session(session, session_id)
    attendees = list_attendees(db, session_id)
    shown = [a for a in attendees if status is None or a.status == status]
    _record_access(
        db, admin, "session.attendees.view", session_id, {"status": status or "all", "rows": len(shown)}
    )
    counts = Counter(a.status for a in attendees)
    return AttendeeList(
        session=sess,
        counts={s.value: counts.get(s.value, 0) for s in RegistrationStatus},
        items=shown,
    )


def export_attendees(db: Database, admin: Admin, session_id: int) -> CsvFile:
    """The attendee list as CSV for a spreadsheet; recorded."""
    with db.session() as session:
        sess = _load_session(session, session_id)
    attendees = list_attendees(db, session_id)
    content = attendees_csv(attendees, sess.timezone)
    _record_access(
        db, admin, "session.attendees.export", session_id, {"format": "csv", "rows": len(attendees)}
    )
    day = sess.starts_at.date().isoformat()
    return CsvFile(filename=f"session-{session_id}-{day}-attendees.csv", content=content)


def _record_access(db: Database, admin: Admin, action: str, session_id: int, what: dict[str, object]) -> None:
    # Committed before the caller hands the list out: no access goes unrecorded.
    with writing(db) as session:
        record_audit(session, admin, action, "session", session_id, None, what)


ATTENDEE_COLUMNS = (
    "registration_id",
    "name",
    "email",
    "status",
    "waitlist_position",
    "consent_to_email",
    "registered_at",
    "confirmed_at",
    "cancelled_at",
)
# A cell starting with one of these runs as a formula in Excel and LibreOffice (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """The cell as text a spreadsheet will not run: formula-looking cells get a leading apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def attendees_csv(attendees: list[AttendeeOut], timezone: str) -> bytes:
    """CSV of an attendee list, times in the session's zone; UTF-8 with a BOM so Excel reads accents. Pure."""
    zone = ZoneInfo(timezone)

    def when(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    times = f" ({timezone})"
    writer.writerow([c + times if c.endswith("_at") else c for c in ATTENDEE_COLUMNS])
    for a in attendees:
        cells = [
            str(a.id),
            a.name,
            a.email,
            a.status,
            "" if a.waitlist_position is None else str(a.waitlist_position),
            "yes" if a.consent else "no",
            when(a.created_at),
            when(a.confirmed_at),
            when(a.cancelled_at),
        ]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- one person, by hand ----------------------------------------------------------------------


def _locked_registration(
    session: Session, registration_id: int
) -> tuple[Registration, WebinarSession, Webinar]:
    """The registration, read again under its session's row lock (the lock every status change holds)."""
    found = session.get(Registration, registration_id)
    if found is None:
        raise NotFound(
            f"No registration {registration_id}. GET /api/admin/sessions/{{id}}/attendees lists them."
        )
    sess, webinar = lock_session(session, found.session_id)
    return _registration(session, registration_id), sess, webinar


def _registration(session: Session, registration_id: int) -> Registration:
    reg: Registration = session.execute(
        select(Registration)
        .where(col(Registration.id) == registration_id)
        .execution_options(populate_existing=True)
    ).scalar_one()
    return reg


def _attendee(session: Session, reg: Registration) -> AttendeeOut:
    assert reg.id is not None
    position = None
    if reg.status == RegistrationStatus.waitlisted:
        position = session.execute(
            select(func.count()).where(
                col(Registration.session_id) == reg.session_id,
                col(Registration.status) == RegistrationStatus.waitlisted,
                col(Registration.waitlist_ticket) <= reg.waitlist_ticket,
            )
        ).scalar_one()
    return AttendeeOut(
        id=reg.id,
        name=reg.name,
        email=reg.email,
        status=reg.status,
        waitlist_position=position,
        consent=reg.consent,
        created_at=reg.created_at,
        confirmed_at=reg.confirmed_at,
        cancelled_at=reg.cancelled_at,
    )


def _next_in_line(session: Session, session_id: int) -> Registration | None:
    return (
        session.execute(
            select(Registration)
            .where(
                col(Registration.session_id) == session_id,
                col(Registration.status) == RegistrationStatus.waitlisted,
            )
            .order_by(col(Registration.waitlist_ticket))
            .limit(1)
        )
        .scalars()
        .first()
    )


def remove_registration(
    db: Database, settings: Settings, admin: Admin, registration_id: int
) -> RegistrationChangeOut:
    """Take a person off a session (or its waitlist), exactly as their own cancel link would.

    They get the cancellation (METHOD:CANCEL if they held a seat), and a freed seat goes to the
    first person on the waitlist, who gets the invite.
    """
    with writing(db) as session:
        reg, sess, _ = _locked_registration(session, registration_id)
        if reg.status == RegistrationStatus.cancelled:
            raise Conflict(f"Registration {registration_id} is already cancelled.")
        before = _attendee(session, reg)
        waiting = _next_in_line(session, sess.id or 0) if reg.status == RegistrationStatus.confirmed else None
        waiting_before = None if waiting is None else _attendee(session, waiting)
        token = registration_token(settings.secret_key, reg.invite_uid)
        if reg.token_hash != token_digest(token):
            # Stored under an earlier SECRET_KEY: re-key it, as the service does whenever it mails them.
            reg.token_hash = token_digest(token)
            session.add(reg)
            session.flush()
        cancel_registration(db, settings, token)
        after = _attendee(session, _registration(session, registration_id))
        record_audit(session, admin, "registration.remove", "registration", registration_id, before, after)
        promoted = None
        if waiting is not None and waiting_before is not None:
            moved_up = _attendee(session, _registration(session, waiting_before.id))
            if moved_up.status == RegistrationStatus.confirmed:
                promoted = moved_up
                record_audit(
                    session,
                    admin,
                    "registration.promote",
                    "registration",
                    moved_up.id,
                    waiting_before,
                    moved_up,
                )
        return RegistrationChangeOut(
            registration=after, promoted=promoted, session=_load_session(session, reg.session_id)
        )


def promote_registration(
    db: Database, settings: Settings, admin: Admin, registration_id: int
) -> RegistrationChangeOut:
    """Give a waitlisted person a free seat, ahead of the line; Conflict (409) if none is free.

    Before the start, freed seats go to the waitlist in order by themselves, so this finds one
    only once the session is under way: the service stops moving people up at the start (a seat
    e-mail mid-session, unasked, helps nobody), but until it ends an admin may still seat someone
    who asks. The seat is claimed like the registration form's, so capacity is never passed.
    """
    now = utcnow()
    with writing(db) as session:
        reg, sess, webinar = _locked_registration(session, registration_id)
        if reg.status != RegistrationStatus.waitlisted:
            raise Conflict(
                f"Registration {registration_id} is {reg.status}: "
                "only someone on the waitlist can be promoted."
            )
        if sess.status != SessionStatus.scheduled:
            raise SessionLocked("This session is cancelled, so nobody can be promoted.")
        if sess.starts_at + timedelta(minutes=sess.duration_minutes) <= now:
            raise Conflict("This session is over, so nobody can be promoted.")
        before = _attendee(session, reg)
        # The conditional UPDATE the registration form uses: it takes a seat only while one is
        # free, whoever else is claiming at the same moment.
        if session.connection().execute(_CLAIM_SEAT, {"session_id": sess.id}).rowcount != 1:
            raise Conflict(
                f"This session is full: all {sess.capacity} seats are taken. To seat more people, "
                f"raise its capacity (PATCH /api/admin/sessions/{sess.id}); new seats go to the "
                "waitlist in order."
            )
        confirm_from_waitlist(session, settings, reg, sess, webinar, now)
        after = _attendee(session, _registration(session, registration_id))
        record_audit(session, admin, "registration.promote", "registration", registration_id, before, after)
        return RegistrationChangeOut(
            registration=after, promoted=None, session=_load_session(session, reg.session_id)
        )


# --- the outbox -------------------------------------------------------------------------------


def _outbox_item(row: OutboxMessage) -> OutboxItemOut:
    assert row.id is not None
    return OutboxItemOut(
        id=row.id,
        kind=row.kind,
        recipient=row.recipient,
        subject=row.subject,
        status=str(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        send_after=row.send_after,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        registration_id=row.registration_id,
        session_id=row.session_id,
    )


# What a list shows: the delivery state, not the message itself (large, and not for a list).
_OUTBOX_LISTED = [OutboxMessage.__table__.c[name] for name in OutboxItemOut.__struct_fields__]  # type: ignore[attr-defined]


def list_outbox(
    db: Database,
    admin: Admin,
    *,
    status: OutboxState | None = None,
    session_id: int | None = None,
    registration_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> OutboxPage:
    """E-mails newest first with their delivery state; recorded, since recipients are attendees."""
    query = select(*_OUTBOX_LISTED)
    if status is not None:
        query = query.where(col(OutboxMessage.status) == status)
    if session_id is not None:
        query = query.where(col(OutboxMessage.session_id) == session_id)
    if registration_id is not None:
        query = query.where(col(OutboxMessage.registration_id) == registration_id)
    if before_id is not None:
        query = query.where(col(OutboxMessage.id) < before_id)
    with db.session() as session:
        rows = session.execute(query.order_by(col(OutboxMessage.id).desc()).limit(limit + 1)).mappings().all()
    items = [OutboxItemOut(**{**row, "status": str(row["status"])}) for row in rows[:limit]]
    filters = {"status": status, "session_id": session_id, "registration_id": registration_id}
    with writing(db) as session:
        record_audit(
            session,
            admin,
            "outbox.view",
            "outbox",
            "all" if session_id is None else f"session-{session_id}",
            None,
            {**{k: v for k, v in filters.items() if v is not None}, "rows": len(items)},
        )
    return OutboxPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)


def resend_message(db: Database, admin: Admin, message_id: int) -> OutboxItemOut:
    """Queue a failed (or sent) e-mail again, unless a later e-mail to the same person replaced it."""
    with writing(db) as session:
        row = session.get(OutboxMessage, message_id, with_for_update=True)
        if row is None:
            raise NotFound(f"No outbox message {message_id}. GET /api/admin/outbox lists them.")
        before = _outbox_item(row)
        if row.registration_id is not None:
            later = session.execute(
                select(col(OutboxMessage.id), col(OutboxMessage.kind))
                .where(
                    col(OutboxMessage.registration_id) == row.registration_id,
                    col(OutboxMessage.id) > message_id,
                    # A reminder repeats the invite; it replaces nothing.
                    col(OutboxMessage.kind) != MessageKind.reminder.value,
                    col(OutboxMessage.status) != OutboxStatus.cancelled,
                )
                .order_by(col(OutboxMessage.id).desc())
                .limit(1)
            ).first()
            if later is not None:
                # Its invite or time is out of date: sending it again would undo the later news.
                raise Conflict(
                    f"Message {message_id} is out of date: a later e-mail to this person "
                    f"(message {later.id}, {later.kind}) replaced it. Resend that one if it failed."
                )
        after = _outbox_item(resend(session, message_id))
        record_audit(session, admin, "outbox.resend", "outbox_message", message_id, before, after)
        return after
