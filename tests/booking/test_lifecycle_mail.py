"""Every e-mail of a registration's life, through a real SMTP server (aiosmtpd on loopback).

Register, waitlist, cancel, promote, move, remind, cancel the session: each step's mail is sent by
the real outbox worker, received over SMTP, and read the way a mail client and a calendar would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import icalendar
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import col, select, update

from booking.messages import RENDERERS
from booking.service import cancel_session, move_session
from core.db import Database
from core.mail import OutboxMessage, OutboxStatus, OutboxWorker
from core.settings import Settings
from tests.booking.test_invites import parse_everywhere, same_everywhere
from tests.booking.test_messages import calendar_parts
from tests.booking.test_registration import JOIN, make_session, make_webinar, payload, register
from tests.mailserver import MailServer, Received, free_port

Client = AsyncTestClient[Litestar]
# Words of the webinar's title: none may reach a subject line.
TITLE_WORDS = ("stem", "platelet", "knee", "arthritis")


@pytest.fixture
def settings(settings: Settings, smtp_server: MailServer) -> Settings:
    return settings.with_(
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        background_workers=False,
        mail_from="Test Clinic Network <webinars@clinic.example>",
    )


class Mailroom:
    """Sends what the outbox holds, with the app's own worker, and hands over what arrived."""

    def __init__(self, db: Database, settings: Settings, server: MailServer) -> None:
        self.db, self.settings = db, settings
        self.worker = OutboxWorker(db, settings, renderers=RENDERERS)
        self.server = server
        self.seen = 0

    async def deliver(self, expected: int) -> list[Received]:
        while await self.worker.run_once():
            pass
        received = await self.server.wait_for(self.seen + expected)
        assert len(received) == self.seen + expected, "more mail than expected"
        new, self.seen = received[self.seen :], len(received)
        return new


def by_recipient(received: list[Received]) -> dict[str, EmailMessage]:
    out = {}
    for item in received:
        [recipient] = item.rcpt_tos
        assert recipient not in out, f"two messages for {recipient} in one step"
        assert [a.addr_spec for a in item.message["To"].addresses] == [recipient]
        assert item.message["Cc"] is None
        assert item.message["Bcc"] is None
        out[recipient] = item.message
    return out


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


def invite(message: EmailMessage) -> tuple[str, Any]:
    """(method, VEVENT) of an iMIP message, after checking both copies agree with the header."""
    inline, attachment = calendar_parts(message)
    ics = payload(inline)
    assert payload(attachment) == ics
    calendar = icalendar.Calendar.from_ical(ics)
    assert inline.get_param("method") == calendar["METHOD"]
    [event] = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), event


def has_invite(message: EmailMessage) -> bool:
    return any(p.get_content_type() == "text/calendar" for p in message.walk())


