"""Booking services: the public webinar listing, registrations, and admins' changes to sessions.

Every change is one `db.write()` transaction that also writes the outbox rows for the mail it
causes, so a change and its e-mails commit together or not at all. A row holds what to say
(`booking.messages.mail_payload`, written with `core.mail.enqueue_payload`), not the MIME: the
outbox worker renders it when it sends, so no transaction holds the write lock while e-mails are
built. Reminders are queued with the change that confirms a seat, due `reminder_hours` before the
start; whatever changes the session or the seat cancels them and queues new ones.

Locks are taken in one order everywhere, so PostgreSQL never deadlocks: the e-mail address (an
advisory lock, PostgreSQL only), then the session row, then registration rows. Whoever changes a
registration's status holds its session's row lock, so seat counts and the waitlist move in step.
On SQLite every write transaction begins IMMEDIATE and runs alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio.to_thread
import msgspec
from sqlalchemy import (
    Connection,
    Dialect,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from booking.invites import (
    DETAILS_MAX,
    InviteEvent,
    build_feed,
    build_invite,
    google_calendar_url,
    outlook_calendar_url,
    quote_link_text,
)
from booking.messages import (
    InviteSpec,
    MessageContext,
    MessageKind,
    attendee_event,
    mail_payload,
    mailbox,
    subject_line,
)
from booking.models import (
    IdempotencyKey,
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
from booking.schemas import (
    AttendeeOut,
    PresenterOut,
    RegisteredSessionOut,
    RegistrationIn,
    RegistrationOut,
    SessionChange,
    SessionOut,
    TopicOut,
    WebinarOut,
    invite_ics_url,
    manage_page_url,
    webinar_page_url,
)
from core.db import BUSY_TIMEOUT_S, Database, Prepared
from core.mail import OUTBOX, OUTBOX_ROW_COLUMNS, PayloadMail, cancel_pending, enqueue_payloads, outbox_rows
from core.settings import Settings
from directory.search import ProviderDoc, SearchIndex
from directory.taxonomy import CONDITION_BY_SLUG, REGION_BY_SLUG

log = logging.getLogger(__name__)

CONFIRMED, WAITLISTED, CANCELLED = (
    RegistrationStatus.confirmed,
    RegistrationStatus.waitlisted,
    RegistrationStatus.cancelled,
)
SCHEDULED = SessionStatus.scheduled
ACTIVE = (CONFIRMED, WAITLISTED)
# Mail that carries a session's old time, invite or join link: superseded when the session changes.
_SUPERSEDED_BY_CHANGE = (
    MessageKind.confirmed,
    MessageKind.promoted,
    MessageKind.session_moved,
    MessageKind.reminder,
)
# Past sessions stay in the public feed this long, so subscribed calendars do not lose them at once.
FEED_KEEPS_PAST = timedelta(days=7)
_TOKEN_MAX = 100
# The RFC 5321 path most mail systems accept, in lower case: something@a.domain.
_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- errors: each says what to do next; the routes map them to HTTP statuses --------------------


class BookingError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(BookingError):
    """404."""


class RegistrationClosed(BookingError):
    """409: the session is cancelled or has started."""


class NoInviteYet(BookingError):
    """409: a waitlisted person has no seat, so no invite."""


class SessionLocked(BookingError):
    """409: a cancelled session cannot be changed."""


class Busy(BookingError):
    """The database stayed busy for as long as a request may wait."""


class LimitReached(BookingError):
    """429, with how long to wait."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class IdempotencyMismatch(BookingError):
    """422: an Idempotency-Key reused for a different request."""


