"""Webinar e-mails: the iMIP MIME tree, discreet subjects, both time zones, the manage link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from booking.invites import InviteEvent, build_invite, discreet_summary
from booking.messages import MessageContext, MessageKind, build_message
from tests.booking.test_invites import assert_wire_format, parse_everywhere, same_everywhere

NEW_YORK = ZoneInfo("America/New_York")
TITLE = "Stem cell and platelet procedures for knee arthritis"
# Words of the title and the conditions it covers, none of which may reach a subject line.
CONDITION_WORDS = ("stem", "platelet", "knee", "arthritis", "prp", "meniscus")
MANAGE = "https://orthodex.example/registrations/Tk3n-secret"
JOIN = "https://meet.example/j/987654?pwd=s3cret&x=1"
SPRING_FORWARD = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK).astimezone(UTC)


def _context(kind: MessageKind = MessageKind.confirmed, **changes: Any) -> MessageContext:
    fields: dict[str, Any] = {
        "kind": kind,
        "recipient_email": "zoe@example.com",
        "recipient_name": "Zoë O'Brien, Jr.; 😀",
        "webinar_title": TITLE,
        "starts_at": SPRING_FORWARD,
        "ends_at": SPRING_FORWARD + timedelta(hours=1),
        "timezone": "America/New_York",
        "join_url": JOIN,
        "manage_url": MANAGE,
        "ics_url": MANAGE + "/invite.ics",
        "network_name": "Test Clinic Network",
        "mail_from": "webinars@orthodex.example",
    }
    fields.update(changes)
    return MessageContext(**fields)


def _invite(ctx: MessageContext, method: Any = "REQUEST", sequence: int = 0) -> bytes:
    event = InviteEvent(
        uid="registration-7@orthodex.example",
        sequence=sequence,
        summary=discreet_summary(ctx.network_name),
        description=ctx.webinar_title,
        start=ctx.starts_at,
        end=ctx.ends_at,
        location="Online",
        url=ctx.manage_url,
        cancelled=method == "CANCEL",
    )
    return build_invite(
        event,
        method=method,
        organizer_email=ctx.mail_from,
        organizer_name=ctx.network_name,
        attendee_email=ctx.recipient_email,
        attendee_name=ctx.recipient_name,
        dtstamp=datetime(2026, 2, 1, tzinfo=UTC),
    )


def _wire(message: EmailMessage) -> EmailMessage:
    """The message as a mail client sees it: serialised for SMTP, then parsed back."""
    return message_from_bytes(message.as_bytes(policy=policy.SMTP), policy=policy.default)


def tree(message: EmailMessage) -> Any:
    """The MIME structure as nested (content type, children) tuples."""
    if message.is_multipart():
        return (message.get_content_type(), [tree(cast(EmailMessage, p)) for p in message.iter_parts()])
    return message.get_content_type()


def _texts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    return cast(str, plain.get_content()), cast(str, html.get_content())


def calendar_parts(message: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    """The text/calendar alternative and the invite.ics attachment."""
    [inline] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    [attachment] = list(message.iter_attachments())
    return inline, attachment


@pytest.mark.parametrize(
    ("kind", "method"),
    [
        (MessageKind.confirmed, "REQUEST"),
        (MessageKind.promoted, "REQUEST"),
        (MessageKind.session_moved, "REQUEST"),
        (MessageKind.reminder, "REQUEST"),
        (MessageKind.cancelled, "CANCEL"),
        (MessageKind.session_cancelled, "CANCEL"),
    ],
)
def test_invite_mail_is_imip(kind: MessageKind, method: str) -> None:
    ctx = _context(kind, previous_starts_at=SPRING_FORWARD - timedelta(days=2))
    invite = _invite(ctx, method=method)
    message = _wire(build_message(ctx, invite, method=cast(Any, method)))
    assert tree(message) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html", "text/calendar"]), "application/ics"],
    )
    inline, attachment = calendar_parts(message)
    # RFC 6047 2.4: the header's method is the METHOD inside, byte for byte the same calendar.
    assert inline.get_param("method") == method
    assert str(inline.get_param("charset")).upper() == "UTF-8"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    assert inline.get_payload(decode=True) == invite
    assert attachment.get_payload(decode=True) == invite
    assert_wire_format(invite)
    calendar = same_everywhere(parse_everywhere(invite))
    assert calendar["method"] == method
    assert [a["address"] for a in calendar["events"][0]["attendees"]] == ["mailto:zoe@example.com"]


def test_the_message_reads_the_same_before_it_is_sent() -> None:
    # The outbox worker reads the unsent message (the To addresses); clients read the wire form.
    ctx = _context()
    invite = _invite(ctx)
    message = build_message(ctx, invite)
    wire = _wire(message)
    assert tree(message) == tree(wire)
    assert [t.replace("\r\n", "\n") for t in _texts(wire)] == list(_texts(message))
    assert str(message["Subject"]) == str(wire["Subject"])
    for name in ("From", "To"):
        assert message[name].addresses == wire[name].addresses
    inline, attachment = calendar_parts(message)
    assert inline.get_payload(decode=True) == attachment.get_payload(decode=True) == invite


def test_text_that_looks_like_a_boundary_stays_inside_its_part() -> None:
    first = _wire(build_message(_context(), _invite(_context())))
    outer, inner = first.get_boundary(), cast(EmailMessage, first.get_payload(0)).get_boundary()
    # The manage link is a line of its own in the plain text, where a boundary line would end a part.
    ctx = _context(manage_url=f"--{inner}--\n--{outer}--")
    message = _wire(build_message(ctx, _invite(ctx)))
    assert tree(message) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html", "text/calendar"]), "application/ics"],
    )
    plain, _ = _texts(message)
    assert f"\r\n--{inner}--\r\n--{outer}--\r\n" in plain


def test_waitlisted_mail_has_no_invite_and_no_join_link() -> None:
    message = _wire(build_message(_context(MessageKind.waitlisted, waitlist_position=3)))
    assert tree(message) == ("multipart/alternative", ["text/plain", "text/html"])
    plain, html = _texts(message)
    assert "number 3 on the waitlist" in plain
    assert JOIN not in plain
    assert "meet.example" not in html
    assert MANAGE in plain
    assert MANAGE in html


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_mail_has_a_discreet_subject_both_times_and_the_manage_link(kind: MessageKind) -> None:
    ctx = _context(kind, waitlist_position=2, previous_starts_at=SPRING_FORWARD - timedelta(days=2))
    method = "CANCEL" if kind in (MessageKind.cancelled, MessageKind.session_cancelled) else "REQUEST"
    invite = None if kind is MessageKind.waitlisted else _invite(ctx, method)
    message = _wire(build_message(ctx, invite))
    subject = str(message["Subject"])
    assert TITLE not in subject
    assert not [w for w in CONDITION_WORDS if w in subject.lower()], subject
    assert "Sun, Mar 8, 1:30 AM EST" in subject
    plain, html = _texts(message)
    assert TITLE in plain
    assert TITLE in html
    # The session's own zone (both sides of the spring-forward gap) and UTC.
    assert "Sunday, March 8, 2026, 1:30 AM EST – 3:30 AM EDT (New York time)" in plain
    assert "Sunday, March 8, 2026, 6:30 AM – 7:30 AM UTC" in plain
    assert MANAGE in plain
    assert f'href="{MANAGE}"' in html
    seat_holder = kind in (
        MessageKind.confirmed,
        MessageKind.promoted,
        MessageKind.session_moved,
        MessageKind.reminder,
    )
    assert (JOIN in plain) is seat_holder


def test_join_link_only_when_given() -> None:
    plain, html = _texts(_wire(build_message(_context(join_url=None), _invite(_context()))))
    assert "Join online" not in plain
    assert "Join online" not in html


def test_moved_mail_shows_old_and_new_time() -> None:
    before = datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK).astimezone(UTC)
    after = datetime(2026, 7, 16, 19, 30, tzinfo=NEW_YORK).astimezone(UTC)
    ctx = _context(
        MessageKind.session_moved,
        starts_at=after,
        ends_at=after + timedelta(minutes=90),
        previous_starts_at=before,
    )
    message = _wire(build_message(ctx, _invite(ctx, sequence=1), method="REQUEST"))
    plain, _ = _texts(message)
    assert "Old time: Tuesday, July 14, 2026, 6:00 PM EDT" in plain
    assert "New time: Thursday, July 16, 2026, 7:30 PM – 9:00 PM EDT (New York time)" in plain
    assert "In UTC: Thursday, July 16, 2026, 11:30 PM – Friday, July 17, 2026, 1:00 AM UTC" in plain
    assert str(message["Subject"]) == "New time for your webinar – now Thu, Jul 16, 7:30 PM EDT"


def test_html_is_escaped() -> None:
    ctx = _context(
        webinar_title='Knees <script>alert("x")</script> & hips',
        recipient_name="<b>Eve</b>",
        manage_url='https://orthodex.example/r/a"onmouseover="x',
    )
    _, html = _texts(_wire(build_message(ctx)))
    assert "<script>" not in html
    assert "<b>Eve</b>" not in html
    assert "Knees &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; hips" in html
    assert 'href="https://orthodex.example/r/a&quot;onmouseover=&quot;x"' in html


def test_from_and_to_headers_keep_names_with_punctuation_and_emoji() -> None:
    message = _wire(build_message(_context(network_name="Smith, Jones & Co; Clinics")))
    [sender] = message["From"].addresses
    [recipient] = message["To"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Smith, Jones & Co; Clinics",
        "webinars@orthodex.example",
    )
    assert (recipient.display_name, recipient.addr_spec) == ("Zoë O'Brien, Jr.; 😀", "zoe@example.com")


def test_a_name_cannot_inject_a_header() -> None:
    message = build_message(_context(recipient_name="Eve\r\nBcc: everyone@example.com"))
    raw = message.as_bytes(policy=policy.SMTP)
    assert b"\r\nBcc:" not in raw


def test_method_must_match_the_invite() -> None:
    ctx = _context()
    with pytest.raises(ValueError, match="METHOD:REQUEST"):
        build_message(ctx, _invite(ctx), method="CANCEL")
    with pytest.raises(ValueError, match="needs an invite"):
        build_message(ctx, None, method="REQUEST")


def test_zone_without_an_abbreviation_shows_the_offset() -> None:
    start = datetime(2026, 7, 14, 18, 0, tzinfo=ZoneInfo("America/Sao_Paulo")).astimezone(UTC)
    ctx = _context(starts_at=start, ends_at=start + timedelta(hours=1), timezone="America/Sao_Paulo")
    plain, _ = _texts(_wire(build_message(ctx)))
    assert "Tuesday, July 14, 2026, 6:00 PM – 7:00 PM UTC-3 (Sao Paulo time)" in plain
    assert "Tuesday, July 14, 2026, 9:00 PM – 10:00 PM UTC" in plain