async def manage_link_works(client: Client, message: EmailMessage, status: str) -> str:
    """Follows the manage link in the mail: it must open this person's registration."""
    [link] = [w for w in body(message).split() if "/registrations/" in w and "invite.ics" not in w]
    token = link.rsplit("/", 1)[1]
    response = await client.get(f"/api/registrations/{token}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    return token


async def test_every_message_of_the_lifecycle_arrives_right(
    client: Client, db: Database, settings: Settings, smtp_server: MailServer
) -> None:
    mailroom = Mailroom(db, settings, smtp_server)
    sid = make_session(db, make_webinar(db), capacity=1, starts_in=timedelta(days=5))

    # 1. Ann gets the seat (invite), Bob the waitlist (no invite, no join link).
    ann = (await register(client, sid, "ann@example.org", "Ann Lee")).json()
    bob = (await register(client, sid, "bob@example.org", "Bob Roe")).json()
    mail = by_recipient(await mailroom.deliver(2))
    confirmed, waitlisted = mail["ann@example.org"], mail["bob@example.org"]
    for message in mail.values():
        assert not any(word in message["Subject"].lower() for word in TITLE_WORDS), message["Subject"]
        assert "Stem cell and platelet procedures for knee arthritis" in body(message)
        assert message["From"].addresses[0].addr_spec == "webinars@clinic.example"
    method, event = invite(confirmed)
    assert (method, event["SEQUENCE"]) == ("REQUEST", 0)
    ann_uid = str(event["UID"])
    attendees = event.get("ATTENDEE")
    # Exactly one ATTENDEE (icalendar gives a list only when there are several).
    assert not isinstance(attendees, list)
    assert str(attendees) == "mailto:ann@example.org"
    assert "knee" not in str(event["SUMMARY"]).lower()
    assert JOIN in body(confirmed)
    assert not has_invite(waitlisted)
    assert JOIN not in waitlisted.as_string()
    assert "number 1 on the waitlist" in body(waitlisted)
    assert await manage_link_works(client, confirmed, "confirmed") == ann["token"]
    assert await manage_link_works(client, waitlisted, "waitlisted") == bob["token"]

    # 2. Ann cancels: she gets CANCEL for the same UID, Bob moves up and gets his invite.
    await client.delete(f"/api/registrations/{ann['token']}")
    mail = by_recipient(await mailroom.deliver(2))
    method, event = invite(mail["ann@example.org"])
    assert (method, str(event["UID"]), event["SEQUENCE"], event["STATUS"]) == (
        "CANCEL",
        ann_uid,
        1,
        "CANCELLED",
    )
    promoted = mail["bob@example.org"]
    method, event = invite(promoted)
    assert (method, event["SEQUENCE"]) == ("REQUEST", 0)
    bob_uid = str(event["UID"])
    assert JOIN in body(promoted)
    await manage_link_works(client, promoted, "confirmed")

    # 3. Cleo joins the waitlist; then the session moves: both hear, Bob with SEQUENCE 1.
    await register(client, sid, "cleo@example.org", "Cleo Poe")
    await mailroom.deliver(1)
    new_start = (datetime.now(UTC) + timedelta(days=8)).replace(microsecond=0)
    assert move_session(db, settings, sid, starts_at=new_start).notified == 2
    mail = by_recipient(await mailroom.deliver(2))
    method, event = invite(mail["bob@example.org"])
    assert (method, str(event["UID"]), event["SEQUENCE"]) == ("REQUEST", bob_uid, 1)
    assert event["DTSTART"].dt == new_start
    assert not has_invite(mail["cleo@example.org"])
    assert JOIN not in mail["cleo@example.org"].as_string()
    # The moved invite reads the same instant in icalendar, vobject and Mozilla's ical.js.
    inline, _ = calendar_parts(mail["bob@example.org"])
    agreed = same_everywhere(parse_everywhere(payload(inline)))
    assert agreed["events"][0]["sequence"] == 1

    # 4. The day before: a reminder to the confirmed attendee only (queued with the move; its
    # time is brought forward here instead of waiting four days).
    assert await mailroom.worker.run_once() == 0
    assert time_passes(db, until=new_start - timedelta(hours=12)) == 1
    [reminder] = await mailroom.deliver(1)
    assert reminder.rcpt_tos == ["bob@example.org"]
    assert JOIN in body(reminder.message)

    # 5. The session is cancelled: everyone still registered hears; Bob's calendar entry goes.
    assert cancel_session(db, settings, sid).notified == 2
    mail = by_recipient(await mailroom.deliver(2))
    method, event = invite(mail["bob@example.org"])
    assert (method, str(event["UID"]), event["SEQUENCE"]) == ("CANCEL", bob_uid, 2)
    assert not has_invite(mail["cleo@example.org"])
    await manage_link_works(client, mail["cleo@example.org"], "cancelled")
    # Nothing else went out: the reminders queued for Ann's seat and for Bob's old time were withdrawn.
    with db.session() as session:
        statuses = Counter(session.exec(select(col(OutboxMessage.status))).all())
    assert statuses == {OutboxStatus.sent: 10, OutboxStatus.cancelled: 2}


def time_passes(db: Database, *, until: datetime) -> int:
    """Bring forward every queued message due by `until`, as if that moment had come; returns how many."""
    with db.write() as session:
        return int(
            session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.status) == OutboxStatus.queued, col(OutboxMessage.send_after) <= until
                )
                .values(next_attempt_at=datetime.now(UTC))
            ).rowcount
        )


@pytest.fixture
def down_port() -> int:
    return free_port()


@pytest.fixture
def outage_settings(settings: Settings, down_port: int) -> Settings:
    # The worker runs with the app, as in production, against an SMTP port nobody listens on yet.
    return settings.with_(
        smtp_port=down_port,
        background_workers=True,
        outbox_poll_seconds=0.05,
        outbox_retry_seconds=0.1,
    )


async def test_smtp_down_while_people_register_loses_nothing(
    db: Database, outage_settings: Settings, down_port: int
) -> None:
    from app import create_app

    # Inside the reminder window, so each registration queues exactly one e-mail.
    sid = make_session(db, make_webinar(db), capacity=15, starts_in=timedelta(hours=12))
    async with AsyncTestClient(app=create_app(outage_settings)) as client:
        answers = await asyncio.gather(*(register(client, sid, f"p{i}@example.org") for i in range(20)))
        assert [a.status_code for a in answers] == [201] * 20
        await _until(lambda: _statuses(db) == {OutboxStatus.retrying: 20}, "every send to fail once")
        server = MailServer(port=down_port)
        server.start()
        try:
            received = await server.wait_for(20, seconds=30)
            await _until(lambda: _statuses(db) == {OutboxStatus.sent: 20}, "every row to be sent")
            await asyncio.sleep(0.5)
            received = server.messages
        finally:
            server.stop()
    recipients = Counter(r.rcpt_tos[0] for r in received)
    assert recipients == {f"p{i}@example.org": 1 for i in range(20)}
    kinds = Counter("waitlist" in r.message["Subject"] for r in received)
    assert kinds == {False: 15, True: 5}


def _statuses(db: Database) -> dict[str, int]:
    with db.session() as session:
        return dict(Counter(session.exec(select(col(OutboxMessage.status))).all()))


async def _until(condition: Any, what: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