class InvalidInput(BookingError):
    """400; `errors` maps each field to what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class RegistrationLimits:
    """Brakes on the public form, counted in the database so every worker sees the same count.

    Per address: an inbox cannot be flooded through the form (each registration sends mail, and a
    cancelled one still counts). Per session: a script cannot register faster than a crowd can.
    """

    per_email_per_day: int = 5
    per_session_per_minute: int = 300


DEFAULT_LIMITS = RegistrationLimits()


# --- small pure helpers -----------------------------------------------------------------------


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email) or ".." in email:
        raise InvalidInput(
            {"email": "That is not an e-mail address we can write to: use the form name@example.com."}
        )
    return email


def clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name or _CONTROL.search(name):
        raise InvalidInput({"name": "Please give your name (letters, no control characters)."})
    return name


def registration_token(secret_key: str, invite_uid: str) -> str:
    """The manage-link token: HMAC-SHA256 of the registration's UID under SECRET_KEY (256 bits).

    Derived rather than stored, so every later e-mail (moved, cancelled, reminder) can carry the
    link while the database keeps only its sha256.
    """
    mac = hmac.new(secret_key.encode(), b"registration-token\x00" + invite_uid.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _sha256(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def _ends_at(sess: WebinarSession) -> datetime:
    return sess.starts_at + timedelta(minutes=sess.duration_minutes)


def _local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def _host(settings: Settings) -> str:
    return urlsplit(settings.base_url).hostname or "orthodex.invalid"


class _OpenWrites(threading.local):
    def __init__(self) -> None:
        self.by_db: dict[Database, Session] = {}


_OPEN_WRITES = _OpenWrites()


@contextmanager
def writing(db: Database) -> Iterator[Session]:
    """`db.write()`, joined by the service calls made inside it.

    Inside another `writing(db)` block of the same thread it joins that transaction (like nested
    `atomic()` in Django): booking.admin_service wraps a service call and its audit entry in one
    transaction this way. A joined block that raises fails the whole transaction.
    """
    joined = _OPEN_WRITES.by_db.get(db)
    if joined is not None:
        yield joined
        return
    with db.write() as session:
        _OPEN_WRITES.by_db[db] = session
        try:
            yield session
        finally:
            del _OPEN_WRITES.by_db[db]


# --- webinars for the public ------------------------------------------------------------------


@dataclass(slots=True)
class _WebinarRows:
    webinar: Webinar
    sessions: list[WebinarSession] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    presenters: list[int] = field(default_factory=list)


def covers_region(regions: Collection[str], conditions: Collection[str], region: str) -> bool:
    return region in regions or any(region in CONDITION_BY_SLUG[c].regions for c in conditions)


def covers_condition(regions: Collection[str], conditions: Collection[str], condition: str) -> bool:
    """A webinar covers a condition it names, or any condition of a region it covers broadly.

    "Broadly" means it names no condition of that region: a knee-arthritis webinar (region knee,
    condition knee-osteoarthritis) is not offered to someone with a meniscus tear.
    """
    if condition in conditions:
        return True
    named_regions = {r for c in conditions for r in CONDITION_BY_SLUG[c].regions}
    return any(r in regions and r not in named_regions for r in CONDITION_BY_SLUG[condition].regions)


def list_webinars(
    db: Database,
    index: SearchIndex,
    settings: Settings,
    *,
    region: str | None = None,
    conditions: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[WebinarOut]:
    """Published webinars with sessions still to come, soonest first; `conditions` matches any."""
    now = now or utcnow()
    with db.session() as session:
        rows = _load_webinars(session, now=now)
    out = []
    for row in rows:
        if not row.sessions:
            continue
        if region is not None and not covers_region(row.regions, row.conditions, region):
            continue
        if conditions is not None and not any(
            covers_condition(row.regions, row.conditions, c) for c in conditions
        ):
            continue
        out.append(_webinar_out(row, index, settings))
    out.sort(key=lambda w: (w.sessions[0].starts_at, w.title))
    return out


def get_webinar(
    db: Database, index: SearchIndex, settings: Settings, slug: str, *, now: datetime | None = None
) -> WebinarOut:
    """One published webinar with its sessions still to come (possibly none)."""
    with db.session() as session:
        rows = _load_webinars(session, now=now or utcnow(), slug=slug)
    if not rows:
        raise NotFound(f"No webinar '{slug}'. GET /api/webinars lists the upcoming ones.")
    return _webinar_out(rows[0], index, settings)


def _load_webinars(session: Session, *, now: datetime, slug: str | None = None) -> list[_WebinarRows]:
    query = select(Webinar).where(col(Webinar.published).is_(True))
    if slug is not None:
        query = query.where(col(Webinar.slug) == slug)
    webinars = {w.id: _WebinarRows(w) for w in session.execute(query).scalars()}
    if not webinars:
        return []
    ids = list(webinars)
    for sess in session.execute(
        select(WebinarSession)
        .where(col(WebinarSession.webinar_id).in_(ids), col(WebinarSession.starts_at) > now)
        .order_by(col(WebinarSession.starts_at), col(WebinarSession.id))
    ).scalars():
        webinars[sess.webinar_id].sessions.append(sess)
    for wid, slug_ in session.execute(
        select(col(WebinarRegion.webinar_id), col(WebinarRegion.region_slug)).where(
            col(WebinarRegion.webinar_id).in_(ids)
        )
    ):
        webinars[wid].regions.append(slug_)
    for wid, slug_ in session.execute(
        select(col(WebinarCondition.webinar_id), col(WebinarCondition.condition_slug)).where(
            col(WebinarCondition.webinar_id).in_(ids)
        )
    ):
        webinars[wid].conditions.append(slug_)
    for wid, pid in session.execute(
        select(col(WebinarPresenter.webinar_id), col(WebinarPresenter.provider_id))
        .where(col(WebinarPresenter.webinar_id).in_(ids))
        .order_by(col(WebinarPresenter.position))
    ):
        webinars[wid].presenters.append(pid)
    return list(webinars.values())


def _presenter_doc(index: SearchIndex, provider_id: int) -> ProviderDoc | None:
    # The directory's published index: an unpublished or deleted provider is not shown as presenter.
    pos = index.position.get(provider_id)
    return None if pos is None else index.docs[pos]


def _webinar_out(row: _WebinarRows, index: SearchIndex, settings: Settings) -> WebinarOut:
    w = row.webinar
    presenters = []
    for pid in row.presenters:
        doc = _presenter_doc(index, pid)
        if doc is not None:
            presenters.append(
                PresenterOut(
                    slug=doc.slug,
                    name=doc.name,
                    credentials=doc.credentials,
                    photo_url=doc.photo_url,
                    url=f"/api/providers/{doc.slug}",
                )
            )
    return WebinarOut(
        slug=w.slug,
        url=f"/api/webinars/{w.slug}",
        title=w.title,
        description=w.description,
        presenters=presenters,
        regions=[
            TopicOut(slug=r, name=REGION_BY_SLUG[r].name) for r in sorted(row.regions) if r in REGION_BY_SLUG
        ],
        conditions=[
            TopicOut(slug=c, name=CONDITION_BY_SLUG[c].name)
            for c in sorted(row.conditions)
            if c in CONDITION_BY_SLUG
        ],
        sessions=[_session_out(s) for s in row.sessions],
    )


def _session_out(sess: WebinarSession) -> SessionOut:
    assert sess.id is not None
    on = sess.status == SCHEDULED
    return SessionOut(
        id=sess.id,
        starts_at=_local(sess.starts_at, sess.timezone),
        ends_at=_local(_ends_at(sess), sess.timezone),
        timezone=sess.timezone,
        duration_minutes=sess.duration_minutes,
        capacity=sess.capacity,
        seats_left=max(sess.capacity - sess.seats_taken, 0) if on else 0,
        status=sess.status,
        registration_url=f"/api/sessions/{sess.id}/registrations",
    )


def public_feed(db: Database, settings: Settings, *, now: datetime | None = None) -> bytes:
    """`webinars.ics`: every published session from a week ago on, with no attendee and no join link."""
    now = now or utcnow()
    with db.session() as session:
        rows = session.execute(
            select(WebinarSession, Webinar)
            .join(Webinar, col(Webinar.id) == col(WebinarSession.webinar_id))
            .where(col(Webinar.published).is_(True), col(WebinarSession.starts_at) > now - FEED_KEEPS_PAST)
            .order_by(col(WebinarSession.starts_at), col(WebinarSession.id))
        ).all()
    host = _host(settings)
    events = []
    for sess, webinar in rows:
        page = webinar_page_url(settings.base_url, webinar.slug)
        events.append(
            InviteEvent(
                uid=f"session-{sess.id}@{host}",
                sequence=sess.sequence,
                summary=webinar.title,
                description=f"{webinar.description}\n\nRegister (free): {page}".strip(),
                start=sess.starts_at,
                end=_ends_at(sess),
                location="Online",
                url=page,
                cancelled=sess.status != SCHEDULED,
            )
        )
    return build_feed(
        events,
        organizer_email=mailbox(settings.mail_from),
        organizer_name=settings.network_name,
        calendar_name=f"{settings.network_name} webinars",
        dtstamp=now,
    )


# --- one person's registration ----------------------------------------------------------------
#
# The registration form and the private link are the hot paths, so they run prebuilt Core
# statements on plain rows (an ORM object graph costs more than the SQL). What a view, an invite or
# an e-mail says is computed from a `Seat`: a snapshot of the registration, its session and webinar.

REG: Table = Registration.__table__  # type: ignore[attr-defined]
SES: Table = WebinarSession.__table__  # type: ignore[attr-defined]
WEB: Table = Webinar.__table__  # type: ignore[attr-defined]

_SEAT = select(
    REG.c.id.label("registration_id"),
    REG.c.session_id,
    REG.c.name,
    REG.c.email,
    REG.c.status,
    REG.c.waitlist_ticket,
    REG.c.invite_uid,
    REG.c.token_hash,
    REG.c.sequence,
    REG.c.consent,
    REG.c.created_at,
    REG.c.updated_at,
    SES.c.starts_at,
    SES.c.duration_minutes,
    SES.c.timezone,
    SES.c.status.label("session_status"),
    SES.c.join_url,
    SES.c.updated_at.label("session_updated_at"),
    WEB.c.slug.label("webinar_slug"),
    WEB.c.title.label("webinar_title"),
).select_from(REG.join(SES, SES.c.id == REG.c.session_id).join(WEB, WEB.c.id == SES.c.webinar_id))
_SEAT_BY_TOKEN = _SEAT.where(REG.c.token_hash == bindparam("token_hash"))
_SEAT_BY_ID = _SEAT.where(REG.c.id == bindparam("registration_id"))
# Everything the form needs to decide, in one statement: the session, whether this address is
# registered for it already, and the two counts the limits are checked against.
_TO_REGISTER = (
    select(
        SES.c.starts_at,
        SES.c.duration_minutes,
        SES.c.timezone,
        SES.c.status,
        SES.c.join_url,
        SES.c.updated_at,
        WEB.c.slug,
        WEB.c.title,
        WEB.c.published,
        select(REG.c.id)
        .where(
            REG.c.session_id == bindparam("session_id"),
            REG.c.email == bindparam("email"),
            # Written out as the partial unique index's own condition: with a bound value, SQLite
            # plans the statement again at every execution to see whether that index applies.
            REG.c.status != literal_column(f"'{CANCELLED.value}'"),
        )
        .scalar_subquery()
        .label("existing"),
        select(func.count())
        .where(REG.c.email == bindparam("email"), REG.c.created_at > bindparam("day_ago"))
        .scalar_subquery()
        .label("by_email"),
        select(func.count())
        .where(REG.c.session_id == bindparam("session_id"), REG.c.created_at > bindparam("minute_ago"))
        .scalar_subquery()
        .label("by_session"),
    )
    .select_from(SES.join(WEB, WEB.c.id == SES.c.webinar_id))
    .where(SES.c.id == bindparam("session_id"))
    # Held until commit on PostgreSQL, so the limits count everything committed before.
    .with_for_update(of=SES)
)
# The seat is claimed by a conditional UPDATE: it succeeds only while a seat is free, whoever else
# is claiming at the same moment, and the CHECK on seats_taken backs it up.
_CLAIM_SEAT = (
    update(SES)
    .where(SES.c.id == bindparam("session_id"), SES.c.status == SCHEDULED, SES.c.seats_taken < SES.c.capacity)
    .values(seats_taken=SES.c.seats_taken + 1)
)
_WAITLIST_TICKET = (
    update(SES)
    .where(SES.c.id == bindparam("session_id"))
    .values(waitlist_counter=SES.c.waitlist_counter + 1)
    .returning(SES.c.waitlist_counter)
)
_WAITLIST_PLACE = select(func.count()).where(
    REG.c.session_id == bindparam("session_id"),
    REG.c.status == WAITLISTED,
    REG.c.waitlist_ticket <= bindparam("ticket"),
)
_REKEY = (
    update(REG).where(REG.c.id == bindparam("registration_id")).values(token_hash=bindparam("new_token_hash"))
)
_REGISTRATION_COLUMNS = (
    "session_id",
    "name",
    "email",
    "status",
    "waitlist_ticket",
    "token_hash",
    "invite_uid",
    "sequence",
    "consent",
    "created_at",
    "updated_at",
    "confirmed_at",
    "cancelled_at",
)
KEY: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
_KEY_COLUMNS = ("key_hash", "request_hash", "registration_id", "status_code", "body", "created_at")
_IDEMPOTENCY_KEY = select(KEY.c.request_hash, KEY.c.registration_id, KEY.c.status_code, KEY.c.body).where(
    KEY.c.key_hash == bindparam("key_hash")
)
# First answers to keyed requests are kept this long: no client retries a registration later.
IDEMPOTENCY_KEEPS = timedelta(days=1)
_FORGET_KEYS = delete(KEY).where(KEY.c.created_at < bindparam("before"))


@dataclass(frozen=True, slots=True)
class Seat:
    """One registration with its session and webinar, as a view, an invite or an e-mail needs them."""

    registration_id: int
    session_id: int
    name: str
    email: str
    status: str
    waitlist_ticket: int | None
    invite_uid: str
    token_hash: str
    sequence: int
    consent: bool
    created_at: datetime
    updated_at: datetime
    starts_at: datetime
    duration_minutes: int
    timezone: str
    session_status: str
    join_url: str
    session_updated_at: datetime
    webinar_slug: str
    webinar_title: str

    @classmethod
    def of(cls, reg: Registration, sess: WebinarSession, webinar: Webinar) -> Seat:
        assert reg.id is not None
        assert sess.id is not None
        return cls(
            registration_id=reg.id,
            session_id=sess.id,
            name=reg.name,
            email=reg.email,
            status=reg.status,
            waitlist_ticket=reg.waitlist_ticket,
            invite_uid=reg.invite_uid,
            token_hash=reg.token_hash,
            sequence=reg.sequence,
            consent=reg.consent,
            created_at=reg.created_at,
            updated_at=reg.updated_at,
            starts_at=sess.starts_at,
            duration_minutes=sess.duration_minutes,
            timezone=sess.timezone,
            session_status=sess.status,
            join_url=sess.join_url,
            session_updated_at=sess.updated_at,
            webinar_slug=webinar.slug,
            webinar_title=webinar.title,
        )

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def holds_seat(self) -> bool:
        return self.status == CONFIRMED and self.session_status == SCHEDULED

    @property
    def changed_at(self) -> datetime:
        """When anything this registration's invite says last changed (its DTSTAMP when downloaded)."""
        return max(self.updated_at, self.session_updated_at)


