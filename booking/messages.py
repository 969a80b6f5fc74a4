"""Webinar e-mails: pure functions from a `MessageContext` (and an invite) to an `EmailMessage`.

The MIME tree is RFC 6047 iMIP as Gmail, Outlook and Apple Mail expect it:

    multipart/mixed
      multipart/alternative
        text/plain
        text/html
        text/calendar; method=REQUEST|CANCEL; charset=UTF-8
      application/ics; name=invite.ics (the same bytes, for clients that only save attachments)

Subjects stay discreet (a subject line is seen on lock screens and shared inboxes): they never carry
the webinar's title, which may name a condition; the body does.

The outbox stores what to send, not the MIME (building it costs milliseconds, too long to hold a
registration's write lock for): `mail_payload` is the JSON a booking change writes in its own
transaction, `render_mail` turns it back into the message when the outbox worker sends it, and
`RENDERERS` is what the app hands the worker. The payload holds every value the message says, as
of the commit (times, links, the invite's UID, SEQUENCE, METHOD and DTSTAMP), so rendering later
says exactly what was true then.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email import policy
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.utils import parseaddr
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from booking.invites import InviteEvent, build_invite, discreet_summary

_POLICY = policy.default
# Every part is quoted-printable or base64, neither of which can contain "=_" (RFC 2045 6.7), so a
# boundary starting with it never occurs inside a part and can be chosen once per process.
_BOUNDARIES = {subtype: f"=_{subtype}_{secrets.token_hex(12)}" for subtype in ("mixed", "alternative")}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_METHOD_LINE = re.compile(rb"^METHOD:([A-Z-]+)\r?$", re.MULTILINE)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class MessageKind(StrEnum):
    confirmed = "confirmed"
    waitlisted = "waitlisted"
    promoted = "promoted"
    cancelled = "cancelled"
    session_moved = "session_moved"
    session_cancelled = "session_cancelled"
    reminder = "reminder"


@dataclass(frozen=True)
class MessageContext:
    """Everything one e-mail says. Times are timezone-aware; `timezone` is the session's IANA zone."""

    kind: MessageKind
    recipient_email: str
    recipient_name: str
    webinar_title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    join_url: str | None
    manage_url: str
    ics_url: str
    network_name: str
    mail_from: str
    waitlist_position: int | None = None
    previous_starts_at: datetime | None = None

    def __post_init__(self) -> None:
        for moment in (self.starts_at, self.ends_at, self.previous_starts_at):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError("MessageContext times must be timezone-aware")
        ZoneInfo(self.timezone)  # an unknown zone fails here, not halfway through a send


class InviteSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The calendar part of an e-mail: which entry, which version of it, and what to do with it."""

    uid: str
    sequence: int
    method: Literal["REQUEST", "CANCEL"]
    # RFC 5545 DTSTAMP: when the change that caused the e-mail committed (not when it is sent).
    dtstamp: datetime


class MailPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An outbox row's payload: the e-mail's words, and its invite if it carries one."""

    context: MessageContext
    invite: InviteSpec | None = None


def mail_payload(ctx: MessageContext, invite: InviteSpec | None = None) -> dict[str, Any]:
    """The JSON an outbox row stores for this e-mail (core.mail.enqueue_payload)."""
    payload: dict[str, Any] = msgspec.to_builtins(MailPayload(ctx, invite))
    return payload


def render_mail(payload: Mapping[str, Any]) -> EmailMessage:
    """The e-mail an outbox payload stands for; the worker calls it at send time. Pure."""
    mail = msgspec.convert(payload, MailPayload)
    ctx, spec = mail.context, mail.invite
    if spec is None:
        return build_message(ctx)
    event = attendee_event(
        uid=spec.uid,
        sequence=spec.sequence,
        network_name=ctx.network_name,
        webinar_title=ctx.webinar_title,
        starts_at=ctx.starts_at,
        ends_at=ctx.ends_at,
        join_url=ctx.join_url,
        manage_url=ctx.manage_url,
        cancelled=spec.method == "CANCEL",
    )
    invite = build_invite(
        event,
        method=spec.method,
        organizer_email=mailbox(ctx.mail_from),
        organizer_name=ctx.network_name,
        attendee_email=ctx.recipient_email,
        attendee_name=ctx.recipient_name,
        dtstamp=spec.dtstamp,
    )
    return build_message(ctx, invite, spec.method)


