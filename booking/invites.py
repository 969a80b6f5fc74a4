"""Calendar invites (RFC 5545 / RFC 5546 iTIP): pure functions from an `InviteEvent` to bytes.

The rules real clients enforce (DESIGN.md, "Calendar invites"): one UID per registration, a
SEQUENCE that only rises, METHOD:REQUEST or CANCEL with the recipient as the only ATTENDEE, times in
UTC, CRLF line ends, lines folded at 75 octets and TEXT escaped. `icalendar` does the escaping and
the octet-aware folding; this module decides what goes in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, urlencode

from icalendar import Alarm, Calendar, Event, vCalAddress

PRODID = "-//Orthodex//Webinars//EN"

# Control characters have no place in a CN or a one-line property.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_LINE_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")
# What the "add to calendar" links leave unquoted in their values.
_LINK_SAFE = "/:"


@dataclass(frozen=True)
class InviteEvent:
    """What one calendar entry says; `start`/`end` are timezone-aware (any zone; emitted in UTC)."""

    uid: str
    sequence: int
    summary: str
    description: str
    start: datetime
    end: datetime
    location: str | None
    url: str | None
    cancelled: bool = False

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None or self.end.utcoffset() is None:
            raise ValueError("InviteEvent start and end must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("InviteEvent must end after it starts")
        if self.sequence < 0:
            raise ValueError("SEQUENCE starts at 0 and only goes up")
        if not self.uid or _LINE_UNSAFE.search(self.uid) or "\n" in self.uid:
            raise ValueError("InviteEvent needs a one-line UID")


def discreet_summary(network_name: str) -> str:
    """A calendar title that names no condition: calendars are seen by family and colleagues."""
    return f"Patient webinar – {network_name}"


def build_invite(
    event: InviteEvent,
    *,
    method: Literal["REQUEST", "CANCEL"],
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
    attendee_name: str,
    dtstamp: datetime,
) -> bytes:
    """The invite mailed to one attendee (and served at the manage link's invite.ics).

    Byte for byte what icalendar writes for `invite_calendar` (a test holds the two equal). Most of
    its lines are the same for everyone at the session, and serialising them was most of what an
    invite cost, so they are serialised once per process; only the attendee's own are written here.
    """
    own = Event()
    _add_own_properties(own, event, dtstamp)
    own.add("attendee", _attendee(attendee_email, attendee_name))
    # What the shared lines depend on: the event less what is the attendee's own.
    shared = replace(event, uid="-", sequence=0, description="-" if event.description else "")
    return b"".join(
        line if isinstance(line, bytes) else own.content_line(line, own[line]).to_ical() + b"\r\n"
        for line in _shared_lines(shared, method, organizer_email, organizer_name)
    )


def invite_calendar(
    event: InviteEvent,
    *,
    method: Literal["REQUEST", "CANCEL"],
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
    attendee_name: str,
    dtstamp: datetime,
) -> Calendar:
    """The whole invite to one attendee as icalendar objects: what `build_invite` writes."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, not {method!r}")
    if event.cancelled and method == "REQUEST":
        # RFC 5546 3.2.5: a cancelled event goes out as METHOD:CANCEL, never as a new request.
        raise ValueError("a cancelled event is sent with method CANCEL")
    calendar = _calendar(method)
    vevent = _event(event, dtstamp, cancelled=method == "CANCEL")
    # Private: a shared or delegated calendar shows "busy", not what the webinar is about.
    vevent.add("class", "PRIVATE")
    vevent.add("organizer", _address(organizer_email, organizer_name))
    vevent.add("attendee", _attendee(attendee_email, attendee_name))
    if method == "REQUEST":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", "Reminder")
        alarm.add("trigger", timedelta(minutes=-30))
        vevent.add_component(alarm)
    calendar.add_component(vevent)
    return calendar


# The VEVENT properties two attendees' invites to one session differ in: `_add_own_properties`
# and ATTENDEE.
_OWN_PROPERTIES = frozenset({"UID", "SEQUENCE", "DTSTAMP", "DESCRIPTION", "ATTENDEE"})


@lru_cache(maxsize=1024)
def _shared_lines(
    shared: InviteEvent, method: Literal["REQUEST", "CANCEL"], organizer_email: str, organizer_name: str
) -> tuple[bytes | str, ...]:
    """The folded lines of an invite to `shared`, with the attendee's own properties as names.

    This is icalendar's `Component.to_ical` line by line: one content line per property, in an
    order that depends on the property names only, so the attendee's lines can be put in later.
    """
    calendar = invite_calendar(
        shared,
        method=method,
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        attendee_email="attendee@example.invalid",
        attendee_name="",
        dtstamp=datetime(2000, 1, 1, tzinfo=UTC),
    )
    lines: list[bytes | str] = []
    in_event = False  # among the VEVENT's own properties, which come before its VALARM
    for name, value in calendar.property_items():
        if name in ("BEGIN", "END"):
            in_event = name == "BEGIN" and value == b"VEVENT"
        if in_event and name in _OWN_PROPERTIES:
            lines.append(name)
        else:
            lines.append(calendar.content_line(name, value).to_ical() + b"\r\n")
    return tuple(lines)