def register(
    db: Database,
    settings: Settings,
    session_id: int,
    form: RegistrationIn,
    *,
    idempotency_key: str | None = None,
    limits: RegistrationLimits = DEFAULT_LIMITS,
) -> tuple[int, RegistrationOut]:
    """Register for a session: a seat if one is free, else the waitlist. Returns (HTTP status, view).

    201 for a new registration; 200 for an address already registered (without its token); a
    retry carrying the first request's Idempotency-Key gets the first answer again. The e-mail a
    new registration is owed (and its reminder) is in the outbox when this returns.
    """
    request = _RegistrationRequest.of(session_id, form, idempotency_key, limits)
    attempts = 3
    for attempt in range(attempts):
        try:
            with writing(db) as session:
                connection = session.connection()
                answer = _register(_dbapi(connection), _statements(connection.dialect), settings, request)
            # The view (calendar links and all) is built after the commit, not while holding locks.
            return answer.status_code, answer.out(settings)
        except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError):
            # A concurrent request for the same address or key committed first (PostgreSQL; the
            # unique indexes caught it). The next attempt sees its row and answers from it.
            if attempt == attempts - 1:
                raise
        except (OperationalError, sqlite3.OperationalError) as exc:
            if _sqlite_busy(exc):
                # SQLite stayed locked by other writers for the whole busy timeout.
                raise Busy(BUSY_MESSAGE) from exc
            raise
    raise AssertionError("unreachable")


# The registrar's commits between two checkpoints: about SQLite's own default of 1,000 WAL pages.
CHECKPOINT_EVERY = 64
BUSY_MESSAGE = "We are taking a great many registrations right now. Please try again in a minute."


class Registrar:
    """`register` as the API's event loop calls it: on SQLite, on the loop itself.

    On SQLite a registration is a few hundred microseconds of work on a local file, and writers
    take turns anyway. Handing each to a worker thread and back, with a rush of sign-ups making
    sixteen threads take turns on the GIL, cost more than the transaction itself. So it runs on the
    event loop, on a connection of its own, between two awaits: nothing else on the loop can write
    in the middle of it. It waits for its turn without blocking the loop: this process's writers'
    turn (`Database.writer_turn`) is tried without waiting, and the connection's busy timeout is 0,
    so another writer (the outbox worker, an admin, another process) makes it sleep and try again,
    as SQLite's own busy handler would. On PostgreSQL, where each statement is a network round trip,
    `register` runs in a worker thread. One per app.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._sql = _statements(db.engine.dialect)
        # How long a registration waits for its turn before it is answered 503.
        self.wait_seconds: float = BUSY_TIMEOUT_S
        self.checkpoint_every = CHECKPOINT_EVERY
        self._commits = 0
        self._checkpointing: asyncio.Future[None] | None = None

    async def register(
        self,
        session_id: int,
        form: RegistrationIn,
        *,
        idempotency_key: str | None = None,
        limits: RegistrationLimits = DEFAULT_LIMITS,
    ) -> tuple[int, RegistrationOut]:
        """`register`, awaited."""
        if self._db.writer_turn is None:
            return await anyio.to_thread.run_sync(
                partial(
                    register,
                    self._db,
                    self._settings,
                    session_id,
                    form,
                    idempotency_key=idempotency_key,
                    limits=limits,
                )
            )
        request = _RegistrationRequest.of(session_id, form, idempotency_key, limits)
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.0005
        while (answer := self._register_now(request)) is None:
            if time.monotonic() > deadline:
                raise Busy(BUSY_MESSAGE)
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.01)
        self._commits += 1
        if self._commits >= self.checkpoint_every and self._checkpointing is None:
            self._commits = 0
            self._checkpointing = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
            self._checkpointing.add_done_callback(self._checkpointed)
        return answer.status_code, answer.out(self._settings)

    def _checkpoint(self) -> None:
        # PASSIVE: copies what it can without waiting for (or holding up) readers and writers.
        connection = self._db.engine.raw_connection()
        try:
            connection.dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            connection.close()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not done.cancelled() and done.exception() is not None:
            # The next one will try again; other connections' commits checkpoint as well.
            log.error("WAL checkpoint failed", exc_info=done.exception())

    def _register_now(self, request: _RegistrationRequest) -> _Answer | None:
        """The registration, committed; None if another writer has the database now."""
        turn = self._db.writer_turn
        assert turn is not None
        if not turn.acquire(blocking=False):
            return None
        try:
            raw = self._raw()
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _sqlite_busy(exc):
                    return None
                raise
            try:
                answer = _register(raw, self._sql, self._settings, request)
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:  # (SQLite ends it itself after some errors)
                    raw.execute("ROLLBACK")
                raise
            return answer
        finally:
            turn.release()

    def _raw(self) -> Any:
        return self._db.own_connection(
            "registrations",
            "PRAGMA busy_timeout=0",
            # Its commits do not checkpoint: a checkpoint copies the WAL into the database file
            # and syncs both, a quarter of a registration's time when the loop waited for it.
            # A worker thread runs them instead (`_checkpoint`).
            "PRAGMA wal_autocheckpoint=0",
        )


def _sqlite_busy(exc: Exception) -> bool:
    """Whether `exc` is SQLite's "database is locked", raised through SQLAlchemy or not."""
    return getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