def attendee_event(
    *,
    uid: str,
    sequence: int,
    network_name: str,
    webinar_title: str,
    starts_at: datetime,
    ends_at: datetime,
    join_url: str | None,
    manage_url: str,
    cancelled: bool,
) -> InviteEvent:
    """One registrant's calendar entry: a discreet title, the join link only while they hold a seat."""
    lines = [webinar_title, ""]
    if join_url:
        lines += [f"Join online: {join_url}", ""]
    lines.append(f"Your registration (cancel, calendar file): {manage_url}")
    return InviteEvent(
        uid=uid,
        sequence=sequence,
        summary=discreet_summary(network_name),
        description="\n".join(lines),
        start=starts_at,
        end=ends_at,
        location=join_url,
        url=join_url,
        cancelled=cancelled,
    )


def mailbox(mail_from: str) -> str:
    """The bare address of a From value such as 'Clinic <webinars@clinic.example>'."""
    return parseaddr(mail_from)[1] or mail_from


_INTROS = {
    MessageKind.confirmed: "Thank you for registering. Your seat is confirmed for this free webinar:",
    MessageKind.waitlisted: "Thank you for registering. This webinar is full, so you are on the waitlist:",
    MessageKind.promoted: "Good news: a seat opened up, and it is yours. You are now confirmed for:",
    MessageKind.cancelled: "Your registration has been cancelled. You will not get more e-mails about:",
    MessageKind.session_moved: "The webinar you registered for has moved to a new time:",
    MessageKind.session_cancelled: "We are sorry: this webinar has been cancelled and will not take place:",
    MessageKind.reminder: "This is a reminder that your webinar is coming up soon:",
}
# Only people holding a seat ever see the join link (DESIGN.md: the join URL is secret).
_SHOWS_JOIN = {MessageKind.confirmed, MessageKind.promoted, MessageKind.session_moved, MessageKind.reminder}


def build_message(
    ctx: MessageContext,
    invite: bytes | None = None,
    method: Literal["REQUEST", "CANCEL"] | None = None,
) -> EmailMessage:
    """One e-mail to one attendee; with `invite`, an iMIP message whose header method is METHOD."""
    method = _checked_method(invite, method)
    paragraphs = _paragraphs(ctx, ZoneInfo(ctx.timezone), with_invite=invite is not None)
    alternatives = [_text_part("plain", _plain(ctx, paragraphs)), _text_part("html", _html(ctx, paragraphs))]
    message = EmailMessage()
    message.set_raw("Subject", _folded_subject(subject_line(ctx.kind, ctx.starts_at, ctx.timezone)))
    message.set_raw("From", _folded_sender(_clean(ctx.network_name), mailbox(ctx.mail_from)))
    # Parsed, as the outbox worker reads the addresses back (core.mail._check_one_recipient).
    to = Address(display_name=_clean(ctx.recipient_name), addr_spec=ctx.recipient_email)
    message.set_raw("To", _POLICY.header_factory("To", to))
    message.set_raw("MIME-Version", "1.0")
    if invite is None or method is None:
        return _multipart(message, "alternative", alternatives)
    # Base64 keeps the calendar's CRLFs and folding byte for byte through every relay.
    calendar = base64.encodebytes(invite).decode("ascii")
    alternatives.append(_part(f'text/calendar; method="{method}"; charset="UTF-8"', "base64", calendar))
    attachment = _part("application/ics", "base64", calendar, 'attachment; filename="invite.ics"')
    return _multipart(message, "mixed", [_multipart(EmailMessage(), "alternative", alternatives), attachment])


# How the parts are put together, and why not with set_content/add_alternative: those parse every
# header they set through the header registry (and look up its class each time), which cost more
# than a millisecond a message. Here the headers go in with set_raw, as the parser would store
# them: folded text for those only ever written out (worked out once per distinct value), parsed
# header objects, shared between messages, for those read back (the generator reads each part's
# Content-Type and Content-Transfer-Encoding).


def _multipart(container: EmailMessage, subtype: str, parts: list[EmailMessage]) -> EmailMessage:
    content_type = f'multipart/{subtype}; boundary="{_BOUNDARIES[subtype]}"'
    container.set_raw("Content-Type", _parsed("Content-Type", content_type))
    for part in parts:
        container.attach(part)
    return container


def _text_part(subtype: str, text: str) -> EmailMessage:
    # Quoted-printable: 7-bit clean, lines of at most 76, readable, and never "=_" (_BOUNDARIES).
    encoded = binascii.b2a_qp(text.encode()).decode("ascii")
    return _part(f'text/{subtype}; charset="utf-8"', "quoted-printable", encoded)


