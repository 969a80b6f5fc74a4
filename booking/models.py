"""Booking tables: webinars, their sessions, registrations and idempotency keys.

They stay inside `booking/`: the API speaks in `schemas.py` Structs. Capacity is guarded in the
database itself (a CHECK on `seats_taken`), and "one active registration per person and session"
by a partial unique index, so no code path, worker or race can break either.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    TypeDecorator,
    text,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps `timestamptz`; SQLite has no zones, so values are stored as naive UTC text
    (which then sorts and compares correctly) and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("booking times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class SessionStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class RegistrationStatus(StrEnum):
    confirmed = "confirmed"
    waitlisted = "waitlisted"
    cancelled = "cancelled"


class Webinar(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120, unique=True, index=True)
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=5000)
    published: bool = True
    created_at: datetime = _created()
    updated_at: datetime = _created()


class WebinarPresenter(SQLModel, table=True):
    """A presenter is a provider from the directory; `position` orders them on the page."""

    __tablename__ = "webinar_presenter"

    webinar_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webinar.id", ondelete="CASCADE"), primary_key=True)
    )
    provider_id: int = Field(
        sa_column=Column(Integer, ForeignKey("provider.id", ondelete="CASCADE"), primary_key=True, index=True)
    )
    position: int = 0


class WebinarRegion(SQLModel, table=True):
    __tablename__ = "webinar_region"

    webinar_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webinar.id", ondelete="CASCADE"), primary_key=True)
    )
    region_slug: str = Field(sa_column=Column(String(40), primary_key=True))


class WebinarCondition(SQLModel, table=True):
    __tablename__ = "webinar_condition"

    webinar_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webinar.id", ondelete="CASCADE"), primary_key=True)
    )
    condition_slug: str = Field(sa_column=Column(String(80), primary_key=True))


class WebinarSession(SQLModel, table=True):
    """One date of a webinar. `seats_taken` counts confirmed registrations and never passes capacity."""

    __tablename__ = "webinar_session"
    __table_args__ = (
        CheckConstraint("seats_taken >= 0 AND seats_taken <= capacity", name="seats_within_capacity"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("duration_minutes > 0 AND duration_minutes <= 1440", name="duration_in_range"),
        CheckConstraint("status IN ('scheduled', 'cancelled')", name="status_known"),
        CheckConstraint("sequence >= 0", name="sequence_not_negative"),
        Index("ix_webinar_session_starts_at_status", "starts_at", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    webinar_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webinar.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    starts_at: datetime = _utc_column()
    duration_minutes: int = 60
    # IANA zone the session is announced in; times are stored in UTC whatever it is.
    timezone: str = Field(max_length=64)
    capacity: int
    seats_taken: int = 0
    # The last waitlist ticket handed out; tickets order the waitlist first come, first served.
    waitlist_counter: int = 0
    # Secret: shown only to confirmed registrants.
    join_url: str = Field(max_length=500)
    status: str = Field(default=SessionStatus.scheduled, max_length=20)
    # The public feed's SEQUENCE for this session (each registration's invite has its own).
    sequence: int = 0
    created_at: datetime = _created()
    updated_at: datetime = _created()
    cancelled_at: datetime | None = _utc_column(nullable=True)


class Registration(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'waitlisted', 'cancelled')", name="status_known"),
        CheckConstraint(
            "status != 'waitlisted' OR waitlist_ticket IS NOT NULL", name="waitlisted_has_ticket"
        ),
        CheckConstraint("sequence >= 0", name="sequence_not_negative"),
        # One active registration per person and session; a cancelled one may be followed by another.
        Index(
            "uq_registration_session_id_email_active",
            "session_id",
            "email",
            unique=True,
            sqlite_where=text("status != 'cancelled'"),
            postgresql_where=text("status != 'cancelled'"),
        ),
        Index("ix_registration_email_created_at", "email", "created_at"),
        Index("ix_registration_session_id_created_at", "session_id", "created_at"),
        Index("ix_registration_session_id_status_waitlist_ticket", "session_id", "status", "waitlist_ticket"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webinar_session.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(max_length=200)
    # Lower-cased and trimmed, so "Ann@X.org " and "ann@x.org" are one person.
    email: str = Field(max_length=254)
    status: str = Field(max_length=20)
    waitlist_ticket: int | None = None
    # sha256 of the manage-link token: a copy of the database does not hand out manage links.
    token_hash: str = Field(max_length=64, unique=True)
    # RFC 5545 UID of this person's calendar entry: stable for the registration's life.
    invite_uid: str = Field(max_length=255, unique=True)
    # The invite's SEQUENCE: only rises (moved, cancelled).
    sequence: int = 0
    consent: bool = False
    created_at: datetime = _created()
    updated_at: datetime = _created()
    confirmed_at: datetime | None = _utc_column(nullable=True)
    cancelled_at: datetime | None = _utc_column(nullable=True)


class IdempotencyKey(SQLModel, table=True):
    """The first answer to a POST that carried an `Idempotency-Key`, replayed for its retries."""

    __tablename__ = "idempotency_key"

    # sha256 of the header value: the key itself stays with the client.
    key_hash: str = Field(max_length=64, primary_key=True)
    # sha256 of what was asked (session and e-mail): the same key with another request is refused.
    request_hash: str = Field(max_length=64)
    registration_id: int = Field(
        sa_column=Column(Integer, ForeignKey("registration.id", ondelete="CASCADE"), nullable=False)
    )
    status_code: int
    # The first response without its secrets (token, links, join URL), which are re-derived.
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