def _dbapi(connection: Connection) -> Any:
    """The driver's connection under a Core connection, in the same transaction."""
    return connection.connection.dbapi_connection


@dataclass(frozen=True, slots=True)
class _RegistrationRequest:
    """A registration form, checked and normalised, with what the request's hashes say."""

    session_id: int
    name: str
    email: str
    consent: bool
    key_hash: str | None
    request_hash: str
    limits: RegistrationLimits

    @classmethod
    def of(
        cls, session_id: int, form: RegistrationIn, idempotency_key: str | None, limits: RegistrationLimits
    ) -> _RegistrationRequest:
        email = normalise_email(form.email)
        return cls(
            session_id=session_id,
            name=clean_name(form.name),
            email=email,
            consent=form.consent,
            key_hash=_sha256("idempotency-key", idempotency_key) if idempotency_key is not None else None,
            request_hash=_sha256(session_id, email),
            limits=limits,
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """What a registration request is told: a stored first answer, or one to render from its seat."""

    status_code: int
    seat: Seat | None = None
    position: int | None = None
    token: str | None = None
    message: str = ""
    rendered: RegistrationOut | None = None

    def out(self, settings: Settings) -> RegistrationOut:
        if self.rendered is not None:
            return self.rendered
        assert self.seat is not None
        return _view(settings, self.seat, self.position, token=self.token, message=self.message)


class _Statements:
    """The registration path's statements, compiled once per dialect (see `core.db.Prepared`).

    A sign-up is a handful of indexed statements on small rows; run through Core or the ORM, the
    bookkeeping around each cost more than SQLite's work, and a rush of sign-ups is the load the
    booking side has to carry.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.key = Prepared(_IDEMPOTENCY_KEY, dialect)
        lock_email = select(func.pg_advisory_xact_lock(bindparam("lock_key")))
        self.lock_email = Prepared(lock_email, dialect) if dialect.name == "postgresql" else None
        self.to_register = Prepared(_TO_REGISTER, dialect)
        self.seat_by_id = Prepared(_SEAT_BY_ID, dialect)
        self.seat_by_token = Prepared(_SEAT_BY_TOKEN, dialect)
        self.waitlist_place = Prepared(_WAITLIST_PLACE, dialect)
        self.claim_seat = Prepared(_CLAIM_SEAT, dialect)
        self.waitlist_ticket = Prepared(_WAITLIST_TICKET, dialect)
        self.add_registration = Prepared(insert(REG).returning(REG.c.id), dialect, _REGISTRATION_COLUMNS)
        self.add_mail = Prepared(insert(OUTBOX), dialect, OUTBOX_ROW_COLUMNS)
        self.forget_keys = Prepared(_FORGET_KEYS, dialect)
        self.add_key = Prepared(insert(KEY), dialect, _KEY_COLUMNS)


_STATEMENTS: dict[tuple[str, str], _Statements] = {}


def _statements(dialect: Dialect) -> _Statements:
    key = (dialect.name, dialect.driver)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = _Statements(dialect)
    return found


def _register(raw: Any, sql: _Statements, settings: Settings, request: _RegistrationRequest) -> _Answer:
    """The registration's transaction, on the driver's connection `raw` (the caller begins and commits)."""
    now = utcnow()
    if request.key_hash is not None:
        stored = sql.key.first(raw, key_hash=request.key_hash)
        if stored is not None:
            if stored.request_hash != request.request_hash:
                raise IdempotencyMismatch(
                    "This Idempotency-Key was already used for a different registration. "
                    "Send a new key with each new request."
                )
            return _replay(raw, sql, settings, stored)
    if sql.lock_email is not None:
        # Serialise requests for one address (across sessions too): the per-address limit and
        # the one-registration rule are then checked against everything committed before.
        sql.lock_email.first(raw, lock_key=_lock_key("registration-email", request.email))
    found = sql.to_register.first(
        raw,
        session_id=request.session_id,
        email=request.email,
        day_ago=now - timedelta(days=1),
        minute_ago=now - timedelta(minutes=1),
    )
    if found is not None and found.existing is not None:
        seat = _seat_row(sql.seat_by_id.first(raw, registration_id=found.existing))
        answer = _Answer(
            200,
            seat,
            _waitlist_position(raw, sql, seat),
            None,
            "This e-mail address is already registered for this session. Your private link "
            "to manage it is in the e-mail we sent when you registered.",
        )
    else:
        seat, position = _new_registration(raw, sql, settings, request, found, now)
        token = registration_token(settings.secret_key, seat.invite_uid)
        answer = _Answer(201, seat, position, token, _status_message(seat, position))
    if request.key_hash is None:
        return answer
    # The first answer is stored with the registration, so it is built here.
    out = answer.out(settings)
    sql.forget_keys.rowcount(raw, before=now - IDEMPOTENCY_KEEPS)
    assert answer.seat is not None
    sql.add_key.rowcount(
        raw,
        key_hash=request.key_hash,
        request_hash=request.request_hash,
        registration_id=answer.seat.registration_id,
        status_code=answer.status_code,
        body=msgspec.to_builtins(_without_secrets(out)),
        created_at=now,
    )
    return _Answer(answer.status_code, rendered=out)


def _lock_key(scope: str, value: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{scope}\x00{value}".encode()).digest()[:8], "big", signed=True)


def _new_registration(
    raw: Any,
    sql: _Statements,
    settings: Settings,
    request: _RegistrationRequest,
    found: Any,
    now: datetime,
) -> tuple[Seat, int | None]:
    """Insert the registration with its e-mails; returns it and its waitlist position (if any).

    `found` is the row of `_TO_REGISTER` (None: no such session).
    """
    session_id, limits = request.session_id, request.limits
    if found is None or not found.published:
        raise NotFound(f"No webinar session {session_id}. GET /api/webinars lists the open ones.")
    if found.status != SCHEDULED:
        raise RegistrationClosed(
            f"This session has been cancelled. GET /api/webinars/{found.slug} shows other dates."
        )
    if found.starts_at <= now:
        raise RegistrationClosed(
            "This session has already started, so registration is closed. "
            f"GET /api/webinars/{found.slug} shows other dates."
        )
    if found.by_email >= limits.per_email_per_day:
        raise LimitReached(
            f"This e-mail address has registered {found.by_email} times in the last 24 hours, the "
            "most we allow. Please try again tomorrow, or call your clinic.",
            retry_after=3600,
        )
    if found.by_session >= limits.per_session_per_minute:
        raise LimitReached(
            "This session is taking too many registrations at once. Please try again in a minute.",
            retry_after=60,
        )
    claimed = sql.claim_seat.rowcount(raw, session_id=session_id) == 1
    ticket = None if claimed else sql.waitlist_ticket.scalar(raw, session_id=session_id)
    uid = f"{uuid.uuid4()}@{_host(settings)}"
    status = CONFIRMED if claimed else WAITLISTED
    token_hash = token_digest(registration_token(settings.secret_key, uid))
    # What the registration row and its Seat share.
    row: dict[str, Any] = {
        "session_id": session_id,
        "name": request.name,
        "email": request.email,
        "status": status,
        "waitlist_ticket": ticket,
        "token_hash": token_hash,
        "invite_uid": uid,
        "sequence": 0,
        "consent": request.consent,
        "created_at": now,
        "updated_at": now,
    }
    registration_id = sql.add_registration.scalar(
        raw, **row, confirmed_at=now if claimed else None, cancelled_at=None
    )
    assert registration_id is not None
    seat = Seat(
        registration_id=registration_id,
        **row,
        starts_at=found.starts_at,
        duration_minutes=found.duration_minutes,
        timezone=found.timezone,
        session_status=found.status,
        join_url=found.join_url,
        session_updated_at=found.updated_at,
        webinar_slug=found.slug,
        webinar_title=found.title,
    )
    if claimed:
        position = None
        mails = [
            mail_about(settings, seat, MessageKind.confirmed, "REQUEST", now),
            *_reminder(settings, seat, now),
        ]
    else:
        position = _waitlist_position(raw, sql, seat)
        mails = [mail_about(settings, seat, MessageKind.waitlisted, None, now, waitlist_position=position)]
    sql.add_mail.executemany(raw, outbox_rows(mails, sender=settings.mail_from, now=now))
    return seat, position


def lock_session(session: Session, session_id: int) -> tuple[WebinarSession, Webinar]:
    """The session row, locked until commit (PostgreSQL; SQLite's IMMEDIATE already serialises)."""
    found = session.execute(
        select(WebinarSession, Webinar)
        .join(Webinar, col(Webinar.id) == col(WebinarSession.webinar_id))
        .where(col(WebinarSession.id) == session_id)
        .with_for_update(of=WebinarSession)
        .execution_options(populate_existing=True)
    ).first()
    if found is None:
        raise NotFound(f"No webinar session {session_id}. GET /api/webinars lists the open ones.")
    return found[0], found[1]


# One answer for every token that is not a live one: nothing tells a guess from a typo.
_UNKNOWN_LINK = "No registration for this link. Check that you copied the whole link from your e-mail."


def _seat_by_token(connection: Connection, token: str) -> Seat:
    row = _statements(connection.dialect).seat_by_token.first(
        _dbapi(connection), token_hash=_link_digest(token)
    )
    if row is None:
        raise NotFound(_UNKNOWN_LINK)
    return _seat_row(row)


def _link_digest(token: str) -> str:
    """The stored digest of a private link's token; NotFound for what cannot be one."""
    if not token or len(token) > _TOKEN_MAX:
        raise NotFound(_UNKNOWN_LINK)
    return token_digest(token)


def _waitlist_position(raw: Any, sql: _Statements, seat: Seat) -> int | None:
    """1 = next in line. Counted, not stored: it shrinks as people ahead leave or move up."""
    if seat.status != WAITLISTED or seat.waitlist_ticket is None:
        return None
    return int(sql.waitlist_place.scalar(raw, session_id=seat.session_id, ticket=seat.waitlist_ticket))


def _seat_row(row: Any) -> Seat:
    assert row is not None
    return Seat(**row._asdict())


def invite_event(network_name: str, seat: Seat, manage_url: str) -> InviteEvent:
    """This registration's calendar entry: discreet title, join link only while the seat is held."""
    return attendee_event(
        uid=seat.invite_uid,
        sequence=seat.sequence,
        network_name=network_name,
        webinar_title=seat.webinar_title,
        starts_at=seat.starts_at,
        ends_at=seat.ends_at,
        join_url=seat.join_url if seat.holds_seat else None,
        manage_url=manage_url,
        cancelled=not seat.holds_seat and seat.status != WAITLISTED,
    )


def _status_message(seat: Seat, position: int | None) -> str:
    if seat.session_status != SCHEDULED:
        return "This session has been cancelled. We are sorry; see the webinar's page for other dates."
    match seat.status:
        case RegistrationStatus.confirmed:
            return "Your seat is confirmed. We are e-mailing you the calendar invitation."
        case RegistrationStatus.waitlisted:
            return (
                f"This session is full: you are number {position} on the waitlist. If a seat opens up "
                "we will confirm you and e-mail the calendar invitation."
            )
        case _:
            return "This registration is cancelled."


def _view(
    settings: Settings, seat: Seat, position: int | None, *, token: str | None, message: str
) -> RegistrationOut:
    """What the registrant sees; `position` is their place on the waitlist (`_waitlist_position`)."""
    manage = ics = google = outlook = join = None
    if token is not None:
        manage = manage_page_url(settings.base_url, token)
        ics = invite_ics_url(settings.base_url, token)
        if seat.holds_seat:
            join = seat.join_url
            google, outlook = _calendar_links(settings.network_name, seat, manage)
    return RegistrationOut(
        status=seat.status,
        token=token,
        manage_url=manage,
        ics_url=ics,
        name=seat.name,
        email=seat.email,
        consent=seat.consent,
        waitlist_position=position,
        join_url=join,
        google_calendar_url=google,
        outlook_calendar_url=outlook,
        session=RegisteredSessionOut(
            id=seat.session_id,
            webinar_slug=seat.webinar_slug,
            webinar_title=seat.webinar_title,
            starts_at=_local(seat.starts_at, seat.timezone),
            ends_at=_local(seat.ends_at, seat.timezone),
            timezone=seat.timezone,
            status=seat.session_status,
        ),
        message=message,
        created_at=seat.created_at,
    )


def _calendar_links(network_name: str, seat: Seat, manage_url: str) -> tuple[str, str]:
    """The seat holder's "add to Google Calendar" and Outlook links.

    They are the same for everyone at a session but for the manage link in the details, so each
    session's pair is built once with a stand-in there, and each registrant's link (URL-quoted)
    replaces it: the same text as building them whole, which a test holds them to.
    """
    templates = _calendar_link_templates(
        network_name, seat.webinar_title, seat.starts_at, seat.ends_at, seat.join_url
    )
    if templates is None or templates.description_length + len(manage_url) > DETAILS_MAX:
        event = invite_event(network_name, seat, manage_url)
        return google_calendar_url(event), outlook_calendar_url(event)
    quoted = quote_link_text(manage_url)
    return templates.google.replace(_QUOTED_STAND_IN, quoted), templates.outlook.replace(
        _QUOTED_STAND_IN, quoted
    )


# A private-use character: a title containing it gets no template (see below), not a wrong link.
_STAND_IN = "\ue000"
_QUOTED_STAND_IN = quote_link_text(_STAND_IN)


@dataclass(frozen=True, slots=True)
class _LinkTemplates:
    google: str
    outlook: str
    # The description's length without the stand-in: the links cut it at DETAILS_MAX.
    description_length: int


@lru_cache(maxsize=1024)
def _calendar_link_templates(
    network_name: str, title: str, starts_at: datetime, ends_at: datetime, join_url: str
) -> _LinkTemplates | None:
    event = attendee_event(
        uid="-",
        sequence=0,
        network_name=network_name,
        webinar_title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        join_url=join_url,
        manage_url=_STAND_IN,
        cancelled=False,
    )
    google, outlook = google_calendar_url(event), outlook_calendar_url(event)
    if google.count(_QUOTED_STAND_IN) != 1 or outlook.count(_QUOTED_STAND_IN) != 1:
        return None
    return _LinkTemplates(google, outlook, len(event.description) - len(_STAND_IN))


_SECRET_FIELDS = ("token", "manage_url", "ics_url", "join_url", "google_calendar_url", "outlook_calendar_url")


def _without_secrets(out: RegistrationOut) -> RegistrationOut:
    # The stored first answer: whatever would let a database reader act as the registrant is
    # left out and derived again when the answer is replayed.
    return msgspec.structs.replace(out, **dict.fromkeys(_SECRET_FIELDS))


def _replay(raw: Any, sql: _Statements, settings: Settings, stored: Any) -> _Answer:
    """The first answer to a keyed request (a row of `_IDEMPOTENCY_KEY`), its secrets derived again."""
    first = msgspec.convert(stored.body, RegistrationOut)
    if stored.status_code != 201:
        # The first answer had no token either (an address already registered): same again.
        return _Answer(stored.status_code, rendered=first)
    seat = _seat_row(sql.seat_by_id.first(raw, registration_id=stored.registration_id))
    token = registration_token(settings.secret_key, seat.invite_uid)
    fresh = _view(settings, seat, None, token=token, message=first.message)
    replayed = msgspec.structs.replace(first, **{name: getattr(fresh, name) for name in _SECRET_FIELDS})
    return _Answer(stored.status_code, rendered=replayed)


def get_registration(db: Database, settings: Settings, token: str) -> RegistrationOut:
    """The registration behind a private link."""
    with db.session() as session:
        connection = session.connection()
        seat = _seat_by_token(connection, token)
        position = _waitlist_position(_dbapi(connection), _statements(connection.dialect), seat)
    return _view(settings, seat, position, token=token, message=_status_message(seat, position))


class InviteFiles:
    """invite.ics downloads: one indexed SELECT per download, each version of a file built once.

    The private link's calendar file is the hottest read (calendar apps fetch it again and again),
    so the SELECT runs straight on a DBAPI connection: no ORM session, and no BEGIN and ROLLBACK
    around one statement. The bytes are kept in a bounded LRU keyed by the whole row, i.e.
    every value the file is built from (the token's digest, UID, SEQUENCE, statuses, times, title,
    join link, and the change times that become DTSTAMP): any change to the registration, its
    session or its webinar is a new key, so a cached file is never stale. One per app.
    """

    def __init__(self, db: Database, settings: Settings, size: int = 4096) -> None:
        self._db = db
        # Its result processors (SQLite's text times to aware datetimes, ...) are applied only
        # when a file has to be built.
        self._seat = _statements(db.engine.dialect).seat_by_token
        # On SQLite the SELECT reads a local file (~15 µs, and in WAL mode a reader never waits
        # for a writer), less than a hop to a worker thread and back (~50 µs): `download` runs it
        # on the event loop, on a connection of its own, as a pool checkout costs about as much
        # as the SELECT. On PostgreSQL it is a network round trip, which must not block the loop.
        self._select_on_loop = db.is_sqlite
        self._base_url = settings.base_url
        self._organizer = _Organizer.of(settings)
        self._size = size
        self._files: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    async def download(self, token: str) -> bytes:
        """`file_for`, called on the event loop: what would block the loop runs in a worker thread."""
        if not self._select_on_loop:
            return await anyio.to_thread.run_sync(self.file_for, token)
        digest = _link_digest(token)
        row = self._select(self._db.own_connection("invite-downloads"), digest)
        cached = self._cached(row)
        if cached is not None:
            return cached
        # Building a file is milliseconds of icalendar: not on the loop.
        return await anyio.to_thread.run_sync(self._build, row, token)

    def file_for(self, token: str) -> bytes:
        """The file: METHOD:REQUEST while the seat is held, METHOD:CANCEL once it is not."""
        digest = _link_digest(token)
        connection = self._db.engine.raw_connection()
        try:
            row = self._select(connection, digest)
        finally:
            # Back to the pool, which ends whatever the driver began (a no-op on SQLite).
            connection.close()
        cached = self._cached(row)
        return self._build(row, token) if cached is None else cached

    def _select(self, connection: Any, digest: str) -> tuple[Any, ...]:
        # The row as the driver gives it: the cache's key. Closing the cursor also ends the
        # statement, so SQLite's read snapshot is not kept.
        cursor = self._seat.execute(connection, token_hash=digest)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            raise NotFound(_UNKNOWN_LINK)
        return tuple(row)

    def _cached(self, row: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            cached = self._files.get(row)
            if cached is not None:
                self._files.move_to_end(row)
            return cached

    def _build(self, row: tuple[Any, ...], token: str) -> bytes:
        seat = _seat_row(self._seat.row(row))
        if seat.status == WAITLISTED and seat.session_status == SCHEDULED:
            raise NoInviteYet(
                "You are on the waitlist, so there is no calendar invitation yet. If a seat opens up "
                "we will e-mail it to you."
            )
        data = _invite_file(seat, manage_page_url(self._base_url, token), self._organizer)
        with self._lock:
            self._files[row] = data
            if len(self._files) > self._size:
                self._files.popitem(last=False)
        return data


@dataclass(frozen=True, slots=True)
class _Organizer:
    email: str
    name: str

    @classmethod
    def of(cls, settings: Settings) -> _Organizer:
        return cls(mailbox(settings.mail_from), settings.network_name)


def _invite_file(seat: Seat, manage_url: str, organizer: _Organizer) -> bytes:
    # Everything the file says comes from the arguments, DTSTAMP included (the time of the last
    # change), so the same arguments always give the same bytes.
    event = invite_event(organizer.name, seat, manage_url)
    return build_invite(
        event,
        method="CANCEL" if event.cancelled else "REQUEST",
        organizer_email=organizer.email,
        organizer_name=organizer.name,
        attendee_email=seat.email,
        attendee_name=seat.name,
        dtstamp=seat.changed_at,
    )


def cancel_registration(db: Database, settings: Settings, token: str) -> RegistrationOut:
    """Cancel one's own registration; a confirmed seat goes to the first waitlisted person."""
    now = utcnow()
    with writing(db) as session:
        found = _seat_by_token(session.connection(), token)
        sess, webinar = lock_session(session, found.session_id)
        # Re-read under the session lock: whoever changes a status holds that lock, so this is current.
        reg = session.execute(
            select(Registration)
            .where(col(Registration.id) == found.registration_id)
            .execution_options(populate_existing=True)
        ).scalar_one()
        if reg.status == CANCELLED:
            return _view(
                settings,
                Seat.of(reg, sess, webinar),
                None,
                token=token,
                message="This registration was already cancelled.",
            )
        held_seat = reg.status == CONFIRMED
        reg.status = CANCELLED
        # RFC 5546 3.2.5: CANCEL keeps the UID and raises SEQUENCE.
        reg.sequence += 1
        reg.cancelled_at = reg.updated_at = now
        session.add(reg)
        session.flush()
        seat = Seat.of(reg, sess, webinar)
        # Nothing queued for them earlier (a confirmation, a reminder) goes out after this.
        cancel_pending(session, registration_id=reg.id)
        queue_message(session, settings, seat, MessageKind.cancelled, "CANCEL" if held_seat else None, now)
        if held_seat and _promote(session, settings, sess, webinar, now) == 0:
            session.execute(
                update(SES)
                .where(SES.c.id == sess.id, SES.c.seats_taken > 0)
                .values(seats_taken=SES.c.seats_taken - 1)
            )
        return _view(
            settings,
            seat,
            None,
            token=token,
            message=(
                "Your registration is cancelled. We have e-mailed you a calendar cancellation."
                if held_seat
                else "Your registration is cancelled and you are off the waitlist."
            ),
        )


def _promote(
    session: Session,
    settings: Settings,
    sess: WebinarSession,
    webinar: Webinar,
    now: datetime,
    seats: int = 1,
) -> int:
    """Give up to `seats` freed seats to the waitlist, first come first served. Caller holds the session lock.

    The seat passes straight from one person to the next, so seats_taken does not change.
    """
    if sess.status != SCHEDULED or sess.starts_at <= now:
        return 0
    waiting = (
        session.execute(
            select(Registration)
            .where(col(Registration.session_id) == sess.id, col(Registration.status) == WAITLISTED)
            .order_by(col(Registration.waitlist_ticket))
            .limit(seats)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    for reg in waiting:
        confirm_from_waitlist(session, settings, reg, sess, webinar, now)
    return len(waiting)


def confirm_from_waitlist(
    session: Session,
    settings: Settings,
    reg: Registration,
    sess: WebinarSession,
    webinar: Webinar,
    now: datetime,
) -> None:
    """A waitlisted person gets a seat they were given, and the invite. Caller holds the session lock
    and has already counted the seat (passed on, or claimed)."""
    reg.status = CONFIRMED
    reg.confirmed_at = reg.updated_at = now
    session.add(reg)
    session.flush()
    seat = Seat.of(reg, sess, webinar)
    _rekey(session, settings, seat)
    promoted = mail_about(settings, seat, MessageKind.promoted, "REQUEST", now)
    enqueue_payloads(session, [promoted, *_reminder(settings, seat, now)], sender=settings.mail_from)


def queue_message(
    session: Session,
    settings: Settings,
    seat: Seat,
    kind: MessageKind,
    method: Literal["REQUEST", "CANCEL"] | None,
    now: datetime,
    *,
    waitlist_position: int | None = None,
    previous_starts_at: datetime | None = None,
) -> None:
    """Write one e-mail about this registration to the outbox, in the caller's transaction."""
    _rekey(session, settings, seat)
    mail = mail_about(
        settings,
        seat,
        kind,
        method,
        now,
        waitlist_position=waitlist_position,
        previous_starts_at=previous_starts_at,
    )
    enqueue_payloads(session, [mail], sender=settings.mail_from)


def mail_about(
    settings: Settings,
    seat: Seat,
    kind: MessageKind,
    method: Literal["REQUEST", "CANCEL"] | None,
    now: datetime,
    *,
    waitlist_position: int | None = None,
    previous_starts_at: datetime | None = None,
    send_after: datetime | None = None,
) -> PayloadMail:
    """One e-mail about this registration as its outbox row: what it says as of `now`. Pure.

    The invite goes with it when `method` is given; the outbox worker renders it when it is due
    (`send_after`, default at once).
    """
    token = registration_token(settings.secret_key, seat.invite_uid)
    context = MessageContext(
        kind=kind,
        recipient_email=seat.email,
        recipient_name=seat.name,
        webinar_title=seat.webinar_title,
        starts_at=seat.starts_at,
        ends_at=seat.ends_at,
        timezone=seat.timezone,
        join_url=seat.join_url if seat.holds_seat else None,
        manage_url=manage_page_url(settings.base_url, token),
        ics_url=invite_ics_url(settings.base_url, token),
        network_name=settings.network_name,
        mail_from=settings.mail_from,
        waitlist_position=waitlist_position,
        previous_starts_at=previous_starts_at,
    )
    # DTSTAMP: when this copy of the invite was issued, the commit (DESIGN.md: refreshed on every
    # send); for a reminder queued days ahead, when it is due, so it is newer than all sent before.
    invite = None if method is None else InviteSpec(seat.invite_uid, seat.sequence, method, send_after or now)
    return PayloadMail(
        kind=kind.value,
        recipient=seat.email,
        subject=subject_line(kind, seat.starts_at, seat.timezone),
        payload=mail_payload(context, invite),
        registration_id=seat.registration_id,
        session_id=seat.session_id,
        send_after=send_after,
    )


def _reminder(settings: Settings, seat: Seat, now: datetime) -> list[PayloadMail]:
    """The seat holder's reminder, due `reminder_hours` before the start (none, or one).

    Inside that window the e-mail queued with it (confirmation, promotion, new time) already says
    what a reminder would, so there is none. A later change to the seat or the session cancels a
    queued reminder (`cancel_pending`) and, if the seat is still held, queues a new one.
    """
    due = seat.starts_at - timedelta(hours=settings.reminder_hours)
    if due <= now:
        return []
    return [mail_about(settings, seat, MessageKind.reminder, "REQUEST", now, send_after=due)]


def _rekey(session: Session, settings: Settings, seat: Seat) -> None:
    """Store the token hash under the current SECRET_KEY, so the link in a new e-mail works."""
    token_hash = token_digest(registration_token(settings.secret_key, seat.invite_uid))
    if token_hash != seat.token_hash:
        session.connection().execute(
            _REKEY, {"registration_id": seat.registration_id, "new_token_hash": token_hash}
        )


# --- admins: webinars, sessions, attendees ----------------------------------------------------


@dataclass(slots=True)
class WebinarInput:
    title: str
    description: str = ""
    presenter_ids: list[int] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    published: bool = True
    slug: str | None = None


@dataclass(slots=True)
class SessionInput:
    starts_at: datetime
    timezone: str
    capacity: int
    join_url: str
    duration_minutes: int = 60


def validate_webinar(data: WebinarInput) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not data.title.strip():
        errors["title"] = "A webinar needs a title."
    elif len(data.title) > 200:
        errors["title"] = "Keep the title under 200 characters."
    if len(data.description) > 5000:
        errors["description"] = "Keep the description under 5,000 characters."
    unknown = [r for r in data.regions if r not in REGION_BY_SLUG]
    if unknown:
        errors["regions"] = f"Unknown region(s): {', '.join(unknown)}. See GET /api/regions."
    unknown = [c for c in data.conditions if c not in CONDITION_BY_SLUG]
    if unknown:
        errors["conditions"] = f"Unknown condition(s): {', '.join(unknown)}. See GET /api/regions."
    return errors


def validate_session(data: SessionInput, *, now: datetime | None = None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if data.starts_at.utcoffset() is None:
        errors["starts_at"] = "Give the start with its UTC offset, e.g. 2026-12-01T18:00:00-05:00."
    elif data.starts_at <= (now or utcnow()):
        errors["starts_at"] = "A new session must start in the future."
    errors.update(_timezone_errors(data.timezone))
    if not 1 <= data.capacity <= 100_000:
        errors["capacity"] = "Capacity must be between 1 and 100,000 seats."
    if not 5 <= data.duration_minutes <= 1440:
        errors["duration_minutes"] = "Duration must be between 5 minutes and 24 hours."
    errors.update(_join_url_errors(data.join_url))
    return errors


def _timezone_errors(zone: str) -> dict[str, str]:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return {"timezone": f"'{zone}' is not an IANA time zone; use one like America/New_York."}
    return {}


def _join_url_errors(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > 500 or _CONTROL.search(url):
        return {"join_url": "The join link must be a web address (https://...) under 500 characters."}
    return {}


def _unique_slug(session: Session, title: str) -> str:
    from directory.service import slugify

    base = slugify(title)[:100] or "webinar"
    taken = set(
        session.execute(select(col(Webinar.slug)).where(col(Webinar.slug).like(f"{base}%"))).scalars()
    )
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def create_webinar(db: Database, data: WebinarInput) -> str:
    """Create a webinar with its presenters (directory provider ids) and topics; returns its slug."""
    errors = validate_webinar(data)
    if errors:
        raise InvalidInput(errors)
    try:
        with writing(db) as session:
            webinar = Webinar(
                slug=data.slug or _unique_slug(session, data.title),
                title=data.title.strip(),
                description=data.description.strip(),
                published=data.published,
            )
            session.add(webinar)
            session.flush()
            _set_topics(session, webinar, data)
            return webinar.slug
    except IntegrityError as exc:
        raise InvalidInput(
            {"presenter_ids": "A presenter is not a provider in the directory, or the slug is taken."}
        ) from exc


def update_webinar(db: Database, slug: str, data: WebinarInput) -> str:
    """Replace a webinar's title, description, presenters, topics and published flag."""
    errors = validate_webinar(data)
    if errors:
        raise InvalidInput(errors)
    try:
        with writing(db) as session:
            webinar = session.execute(select(Webinar).where(col(Webinar.slug) == slug)).scalar_one_or_none()
            if webinar is None:
                raise NotFound(f"No webinar '{slug}'.")
            webinar.title = data.title.strip()
            webinar.description = data.description.strip()
            webinar.published = data.published
            webinar.updated_at = utcnow()
            session.add(webinar)
            _set_topics(session, webinar, data)
            return slug
    except IntegrityError as exc:
        raise InvalidInput({"presenter_ids": "A presenter is not a provider in the directory."}) from exc


def _set_topics(session: Session, webinar: Webinar, data: WebinarInput) -> None:
    wid = webinar.id
    assert wid is not None
    session.execute(delete(WebinarPresenter).where(col(WebinarPresenter.webinar_id) == wid))
    session.execute(delete(WebinarRegion).where(col(WebinarRegion.webinar_id) == wid))
    session.execute(delete(WebinarCondition).where(col(WebinarCondition.webinar_id) == wid))
    for position, pid in enumerate(dict.fromkeys(data.presenter_ids)):
        session.add(WebinarPresenter(webinar_id=wid, provider_id=pid, position=position))
    for region in dict.fromkeys(data.regions):
        session.add(WebinarRegion(webinar_id=wid, region_slug=region))
    for condition in dict.fromkeys(data.conditions):
        session.add(WebinarCondition(webinar_id=wid, condition_slug=condition))
    session.flush()


def add_session(db: Database, webinar_slug: str, data: SessionInput) -> int:
    """Add a date to a webinar; returns the session id."""
    errors = validate_session(data)
    if errors:
        raise InvalidInput(errors)
    with writing(db) as session:
        webinar = session.execute(
            select(Webinar).where(col(Webinar.slug) == webinar_slug)
        ).scalar_one_or_none()
        if webinar is None:
            raise NotFound(f"No webinar '{webinar_slug}'.")
        assert webinar.id is not None
        sess = WebinarSession(
            webinar_id=webinar.id,
            starts_at=data.starts_at.astimezone(UTC),
            duration_minutes=data.duration_minutes,
            timezone=data.timezone,
            capacity=data.capacity,
            join_url=data.join_url,
        )
        session.add(sess)
        session.flush()
        assert sess.id is not None
        return sess.id


def move_session(
    db: Database,
    settings: Settings,
    session_id: int,
    *,
    starts_at: datetime | None = None,
    duration_minutes: int | None = None,
    join_url: str | None = None,
    timezone: str | None = None,
) -> SessionChange:
    """Change a session's time, length, join link or display zone, and tell everyone affected.

    A new time or length reaches every active registrant (confirmed: METHOD:REQUEST with SEQUENCE
    raised; waitlisted: the new time, no invite); a new join link reaches the confirmed ones. A
    change of display zone alone moves nothing, so it sends nothing.
    """
    now = utcnow()
    errors: dict[str, str] = {}
    if starts_at is not None and starts_at.utcoffset() is None:
        errors["starts_at"] = "Give the start with its UTC offset, e.g. 2026-12-01T18:00:00-05:00."
    elif starts_at is not None and starts_at <= now:
        errors["starts_at"] = "A session can only be moved to a time in the future."
    if duration_minutes is not None and not 5 <= duration_minutes <= 1440:
        errors["duration_minutes"] = "Duration must be between 5 minutes and 24 hours."
    if join_url is not None:
        errors.update(_join_url_errors(join_url))
    if timezone is not None:
        errors.update(_timezone_errors(timezone))
    if errors:
        raise InvalidInput(errors)
    with writing(db) as session:
        sess, webinar = lock_session(session, session_id)
        if sess.status != SCHEDULED:
            raise SessionLocked("This session is cancelled and cannot be changed; add a new session instead.")
        previous = sess.starts_at
        moved = (starts_at is not None and starts_at != sess.starts_at) or (
            duration_minutes is not None and duration_minutes != sess.duration_minutes
        )
        relinked = join_url is not None and join_url != sess.join_url
        rezoned = timezone is not None and timezone != sess.timezone
        if starts_at is not None:
            sess.starts_at = starts_at.astimezone(UTC)
        if duration_minutes is not None:
            sess.duration_minutes = duration_minutes
        if join_url is not None:
            sess.join_url = join_url
        if timezone is not None:
            sess.timezone = timezone
        if not (moved or relinked or rezoned):
            return SessionChange(session_id=session_id, changed=False, notified=0)
        sess.updated_at = now
        session.add(sess)
        if not (moved or relinked):
            return SessionChange(session_id=session_id, changed=True, notified=0)
        sess.sequence += 1
        for kind in _SUPERSEDED_BY_CHANGE:
            cancel_pending(session, session_id=session_id, kind=kind.value)
        told = (CONFIRMED, WAITLISTED) if moved else (CONFIRMED,)
        mails: list[PayloadMail] = []
        registrations = _registrations(session, session_id, told)
        for reg in registrations:
            # Every active registration's invite SEQUENCE rises, so a later promotion's invite
            # still outranks anything sent before.
            reg.sequence += 1
            reg.updated_at = now
            session.add(reg)
            seat = Seat.of(reg, sess, webinar)
            _rekey(session, settings, seat)
            method: Literal["REQUEST"] | None = "REQUEST" if reg.status == CONFIRMED else None
            previous_start = previous if moved else None
            mails.append(
                mail_about(
                    settings, seat, MessageKind.session_moved, method, now, previous_starts_at=previous_start
                )
            )
            if method is not None:
                # The reminder cancelled above said the old time or link: a new one for the new.
                mails += _reminder(settings, seat, now)
        enqueue_payloads(session, mails, sender=settings.mail_from)
        return SessionChange(session_id=session_id, changed=True, notified=len(registrations))


def cancel_session(db: Database, settings: Settings, session_id: int) -> SessionChange:
    """Cancel a session: every active registration is cancelled and told (METHOD:CANCEL to seat holders)."""
    now = utcnow()
    with writing(db) as session:
        sess, webinar = lock_session(session, session_id)
        if sess.status != SCHEDULED:
            return SessionChange(session_id=session_id, changed=False, notified=0)
        registrations = _registrations(session, session_id, ACTIVE)
        sess.status = SessionStatus.cancelled
        sess.cancelled_at = sess.updated_at = now
        sess.sequence += 1
        sess.seats_taken = 0
        session.add(sess)
        for kind in (*_SUPERSEDED_BY_CHANGE, MessageKind.waitlisted):
            cancel_pending(session, session_id=session_id, kind=kind.value)
        mails: list[PayloadMail] = []
        for reg in registrations:
            held_seat = reg.status == CONFIRMED
            reg.status = CANCELLED
            reg.sequence += 1
            reg.cancelled_at = reg.updated_at = now
            session.add(reg)
            seat = Seat.of(reg, sess, webinar)
            _rekey(session, settings, seat)
            method: Literal["CANCEL"] | None = "CANCEL" if held_seat else None
            mails.append(mail_about(settings, seat, MessageKind.session_cancelled, method, now))
        enqueue_payloads(session, mails, sender=settings.mail_from)
        return SessionChange(session_id=session_id, changed=True, notified=len(registrations))


def change_capacity(db: Database, settings: Settings, session_id: int, capacity: int) -> SessionChange:
    """Set a session's capacity; new seats go to the waitlist first come, first served (they are told)."""
    now = utcnow()
    with writing(db) as session:
        sess, webinar = lock_session(session, session_id)
        if sess.status != SCHEDULED:
            raise SessionLocked("This session is cancelled and cannot be changed; add a new session instead.")
        if not sess.seats_taken <= capacity <= 100_000:
            raise InvalidInput(
                {
                    "capacity": f"{sess.seats_taken} people hold seats already: capacity must be at least "
                    f"{sess.seats_taken} (and at most 100,000). Cancel registrations first to go lower."
                }
            )
        changed = capacity != sess.capacity
        sess.capacity = capacity
        sess.updated_at = now
        session.add(sess)
        session.flush()
        free = capacity - sess.seats_taken
        promoted = _promote(session, settings, sess, webinar, now, seats=free) if free > 0 else 0
        if promoted:
            sess.seats_taken += promoted
            session.add(sess)
        return SessionChange(session_id=session_id, changed=changed, notified=promoted)


def _registrations(session: Session, session_id: int, statuses: Iterable[str]) -> Sequence[Registration]:
    return (
        session.execute(
            select(Registration)
            .where(col(Registration.session_id) == session_id, col(Registration.status).in_(list(statuses)))
            .order_by(col(Registration.id))
            .with_for_update()
        )
        .scalars()
        .all()
    )


def list_attendees(db: Database, session_id: int) -> list[AttendeeOut]:
    """Everyone who registered for a session: confirmed, then the waitlist in order, then cancelled."""
    with db.session() as session:
        if session.get(WebinarSession, session_id) is None:
            raise NotFound(f"No webinar session {session_id}.")
        rows = (
            session.execute(select(Registration).where(col(Registration.session_id) == session_id))
            .scalars()
            .all()
        )
    order = {CONFIRMED: 0, WAITLISTED: 1, CANCELLED: 2}
    ranked = sorted(
        rows,
        key=lambda r: (
            order.get(RegistrationStatus(r.status), 3),
            (r.waitlist_ticket or 0) if r.status == WAITLISTED else 0,
            r.confirmed_at or r.created_at,
            r.id or 0,
        ),
    )
    place: dict[int, int] = defaultdict(int)
    out = []
    for reg in ranked:
        position = None
        if reg.status == WAITLISTED:
            place[reg.session_id] += 1
            position = place[reg.session_id]
        assert reg.id is not None
        out.append(
            AttendeeOut(
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
        )
    return out