def _part(content_type: str, encoding: str, payload: str, disposition: str | None = None) -> EmailMessage:
    part = EmailMessage()
    part.set_raw("Content-Type", _parsed("Content-Type", content_type))
    part.set_raw("Content-Transfer-Encoding", _parsed("Content-Transfer-Encoding", encoding))
    if disposition is not None:
        part.set_raw("Content-Disposition", disposition)
    part.set_payload(payload)
    return part


@lru_cache(maxsize=32)
def _parsed(name: str, value: str) -> BaseHeader:
    # Header objects are immutable, so every message with this value can hold the same one.
    header: BaseHeader = _POLICY.header_factory(name, value)
    return header


@lru_cache(maxsize=4096)  # one per session and kind of message in flight; a subject is ~100 bytes
def _folded_subject(subject: str) -> str:
    return _folded("Subject", subject)


@lru_cache(maxsize=64)
def _folded_sender(display_name: str, addr_spec: str) -> str:
    return _folded("From", Address(display_name=display_name, addr_spec=addr_spec))


def _folded(name: str, value: str | Address) -> str:
    """The value as the header registry writes it (RFC 2047 encoded words, lines of at most 78)."""
    header: BaseHeader = _POLICY.header_factory(name, value)
    return header.fold(policy=_POLICY).removeprefix(f"{name}:").strip()


def format_when(starts_at: datetime, ends_at: datetime, zone: tzinfo) -> str:
    """'Sunday, March 8, 2026, 1:30 AM EST – 3:30 AM EDT': the zone named at each end if it changes."""
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    start_zone, end_zone = _zone_abbr(start), _zone_abbr(end)
    left = f"{_long_date(start)}, {_clock(start)}"
    right = _clock(end) if end.date() == start.date() else f"{_long_date(end)}, {_clock(end)}"
    if start_zone != end_zone:
        return f"{left} {start_zone} – {right} {end_zone}"
    return f"{left} – {right} {end_zone}"


def _checked_method(invite: bytes | None, method: str | None) -> Literal["REQUEST", "CANCEL"] | None:
    if invite is None:
        if method is not None:
            raise ValueError("a method needs an invite to go with it")
        return None
    found = _METHOD_LINE.search(invite)
    inside = found.group(1).decode() if found else None
    if inside not in ("REQUEST", "CANCEL"):
        raise ValueError(f"an emailed invite needs METHOD:REQUEST or METHOD:CANCEL, not {inside!r}")
    # RFC 6047 2.4: the Content-Type method parameter must equal the METHOD inside.
    if method is not None and method != inside:
        raise ValueError(f"method={method} but the invite says METHOD:{inside}")
    return "REQUEST" if inside == "REQUEST" else "CANCEL"


def subject_line(kind: MessageKind, starts_at: datetime, timezone: str) -> str:
    """The Subject: what happened and when, never what the webinar is about."""
    when = _short(starts_at.astimezone(ZoneInfo(timezone)))
    match kind:
        case MessageKind.confirmed:
            return f"Your webinar seat is confirmed – {when}"
        case MessageKind.waitlisted:
            return f"You are on the waitlist for a webinar – {when}"
        case MessageKind.promoted:
            return f"A seat opened up: your webinar seat is confirmed – {when}"
        case MessageKind.cancelled:
            return f"Your webinar registration is cancelled – {when}"
        case MessageKind.session_moved:
            return f"New time for your webinar – now {when}"
        case MessageKind.session_cancelled:
            return f"Your webinar has been cancelled – it was {when}"
        case MessageKind.reminder:
            return f"Reminder: your webinar starts {when}"