def build_feed(
    events: Sequence[InviteEvent],
    *,
    organizer_email: str,
    organizer_name: str,
    calendar_name: str,
    dtstamp: datetime,
) -> bytes:
    """The public subscription feed: METHOD:PUBLISH, an ORGANIZER, no attendees at all."""
    calendar = _calendar("PUBLISH")
    name = _one_line(calendar_name)
    calendar.add("name", name)
    # The de-facto property Apple, Google and Outlook read for a subscribed calendar's name.
    calendar.add("x-wr-calname", name)
    for event in events:
        vevent = _event(event, dtstamp, cancelled=event.cancelled)
        vevent.add("organizer", _address(organizer_email, organizer_name))
        calendar.add_component(vevent)
    return bytes(calendar.to_ical())


def google_calendar_url(event: InviteEvent) -> str:
    """ "Add to Google Calendar": a prefilled event form (times in UTC, like the invite)."""
    query = {
        "action": "TEMPLATE",
        "text": event.summary,
        "dates": f"{_utc(event.start):%Y%m%dT%H%M%SZ}/{_utc(event.end):%Y%m%dT%H%M%SZ}",
        "details": calendar_details(event),
    }
    if event.location:
        query["location"] = event.location
    return "https://calendar.google.com/calendar/render?" + urlencode(query, safe=_LINK_SAFE, quote_via=quote)


def outlook_calendar_url(event: InviteEvent) -> str:
    """ "Add to Outlook": Outlook on the web's compose deep link (works for outlook.com accounts)."""
    query = {
        "path": "/calendar/action/compose",
        "rru": "addevent",
        "subject": event.summary,
        "startdt": f"{_utc(event.start):%Y-%m-%dT%H:%M:%SZ}",
        "enddt": f"{_utc(event.end):%Y-%m-%dT%H:%M:%SZ}",
        "body": calendar_details(event),
    }
    if event.location:
        query["location"] = event.location
    return "https://outlook.live.com/calendar/0/deeplink/compose?" + urlencode(
        query, safe=_LINK_SAFE, quote_via=quote
    )


def _calendar(method: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    return calendar


def _event(event: InviteEvent, dtstamp: datetime, *, cancelled: bool) -> Event:
    vevent = Event()
    _add_own_properties(vevent, event, dtstamp)
    # Always UTC ("Z"): no VTIMEZONE, so every parser reads the same instant (see DESIGN.md).
    vevent.add("dtstart", _utc(event.start))
    vevent.add("dtend", _utc(event.end))
    vevent.add("summary", _one_line(event.summary))
    if event.location:
        vevent.add("location", _one_line(event.location))
    if event.url:
        vevent.add("url", _one_line(event.url))
    vevent.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    vevent.add("transp", "OPAQUE")
    return vevent


def _add_own_properties(vevent: Event, event: InviteEvent, dtstamp: datetime) -> None:
    """The properties that differ between invites to one session, apart from ATTENDEE."""
    if dtstamp.utcoffset() is None:
        raise ValueError("dtstamp must be timezone-aware")
    vevent.add("uid", event.uid)
    vevent.add("sequence", event.sequence)
    vevent.add("dtstamp", _utc(dtstamp))
    if event.description:
        vevent.add("description", _text(event.description))


def _address(email: str, name: str) -> vCalAddress:
    email = _one_line(email)
    if not email or any(c in email for c in ' <>:;,"') or "@" not in email:
        raise ValueError(f"not a usable e-mail address for a calendar: {email!r}")
    address = vCalAddress(f"mailto:{email}")
    # A double quote cannot appear inside a quoted parameter (RFC 5545 3.2), and RFC 6868's ^'
    # escape is not read by every client: a single quote reads the same to a person.
    display = " ".join(_CONTROL.sub(" ", name).replace('"', "'").split())
    if display:
        address.params["CN"] = display
    return address


def _attendee(email: str, name: str) -> vCalAddress:
    attendee = _address(email, name)
    attendee.params["CUTYPE"] = "INDIVIDUAL"
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "TRUE"
    return attendee


def _utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _one_line(value: str) -> str:
    return " ".join(_LINE_UNSAFE.sub(" ", value).split())


def _text(value: str) -> str:
    # Keep the line breaks (icalendar escapes them as \n); drop other control characters.
    return _LINE_UNSAFE.sub(" ", value.replace("\r\n", "\n").replace("\r", "\n"))


# Browsers and Google's form cut very long links; the description is a courtesy copy.
DETAILS_MAX = 1500


def calendar_details(event: InviteEvent) -> str:
    """The details (body) of the "add to calendar" links: the description, then the event's URL."""
    return "\n\n".join(part for part in (event.description[:DETAILS_MAX], event.url or "") if part)


def quote_link_text(value: str) -> str:
    """A value as the calendar links quote it."""
    return quote(value, safe=_LINK_SAFE)
