"""What the booking API speaks: msgspec Structs in and out, and the URLs it hands out.

Public shapes (webinars, sessions) never carry a join URL or anything about attendees; only a
registration's own view, reached with its private token, shows the join URL, and only while the
seat is confirmed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class RegistrationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/sessions/{id}/registrations`."""

    name: Name
    email: Email
    # Consent to hear about future webinars. Mail about this registration is sent either way.
    consent: bool = False


class TopicOut(msgspec.Struct, kw_only=True):
    slug: str
    name: str


class PresenterOut(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    credentials: str
    photo_url: str | None
    url: str


class SessionOut(msgspec.Struct, kw_only=True):
    id: int
    # In the session's display zone, with its UTC offset.
    starts_at: datetime
    ends_at: datetime
    timezone: str
    duration_minutes: int
    capacity: int
    seats_left: int
    status: str
    registration_url: str


class WebinarOut(msgspec.Struct, kw_only=True):
    slug: str
    url: str
    title: str
    description: str
    presenters: list[PresenterOut]
    regions: list[TopicOut]
    conditions: list[TopicOut]
    sessions: list[SessionOut]


class RegisteredSessionOut(msgspec.Struct, kw_only=True):
    id: int
    webinar_slug: str
    webinar_title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    status: str


class RegistrationOut(msgspec.Struct, kw_only=True):
    """One person's registration. Token and links appear only to whoever holds the token."""

    status: str
    # None when the same e-mail registers again without the first request's Idempotency-Key:
    # knowing someone's address must not hand out their private link.
    token: str | None
    manage_url: str | None
    ics_url: str | None
    name: str
    email: str
    consent: bool
    # 1 = next in line for a seat; only while waitlisted.
    waitlist_position: int | None
    # Only while the seat is confirmed and the session is on.
    join_url: str | None
    google_calendar_url: str | None
    outlook_calendar_url: str | None
    session: RegisteredSessionOut
    message: str
    created_at: datetime


class AttendeeOut(msgspec.Struct, kw_only=True):
    """A registration as an admin sees it (attendee list and CSV export)."""

    id: int
    name: str
    email: str
    status: str
    waitlist_position: int | None
    consent: bool
    created_at: datetime
    confirmed_at: datetime | None
    cancelled_at: datetime | None


class SessionChange(msgspec.Struct, kw_only=True):
    """What an admin's change to a session did: who was told."""

    session_id: int
    changed: bool
    notified: int


def webinar_page_url(base_url: str, slug: str) -> str:
    return f"{base_url}/webinars/{slug}"


def manage_page_url(base_url: str, token: str) -> str:
    return f"{base_url}/registrations/{token}"


def invite_ics_url(base_url: str, token: str) -> str:
    return f"{base_url}/api/registrations/{token}/invite.ics"