def _paragraphs(ctx: MessageContext, zone: ZoneInfo, *, with_invite: bool) -> list[tuple[str, str]]:
    """The body as (label, text) pairs: the plain and HTML versions say exactly the same things."""
    local = format_when(ctx.starts_at, ctx.ends_at, zone)
    utc = format_when(ctx.starts_at, ctx.ends_at, UTC)
    city = ctx.timezone.rsplit("/", 1)[-1].replace("_", " ")
    intro = _INTROS[ctx.kind]
    parts: list[tuple[str, str]] = [("", f"Hello {_clean(ctx.recipient_name)},"), ("", intro)]
    parts.append(("title", _clean(ctx.webinar_title)))
    if ctx.kind is MessageKind.session_moved and ctx.previous_starts_at is not None:
        parts.append(("Old time", _long(ctx.previous_starts_at.astimezone(zone))))
    parts.append(("New time" if ctx.kind is MessageKind.session_moved else "When", f"{local} ({city} time)"))
    parts.append(("In UTC", utc))
    if ctx.kind is MessageKind.waitlisted:
        place = f"You are number {ctx.waitlist_position} on the waitlist. " if ctx.waitlist_position else ""
        parts.append(
            ("", place + "If a seat opens up, we will confirm you and e-mail you the calendar invitation.")
        )
    if ctx.join_url and ctx.kind in _SHOWS_JOIN:
        parts.append(("Join online", ctx.join_url))
    if with_invite:
        if ctx.kind in (MessageKind.cancelled, MessageKind.session_cancelled):
            note = "The attached calendar update removes the webinar from your calendar."
        else:
            note = "The calendar invitation is attached: open it to add the webinar to your calendar."
        parts.append(("", note))
        parts.append(("Calendar file", ctx.ics_url))
    manage = (
        "To see your registration, use your private link:"
        if ctx.kind in (MessageKind.cancelled, MessageKind.session_cancelled)
        else "To cancel your seat or get the calendar file again, use your private link:"
    )
    parts.append(("", manage))
    parts.append(("manage", ctx.manage_url))
    parts.append(("", "Please do not share this link: it lets anyone change your registration."))
    return parts


def _plain(ctx: MessageContext, paragraphs: list[tuple[str, str]]) -> str:
    lines: list[str] = []
    for label, text in paragraphs:
        if label in ("", "title", "manage"):
            lines.append(f"    {text}" if label == "title" else text)
        else:
            lines.append(f"{label}: {text}")
        lines.append("")
    lines.append(_footer(ctx))
    return "\n".join(lines) + "\n"


def _html(ctx: MessageContext, paragraphs: list[tuple[str, str]]) -> str:
    body: list[str] = []
    for label, text in paragraphs:
        value = html.escape(text)
        if label == "title":
            body.append(f'<p style="font-size:20px;font-weight:bold;margin:16px 0">{value}</p>')
        elif label == "manage":
            body.append(
                f'<p><a href="{html.escape(text, quote=True)}" style="display:inline-block;padding:12px 20px;'
                'background:#14532d;color:#ffffff;text-decoration:none;border-radius:6px;font-size:18px">'
                "Manage my registration</a></p>"
                f'<p style="font-size:14px;color:#444444">{value}</p>'
            )
        elif label in ("Join online", "Calendar file"):
            link = f'<a href="{html.escape(text, quote=True)}">{value}</a>'
            body.append(f"<p><strong>{html.escape(label)}:</strong> {link}</p>")
        elif label:
            body.append(f"<p><strong>{html.escape(label)}:</strong> {value}</p>")
        else:
            body.append(f"<p>{value}</p>")
    footer = html.escape(_footer(ctx))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(_clean(ctx.network_name))}</title></head>\n"
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:18px;line-height:1.5;color:#111111;'
        'max-width:640px;margin:0 auto;padding:16px">\n'
        + "\n".join(body)
        + f'\n<p style="font-size:14px;color:#444444">{footer}</p>\n</body></html>\n'
    )


def _footer(ctx: MessageContext) -> str:
    return (
        f"— {_clean(ctx.network_name)}. Our webinars are general education, not medical advice "
        "for your own situation."
    )


def _clean(value: str) -> str:
    # Names land in headers and one-line paragraphs: a line break there could forge a header.
    return " ".join(_CONTROL.sub(" ", value).split())


def _zone_abbr(moment: datetime) -> str:
    name = moment.tzname() or ""
    if name.isalpha():
        return name
    # Zones without a common abbreviation (tzdata writes "-03"): say the offset plainly.
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def _long_date(moment: datetime) -> str:
    return f"{_DAYS[moment.weekday()]}, {_MONTHS[moment.month - 1]} {moment.day}, {moment.year}"


def _long(moment: datetime) -> str:
    return f"{_long_date(moment)}, {_clock(moment)} {_zone_abbr(moment)}"


def _short(moment: datetime) -> str:
    # Fixed English names: strftime's %a/%b follow the server's locale.
    day, month = _DAYS[moment.weekday()][:3], _MONTHS[moment.month - 1][:3]
    return f"{day}, {month} {moment.day}, {_clock(moment)} {_zone_abbr(moment)}"


# What core.mail.OutboxWorker renders booking's outbox rows with, by row kind.
RENDERERS: Mapping[str, Callable[[dict[str, Any]], EmailMessage]] = MappingProxyType(
    {kind.value: render_mail for kind in MessageKind}
)
