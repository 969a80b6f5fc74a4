"""Registering, the waitlist, one's own registration, and admins' changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import icalendar
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from booking.messages import RENDERERS
from booking.models import IdempotencyKey, Registration, WebinarSession
from booking.schemas import manage_page_url
from booking.service import (
    _SEAT_BY_TOKEN,
    InvalidInput,
    InviteFiles,
    RegistrationLimits,
    Seat,
    SessionInput,
    SessionLocked,
    WebinarInput,
    _invite_file,
    _Organizer,
    add_session,
    cancel_session,
    change_capacity,
    create_webinar,
    list_attendees,
    move_session,
    registration_token,
    token_digest,
    update_webinar,
)
from core.db import Database
from core.mail import OutboxMessage
from core.settings import Settings

Client = AsyncTestClient[Litestar]
JOIN = "https://meet.example/j/secret-4711?pwd=hush"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The outbox stays as written, so tests can read what each change queued.
    return settings.with_(background_workers=False)


def make_webinar(
    db: Database, title: str = "Stem cell and platelet procedures for knee arthritis", **kw: Any
) -> str:
    data = WebinarInput(title=title, regions=["knee"], conditions=["knee-osteoarthritis"])
    for key, value in kw.items():
        setattr(data, key, value)
    return create_webinar(db, data)


def make_session(
    db: Database,
    slug: str,
    *,
    capacity: int = 2,
    starts_in: timedelta = timedelta(days=10),
    timezone: str = "America/New_York",
    join_url: str = JOIN,
    duration: int = 60,
) -> int:
    starts_at = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    return add_session(db, slug, SessionInput(starts_at, timezone, capacity, join_url, duration))


@pytest.fixture
def session_id(db: Database) -> int:
    return make_session(db, make_webinar(db), capacity=2)


async def register(client: Client, session_id: int, email: str, name: str = "Pat Doe", **headers: str) -> Any:
    return await client.post(
        f"/api/sessions/{session_id}/registrations", json={"name": name, "email": email}, headers=headers
    )


def outbox(db: Database, kind: str | None = None) -> list[OutboxMessage]:
    """The outbox as the changes left it (these tests run no worker)."""
    with db.session() as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if kind is not None:
            query = query.where(col(OutboxMessage.kind) == kind)
        return list(session.exec(query).all())


def parsed(row: OutboxMessage) -> EmailMessage:
    """The e-mail as the outbox worker sends it: rendered from the row's payload by the app's renderer."""
    assert row.message is None, "a change writes what to send; the worker renders it"
    assert row.payload is not None
    rendered = RENDERERS[row.kind](row.payload)
    return message_from_bytes(rendered.as_bytes(policy=policy.SMTP), policy=policy.default)


def payload(part: Any) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def invite_of(row: OutboxMessage) -> icalendar.Calendar | None:
    for part in parsed(row).walk():
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(payload(part))
    return None


def event_of(calendar: icalendar.Calendar) -> Any:
    [event] = calendar.walk("VEVENT")
    return event


def seats(db: Database, session_id: int) -> tuple[int, int]:
    with db.session() as session:
        row = session.get(WebinarSession, session_id)
        assert row is not None
        return row.seats_taken, row.capacity


def registrations(db: Database, session_id: int) -> list[Registration]:
    with db.session() as session:
        return list(
            session.exec(
                select(Registration)
                .where(col(Registration.session_id) == session_id)
                .order_by(col(Registration.id))
            ).all()
        )


# --- registering --------------------------------------------------------------------------------


async def test_a_free_seat_is_confirmed_with_private_links_and_the_join_url(
    client: Client, db: Database, session_id: int, settings: Settings
) -> None:
    response = await register(client, session_id, " Ann.Lee@Example.ORG ", name="  Ann   Lee ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "confirmed"
    token = body["token"]
    # 32 bytes of HMAC output, base64url: 256 bits.
    assert len(token) >= 43
    assert body["manage_url"] == f"{settings.base_url}/registrations/{token}"
    assert body["ics_url"] == f"{settings.base_url}/api/registrations/{token}/invite.ics"
    assert body["join_url"] == JOIN
    assert body["email"] == "ann.lee@example.org"
    assert body["name"] == "Ann Lee"
    assert body["waitlist_position"] is None
    assert body["session"]["id"] == session_id
    assert body["session"]["starts_at"].endswith(("-05:00", "-04:00"))
    assert "calendar.google.com" in body["google_calendar_url"]
    [row] = registrations(db, session_id)
    # Only a digest of the token is kept.
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(row)
    assert seats(db, session_id) == (1, 2)
    # The confirmation, and the reminder due a day before the start, were committed with the seat.
    mail, reminder = outbox(db)
    assert (mail.kind, mail.recipient, mail.registration_id) == ("confirmed", "ann.lee@example.org", row.id)
    assert "confirmed" in mail.subject
    assert parsed(mail)["Subject"] == mail.subject
    calendar = invite_of(mail)
    assert calendar is not None
    assert calendar["METHOD"] == "REQUEST"
    assert event_of(calendar)["UID"] == row.invite_uid
    starts_at = seats_row(db, session_id).starts_at
    assert (reminder.kind, reminder.recipient) == ("reminder", "ann.lee@example.org")
    assert reminder.send_after == starts_at - timedelta(hours=settings.reminder_hours)


async def test_a_full_session_puts_people_on_a_first_come_waitlist_without_the_join_url(
    client: Client, db: Database, session_id: int, settings: Settings
) -> None:
    answers = [await register(client, session_id, f"p{i}@example.org") for i in range(4)]
    assert [a.status_code for a in answers] == [201] * 4
    bodies = [a.json() for a in answers]
    assert [b["status"] for b in bodies] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [b["waitlist_position"] for b in bodies] == [None, None, 1, 2]
    assert [b["join_url"] for b in bodies] == [JOIN, JOIN, None, None]
    assert bodies[2]["google_calendar_url"] is None
    assert seats(db, session_id) == (2, 2)
    waitlisted = await client.get(f"/api/registrations/{bodies[3]['token']}")
    assert waitlisted.json()["waitlist_position"] == 2
    assert JOIN not in waitlisted.text
    # No seat, no invite: the waitlisted are told so.
    no_invite = await client.get(f"/api/registrations/{bodies[2]['token']}/invite.ics")
    assert no_invite.status_code == 409
    assert "waitlist" in no_invite.json()["detail"]
    mails = outbox(db, "waitlisted")
    assert [m.recipient for m in mails] == ["p2@example.org", "p3@example.org"]
    assert all(invite_of(m) is None and JOIN not in parsed(m).as_string() for m in mails)
    assert "number 2 on the waitlist" in parsed(mails[1]).get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_the_same_address_again_gets_its_registration_but_not_its_token(
    client: Client, db: Database, session_id: int, settings: Settings
) -> None:
    first = await register(client, session_id, "ann@example.org")
    again = await register(client, session_id, "ANN@example.org ", name="Someone Else")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["status"] == "confirmed"
    # Knowing an address must not hand out its private link or the join URL.
    assert again.json()["token"] is None
    assert again.json()["manage_url"] is None
    assert JOIN not in again.text
    assert first.json()["token"] not in again.text
    assert len(registrations(db, session_id)) == 1
    assert seats(db, session_id) == (1, 2)
    assert [m.kind for m in outbox(db)] == ["confirmed", "reminder"]


async def test_an_idempotency_key_replays_the_first_answer(
    client: Client, db: Database, session_id: int, settings: Settings
) -> None:
    first = await register(client, session_id, "ann@example.org", **{"Idempotency-Key": "k-1"})
    retry = await register(client, session_id, "ann@example.org", **{"Idempotency-Key": "k-1"})
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    other = await register(client, session_id, "bob@example.org", **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert len(registrations(db, session_id)) == 1
    assert [m.kind for m in outbox(db)] == ["confirmed", "reminder"]
    with db.session() as session:
        [stored] = session.exec(select(IdempotencyKey)).all()
    # The stored answer holds no token, link or join URL: a database reader cannot act as Ann.
    assert first.json()["token"] not in str(stored.body)
    assert JOIN not in str(stored.body)
    assert stored.key_hash != "k-1"


async def test_invite_downloads_are_built_once_per_version_and_never_stale(
    client: Client, app: Litestar, db: Database, settings: Settings
) -> None:
    slug = make_webinar(db)
    sid = make_session(db, slug, capacity=5)
    token = (await register(client, sid, "ann@example.org", "Ann Lee")).json()["token"]
    url = f"/api/registrations/{token}/invite.ics"
    files: InviteFiles = app.state.invite_files
    first, again = await client.get(url), await client.get(url)
    assert first.status_code == again.status_code == 200
    assert first.headers["content-disposition"] == 'attachment; filename="invite.ics"'
    assert first.headers["cache-control"] == "no-store"
    assert again.content == first.content
    assert len(files) == 1
    # The title changes on the webinar alone (no registration or session row changes): a new file.
    update_webinar(db, slug, WebinarInput(title="Knee pain: what PRP can and cannot do", regions=["knee"]))
    renamed = await client.get(url)
    assert "what PRP can and cannot do" in str(
        event_of(icalendar.Calendar.from_ical(renamed.content))["DESCRIPTION"]
    )
    assert len(files) == 2
    # The file read straight off the driver is the one SQLAlchemy's own reading would give.
    with db.session() as session:
        row = (
            session.connection().execute(_SEAT_BY_TOKEN, {"token_hash": token_digest(token)}).mappings().one()
        )
    seat = Seat(**row)
    assert renamed.content == _invite_file(
        seat, manage_page_url(settings.base_url, token), _Organizer.of(settings)
    )
    assert seat.starts_at.utcoffset() == timedelta(0)


async def test_the_invite_cache_is_bounded(client: Client, db: Database, settings: Settings) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    tokens = [(await register(client, sid, f"p{i}@example.org")).json()["token"] for i in range(3)]
    files = InviteFiles(db, settings, size=2)
    built = [files.file_for(token) for token in tokens]
    assert len(files) == 2
    # The first was evicted; built again, it is the same file.
    assert files.file_for(tokens[0]) == built[0]
    assert len(files) == 2
    assert len(set(built)) == 3


async def test_unknown_or_altered_tokens_get_the_same_404(client: Client, session_id: int) -> None:
    token = (await register(client, session_id, "ann@example.org")).json()["token"]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    answers = []
    for candidate in (altered, "x", "a" * 500, registration_token("another-key", "uid@x")):
        for method, url in (
            ("GET", f"/api/registrations/{candidate}"),
            ("DELETE", f"/api/registrations/{candidate}"),
            ("GET", f"/api/registrations/{candidate}/invite.ics"),
        ):
            response = await client.request(method, url)
            assert response.status_code == 404, (method, url, response.text)
            answers.append(response.json()["detail"])
    assert len(set(answers)) == 1
    assert (await client.get(f"/api/registrations/{token}")).json()["status"] == "confirmed"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ann@example.org"},
        {"name": "", "email": "ann@example.org"},
        {"name": "   ", "email": "ann@example.org"},
        {"name": "Ann", "email": "not an address"},
        {"name": "Ann", "email": "ann@example.org\r\nBcc: victim@example.org"},
        {"name": "Ann", "email": "ann@@example.org"},
        {"name": "x" * 201, "email": "ann@example.org"},
        {"name": "Ann", "email": "ann@example.org", "admin": True},
        {"name": 7, "email": "ann@example.org"},
    ],
)
async def test_bad_input_gets_a_400_that_says_what_to_fix(
    client: Client, db: Database, session_id: int, body: dict[str, Any]
) -> None:
    response = await client.post(f"/api/sessions/{session_id}/registrations", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert registrations(db, session_id) == []


async def test_a_name_cannot_add_a_mail_header(
    client: Client, db: Database, session_id: int, settings: Settings
) -> None:
    response = await register(client, session_id, "ann@example.org", name="Ann\r\nBcc: victim@example.org")
    assert response.status_code == 201
    # Line breaks in a name are only spaces: the name stays one line in every header it reaches.
    assert response.json()["name"] == "Ann Bcc: victim@example.org"
    [mail] = outbox(db, "confirmed")
    message = parsed(mail)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == "ann@example.org"
    assert len(message.get_all("To") or []) == 1


async def test_closed_and_unknown_sessions(client: Client, db: Database, settings: Settings) -> None:
    slug = make_webinar(db)
    cancelled = make_session(db, slug)
    cancel_session(db, settings, cancelled)
    started = make_session(db, slug)
    with db.write() as session:
        session.exec(
            update(WebinarSession)
            .where(col(WebinarSession.id) == started)
            .values(starts_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    hidden = make_session(db, make_webinar(db, "Draft webinar", published=False))
    assert (await register(client, cancelled, "a@example.org")).status_code == 409
    assert "cancelled" in (await register(client, cancelled, "a@example.org")).json()["detail"]
    assert (await register(client, started, "a@example.org")).status_code == 409
    assert (await register(client, hidden, "a@example.org")).status_code == 404
    assert (await register(client, 999_999, "a@example.org")).status_code == 404


async def test_limits_per_address_and_per_session_answer_429(
    client: Client, db: Database, app: Litestar
) -> None:
    app.state.registration_limits = RegistrationLimits(per_email_per_day=2, per_session_per_minute=3)
    slug = make_webinar(db)
    sessions = [make_session(db, slug, capacity=10) for _ in range(3)]
    assert (await register(client, sessions[0], "ann@example.org")).status_code == 201
    assert (await register(client, sessions[1], "ann@example.org")).status_code == 201
    third = await register(client, sessions[2], "ann@example.org")
    assert third.status_code == 429
    assert "24 hours" in third.json()["detail"]
    assert third.headers["retry-after"]
    # A repeat of an existing registration is not a new one: it is answered, not limited.
    assert (await register(client, sessions[0], "ann@example.org")).status_code == 200
    for i in range(2):
        assert (await register(client, sessions[2], f"p{i}@example.org")).status_code == 201
    assert (await register(client, sessions[2], "p3@example.org")).status_code == 201
    flood = await register(client, sessions[2], "p4@example.org")
    assert flood.status_code == 429
    assert "minute" in flood.json()["detail"]
    # Cancelling does not refill the address's budget: every registration sent mail.
    token = (await register(client, sessions[1], "bob@example.org")).json()["token"]
    await client.delete(f"/api/registrations/{token}")
    assert (await register(client, sessions[1], "bob@example.org")).status_code == 201
    assert (await register(client, sessions[0], "bob@example.org")).status_code == 429


# --- cancelling and the waitlist ------------------------------------------------------------------


async def test_cancelling_a_seat_promotes_the_first_waitlisted_person(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    tokens = [(await register(client, sid, f"p{i}@example.org")).json()["token"] for i in range(3)]
    cancelled = await client.delete(f"/api/registrations/{tokens[0]}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["join_url"] is None
    first, second = [(await client.get(f"/api/registrations/{t}")).json() for t in tokens[1:]]
    assert (first["status"], first["join_url"], first["waitlist_position"]) == ("confirmed", JOIN, None)
    assert (second["status"], second["waitlist_position"]) == ("waitlisted", 1)
    assert seats(db, sid) == (1, 1)
    [cancel_mail] = outbox(db, "cancelled")
    [promoted_mail] = outbox(db, "promoted")
    assert cancel_mail.recipient == "p0@example.org"
    assert promoted_mail.recipient == "p1@example.org"
    cancel_ics = invite_of(cancel_mail)
    assert cancel_ics is not None
    assert cancel_ics["METHOD"] == "CANCEL"
    assert event_of(cancel_ics)["SEQUENCE"] == 1
    assert event_of(cancel_ics)["STATUS"] == "CANCELLED"
    promoted_ics = invite_of(promoted_mail)
    assert promoted_ics is not None
    assert promoted_ics["METHOD"] == "REQUEST"
    assert JOIN in event_of(promoted_ics)["LOCATION"]
    # The cancelled person's invite.ics now cancels, with the same UID and a higher SEQUENCE.
    ics = await client.get(f"/api/registrations/{tokens[0]}/invite.ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(ics.content)
    assert calendar["METHOD"] == "CANCEL"
    assert event_of(calendar)["UID"] == event_of(cancel_ics)["UID"]
    assert event_of(calendar)["SEQUENCE"] == 1
    assert "LOCATION" not in event_of(calendar)
    # Cancelling again changes nothing and sends nothing.
    again = await client.delete(f"/api/registrations/{tokens[0]}")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    assert len(outbox(db, "cancelled")) == 1
    assert seats(db, sid) == (1, 1)
    # A place that frees with nobody waiting goes back to the pool.
    await client.delete(f"/api/registrations/{tokens[2]}")
    await client.delete(f"/api/registrations/{tokens[1]}")
    assert seats(db, sid) == (0, 1)
    # And the address may register afresh once its registration is cancelled.
    assert (await register(client, sid, "p0@example.org")).status_code == 201


async def test_cancelling_a_waitlisted_place_keeps_the_queue_order(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    tokens = [(await register(client, sid, f"p{i}@example.org")).json()["token"] for i in range(4)]
    await client.delete(f"/api/registrations/{tokens[1]}")
    positions = [
        (await client.get(f"/api/registrations/{t}")).json()["waitlist_position"] for t in tokens[2:]
    ]
    assert positions == [1, 2]
    [mail] = outbox(db, "cancelled")
    assert invite_of(mail) is None
    assert outbox(db, "promoted") == []
    await client.delete(f"/api/registrations/{tokens[0]}")
    assert (await client.get(f"/api/registrations/{tokens[2]}")).json()["status"] == "confirmed"


def test_the_database_refuses_more_seats_than_capacity_and_two_active_registrations(
    db: Database, session_id: int
) -> None:
    with pytest.raises(IntegrityError), db.write() as session:
        session.exec(
            update(WebinarSession)
            .where(col(WebinarSession.id) == session_id)
            .values(seats_taken=col(WebinarSession.capacity) + 1)
        )

    def registration(uid: str, status: str, ticket: int | None = None) -> Registration:
        return Registration(
            session_id=session_id,
            name="A",
            email="a@example.org",
            status=status,
            waitlist_ticket=ticket,
            invite_uid=uid,
            token_hash=uid,
        )

    with db.write() as session:
        session.add(registration("u1", "confirmed"))
    with pytest.raises(IntegrityError), db.write() as session:
        session.add(registration("u2", "waitlisted", 1))
    # A cancelled registration does not block the address.
    with db.write() as session:
        session.add(registration("u3", "cancelled"))


# --- admins' changes ---------------------------------------------------------------------------


async def test_moving_a_session_raises_sequence_and_tells_everyone_affected(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    confirmed, _ = [(await register(client, sid, f"p{i}@example.org")).json() for i in range(2)]
    new_start = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    change = move_session(db, settings, sid, starts_at=new_start, duration_minutes=90)
    assert (change.changed, change.notified) == (True, 2)
    moved = outbox(db, "session_moved")
    assert [m.recipient for m in moved] == ["p0@example.org", "p1@example.org"]
    request = invite_of(moved[0])
    assert request is not None
    assert request["METHOD"] == "REQUEST"
    event = event_of(request)
    assert event["SEQUENCE"] == 1
    assert event["DTSTART"].dt == new_start
    assert event["DTEND"].dt == new_start + timedelta(minutes=90)
    # The waitlisted person hears of the new time, without an invite or the join link.
    assert invite_of(moved[1]) is None
    assert JOIN not in parsed(moved[1]).as_string()
    ics = icalendar.Calendar.from_ical(
        (await client.get(f"/api/registrations/{confirmed['token']}/invite.ics")).content
    )
    assert event_of(ics)["SEQUENCE"] == 1
    assert event_of(ics)["DTSTART"].dt == new_start
    listed = (await client.get(f"/api/webinars/{confirmed['session']['webinar_slug']}")).json()
    assert datetime.fromisoformat(listed["sessions"][0]["starts_at"]) == new_start

    # A new join link goes to seat holders only; the old one is gone everywhere.
    relink = move_session(db, settings, sid, join_url="https://meet.example/j/new-room")
    assert relink.notified == 1
    [relinked] = outbox(db, "session_moved")[2:]
    assert relinked.recipient == "p0@example.org"
    relinked_ics = invite_of(relinked)
    assert relinked_ics is not None
    assert event_of(relinked_ics)["SEQUENCE"] == 2
    assert "new-room" in event_of(relinked_ics)["LOCATION"]
    assert (
        (await client.get(f"/api/registrations/{confirmed['token']}")).json()["join_url"].endswith("new-room")
    )

    # A display zone alone changes no calendar: nothing is sent, no SEQUENCE rises.
    rezone = move_session(db, settings, sid, timezone="America/Chicago")
    assert (rezone.changed, rezone.notified) == (True, 0)
    assert len(outbox(db, "session_moved")) == 3
    unchanged = move_session(db, settings, sid, starts_at=new_start)
    assert (unchanged.changed, unchanged.notified) == (False, 0)
    with pytest.raises(InvalidInput) as bad:
        move_session(db, settings, sid, starts_at=datetime.now(UTC) - timedelta(days=1), timezone="Mars/Base")
    assert set(bad.value.errors) == {"starts_at", "timezone"}


async def test_cancelling_a_session_cancels_and_tells_every_registrant(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    tokens = [(await register(client, sid, f"p{i}@example.org")).json()["token"] for i in range(2)]
    change = cancel_session(db, settings, sid)
    assert (change.changed, change.notified) == (True, 2)
    mails = outbox(db, "session_cancelled")
    assert [m.recipient for m in mails] == ["p0@example.org", "p1@example.org"]
    cancel_ics = invite_of(mails[0])
    assert cancel_ics is not None
    assert cancel_ics["METHOD"] == "CANCEL"
    assert event_of(cancel_ics)["SEQUENCE"] == 1
    assert invite_of(mails[1]) is None
    for token in tokens:
        body = (await client.get(f"/api/registrations/{token}")).json()
        assert (body["status"], body["session"]["status"], body["join_url"]) == (
            "cancelled",
            "cancelled",
            None,
        )
    ics = icalendar.Calendar.from_ical(
        (await client.get(f"/api/registrations/{tokens[0]}/invite.ics")).content
    )
    assert ics["METHOD"] == "CANCEL"
    assert cancel_session(db, settings, sid).changed is False
    assert len(outbox(db, "session_cancelled")) == 2
    with pytest.raises(SessionLocked):
        move_session(db, settings, sid, join_url="https://meet.example/j/other")


async def test_more_capacity_promotes_the_waitlist_in_order(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    for i in range(4):
        await register(client, sid, f"p{i}@example.org")
    change = change_capacity(db, settings, sid, 3)
    assert change.notified == 2
    assert [m.recipient for m in outbox(db, "promoted")] == ["p1@example.org", "p2@example.org"]
    assert seats(db, sid) == (3, 3)
    attendees = list_attendees(db, sid)
    assert [(a.email, a.status, a.waitlist_position) for a in attendees] == [
        ("p0@example.org", "confirmed", None),
        ("p1@example.org", "confirmed", None),
        ("p2@example.org", "confirmed", None),
        ("p3@example.org", "waitlisted", 1),
    ]
    with pytest.raises(InvalidInput):
        change_capacity(db, settings, sid, 2)


# --- reminders -----------------------------------------------------------------------------------


async def test_reminders_are_queued_with_the_seat_and_follow_every_change(
    client: Client, db: Database, settings: Settings
) -> None:
    slug = make_webinar(db)
    sid = make_session(db, slug, capacity=1, starts_in=timedelta(days=3))
    tokens = [(await register(client, sid, f"p{i}@example.org")).json()["token"] for i in range(2)]
    starts_at = seats_row(db, sid).starts_at
    # One reminder, for the seat holder only, held back until a day (REMINDER_HOURS) before.
    [reminder] = outbox(db, "reminder")
    assert (reminder.recipient, reminder.status) == ("p0@example.org", "queued")
    assert reminder.send_after == reminder.next_attempt_at == starts_at - timedelta(hours=24)
    assert JOIN in parsed(reminder).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    calendar = invite_of(reminder)
    assert calendar is not None
    assert (calendar["METHOD"], event_of(calendar)["SEQUENCE"]) == ("REQUEST", 0)
    # Its DTSTAMP is when it goes out, so it is newer than the confirmation it repeats.
    assert event_of(calendar)["DTSTAMP"].dt == reminder.send_after.replace(microsecond=0)

    # The session moves: the reminder for the old time is withdrawn, one for the new time queued.
    new_start = starts_at + timedelta(days=2)
    move_session(db, settings, sid, starts_at=new_start)
    old, new = outbox(db, "reminder")
    assert (old.status, new.status, new.recipient) == ("cancelled", "queued", "p0@example.org")
    assert new.send_after == new_start - timedelta(hours=24)
    calendar = invite_of(new)
    assert calendar is not None
    assert (event_of(calendar)["SEQUENCE"], event_of(calendar)["DTSTART"].dt) == (1, new_start)

    # p0 cancels: their reminder goes with the seat; p1 moves up and gets a reminder of their own.
    await client.delete(f"/api/registrations/{tokens[0]}")
    assert [(r.recipient, r.status) for r in outbox(db, "reminder")] == [
        ("p0@example.org", "cancelled"),
        ("p0@example.org", "cancelled"),
        ("p1@example.org", "queued"),
    ]

    # Inside the window the confirmation says all a reminder would: none is queued.
    soon = make_session(db, slug, starts_in=timedelta(hours=20))
    await register(client, soon, "p2@example.org")
    assert [m.kind for m in outbox(db) if m.session_id == soon] == ["confirmed"]
    # settings.reminder_hours decides the window.
    later = make_session(db, slug, starts_in=timedelta(days=5))
    await register(client, later, "p3@example.org")
    move_session(db, settings.with_(reminder_hours=24 * 10), later, starts_at=new_start + timedelta(days=1))
    assert [(m.kind, m.status) for m in outbox(db) if m.session_id == later] == [
        ("confirmed", "cancelled"),
        ("reminder", "cancelled"),
        ("session_moved", "queued"),
    ]


def seats_row(db: Database, session_id: int) -> WebinarSession:
    with db.session() as session:
        row = session.get(WebinarSession, session_id)
        assert row is not None
        return row


def test_times_are_stored_in_utc_and_read_back_aware(db: Database, session_id: int) -> None:
    row = seats_row(db, session_id)
    assert row.starts_at.utcoffset() == timedelta(0)
    with db.session() as session:
        [raw] = session.exec(text("SELECT starts_at FROM webinar_session")).one()  # type: ignore[call-overload]
    if isinstance(raw, datetime):  # PostgreSQL: timestamptz
        assert raw == row.starts_at
    else:  # SQLite: naive UTC text, which sorts and compares as time does
        assert raw.startswith(row.starts_at.strftime("%Y-%m-%d %H:%M:%S"))
