"""Admins' webinar work through the API: webinars, sessions, attendee lists, hand moves, the audit log.

Mail goes through the real outbox worker to a real SMTP server on loopback and is read the way a
mail client and a calendar would read it. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from accounts.guards import CSRF_HEADER
from booking.admin_service import attendees_csv, spreadsheet_safe
from booking.models import Registration
from booking.schemas import AttendeeOut
from booking.service import registration_token
from core.db import Database
from core.settings import Settings
from tests.booking.test_lifecycle_mail import Mailroom, body, by_recipient, has_invite, invite
from tests.booking.test_registration import JOIN, make_session, make_webinar, register
from tests.factories import add_provider
from tests.mailserver import MailServer

Client = AsyncTestClient[Litestar]
API = "/api/admin"
CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def settings(settings: Settings, smtp_server: MailServer) -> Settings:
    return settings.with_(
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        background_workers=False,
        mail_from="Test Clinic Network <webinars@clinic.example>",
    )


@pytest.fixture
def mailroom(db: Database, settings: Settings, smtp_server: MailServer) -> Mailroom:
    return Mailroom(db, settings, smtp_server)


def in_days(days: float, zone: ZoneInfo = CHICAGO) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).astimezone(zone)


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def audit(client: Client, **params: Any) -> list[dict[str, Any]]:
    page = await ok(await client.get(f"{API}/audit", params={"limit": 500, **params}))
    items: list[dict[str, Any]] = page["items"]
    return items


async def session_of(client: Client, session_id: int) -> Any:
    return await ok(await client.get(f"{API}/sessions/{session_id}"))


def private_token(db: Database, settings: Settings, registration_id: int) -> str:
    """The token of the person's own manage link (as their e-mails carry it)."""
    with db.session() as session:
        row = session.get(Registration, registration_id)
        assert row is not None
        return registration_token(settings.secret_key, row.invite_uid)


async def attendees(client: Client, session_id: int, **params: Any) -> Any:
    return await ok(await client.get(f"{API}/sessions/{session_id}/attendees", params=params))


# --- webinars and sessions ------------------------------------------------------------------


async def test_a_webinar_is_created_unpublished_then_edited_and_published_each_step_audited(
    admin_client: Client, db: Database
) -> None:
    ada = add_provider(db, "Ada Elbowright", conditions=["tennis-elbow"])
    # Written behind the app's back: apply it to the search index now rather than within the
    # refresh period, so the public page below can name the presenter however slow the machine.
    await admin_client.app.state.directory.refresh()
    created = await ok(
        await admin_client.post(
            f"{API}/webinars",
            json={
                "title": "Tennis elbow without surgery",
                "description": "PRP and other options.",
                "presenter_ids": [ada.id],
                "regions": ["elbow"],
                "conditions": ["tennis-elbow"],
            },
        ),
        201,
    )
    slug = created["slug"]
    assert (slug, created["published"], created["sessions"]) == ("tennis-elbow-without-surgery", False, [])
    starts = in_days(12)
    added = await ok(
        await admin_client.post(
            f"{API}/webinars/{slug}/sessions",
            json={
                "starts_at": starts.isoformat(),
                "timezone": "America/Chicago",
                "capacity": 30,
                "join_url": JOIN,
                "duration_minutes": 45,
            },
        ),
        201,
    )
    sid = added["id"]
    assert datetime.fromisoformat(added["starts_at"]) == starts
    assert datetime.fromisoformat(added["starts_at"]).utcoffset() == starts.utcoffset()
    assert (added["capacity"], added["seats_taken"], added["status"], added["join_url"]) == (
        30,
        0,
        "scheduled",
        JOIN,
    )
    # Unpublished: the public neither lists it nor opens it, and nobody can register.
    assert (await admin_client.get(f"/api/webinars/{slug}")).status_code == 404
    assert (await register(admin_client, sid, "early@example.org")).status_code == 404

    published = await ok(await admin_client.post(f"{API}/webinars/{slug}/publish"))
    assert published["published"] is True
    public = await ok(await admin_client.get(f"/api/webinars/{slug}"))
    assert [s["id"] for s in public["sessions"]] == [sid]
    assert [p["name"] for p in public["presenters"]] == ["Ada Elbowright"]

    await ok(await admin_client.patch(f"{API}/webinars/{slug}", json={"title": "Tennis elbow: options"}))
    # The same title again changes nothing, so it is not an audited change.
    await ok(await admin_client.patch(f"{API}/webinars/{slug}", json={"title": "Tennis elbow: options"}))
    replaced = await ok(
        await admin_client.put(
            f"{API}/webinars/{slug}",
            json={
                "title": "Tennis and golfer's elbow",
                "regions": ["elbow"],
                "conditions": ["golfers-elbow"],
            },
        )
    )
    assert (replaced["presenter_ids"], replaced["conditions"], replaced["published"]) == (
        [],
        ["golfers-elbow"],
        True,
    )
    assert (await ok(await admin_client.get(f"/api/webinars/{slug}")))["title"] == "Tennis and golfer's elbow"
    await ok(await admin_client.post(f"{API}/webinars/{slug}/unpublish"))
    assert (await admin_client.get(f"/api/webinars/{slug}")).status_code == 404
    listed = await ok(await admin_client.get(f"{API}/webinars"))
    assert [(w["slug"], w["published"], w["upcoming_sessions"]) for w in listed] == [(slug, False, 1)]

    entries = await audit(admin_client, entity="webinar", entity_id=slug)
    assert [e["action"] for e in entries] == [
        "webinar.unpublish",
        "webinar.update",
        "webinar.update",
        "webinar.publish",
        "webinar.create",
    ]
    assert all(e["actor"] == "admin@clinic.example" for e in entries)
    unpublish, put, patch, publish, create = entries
    assert create["before"] is None
    assert create["after"] == {
        "slug": slug,
        "title": "Tennis elbow without surgery",
        "description": "PRP and other options.",
        "published": False,
        "presenter_ids": [ada.id],
        "regions": ["elbow"],
        "conditions": ["tennis-elbow"],
    }
    assert (publish["before"]["published"], publish["after"]["published"]) == (False, True)
    assert (patch["before"]["title"], patch["after"]["title"]) == (
        "Tennis elbow without surgery",
        "Tennis elbow: options",
    )
    assert (put["before"]["presenter_ids"], put["after"]["presenter_ids"]) == ([ada.id], [])
    assert (put["before"]["conditions"], put["after"]["conditions"]) == (["tennis-elbow"], ["golfers-elbow"])
    assert (unpublish["before"]["published"], unpublish["after"]["published"]) == (True, False)
    [session_created] = await audit(admin_client, entity="session", entity_id=str(sid))
    assert session_created["action"] == "session.create"
    assert session_created["before"] is None
    assert session_created["after"]["capacity"] == 30
    assert session_created["after"]["duration_minutes"] == 45


async def test_bad_input_is_a_4xx_that_says_what_to_fix_and_writes_nothing(
    admin_client: Client, db: Database
) -> None:
    slug = make_webinar(db)
    sid = make_session(db, slug, capacity=1)
    assert (await register(admin_client, sid, "ann@example.org")).status_code == 201
    entries_before = len(await audit(admin_client))

    async def refused(method: str, url: str, status: int, says: str, **kw: Any) -> None:
        response = await admin_client.request(method, url, **kw)
        assert response.status_code == status, (url, response.text)
        # Litestar names a malformed field in `extra`; the services say it in `detail`.
        assert says in response.text, response.text

    await refused("POST", f"{API}/webinars", 400, "colour", json={"title": "Hips", "colour": "red"})
    await refused(
        "POST", f"{API}/webinars", 400, "Unknown region", json={"title": "Hips", "regions": ["hipp"]}
    )
    await refused(
        "POST", f"{API}/webinars", 400, "not a provider", json={"title": "Hips", "presenter_ids": [999]}
    )
    await refused("POST", f"{API}/webinars", 409, "taken", json={"title": "Hips", "slug": slug})
    await refused("PATCH", f"{API}/webinars/nope", 404, "No webinar 'nope'", json={"title": "x"})
    session_in = {"timezone": "America/Chicago", "capacity": 10, "join_url": JOIN}
    await refused(
        "POST",
        f"{API}/webinars/{slug}/sessions",
        400,
        "future",
        json={**session_in, "starts_at": in_days(-1).isoformat()},
    )
    await refused(
        "POST",
        f"{API}/webinars/{slug}/sessions",
        400,
        "UTC offset",
        json={**session_in, "starts_at": in_days(3).replace(tzinfo=None).isoformat()},
    )
    await refused(
        "POST",
        f"{API}/webinars/{slug}/sessions",
        400,
        "IANA",
        json={**session_in, "timezone": "Mars/Olympus", "starts_at": in_days(3).isoformat()},
    )
    await refused(
        "POST",
        f"{API}/webinars/{slug}/sessions",
        400,
        "join link",
        json={**session_in, "join_url": "javascript:alert(1)", "starts_at": in_days(3).isoformat()},
    )
    await refused("PATCH", f"{API}/sessions/{sid}", 400, "at least one", json={})
    await refused("PATCH", f"{API}/sessions/{sid}", 400, "`int` >= 1", json={"capacity": 0})
    await refused(
        "PATCH", f"{API}/sessions/{sid}", 400, "future", json={"starts_at": in_days(-2).isoformat()}
    )
    # A move and a capacity change together are one change: the bad half undoes the good one.
    await refused(
        "PATCH",
        f"{API}/sessions/{sid}",
        400,
        "IANA",
        json={"starts_at": in_days(20).isoformat(), "timezone": "Nowhere/Land"},
    )
    for method, url in [
        ("GET", f"{API}/sessions/98765"),
        ("PATCH", f"{API}/sessions/98765"),
        ("POST", f"{API}/sessions/98765/cancel"),
        ("GET", f"{API}/sessions/98765/attendees"),
        ("GET", f"{API}/sessions/98765/attendees.csv"),
        ("POST", f"{API}/registrations/98765/remove"),
        ("POST", f"{API}/registrations/98765/promote"),
    ]:
        await refused(method, url, 404, "98765", json={"capacity": 5} if method == "PATCH" else None)

    assert len(await audit(admin_client)) == entries_before
    session = await session_of(admin_client, sid)
    assert (session["capacity"], session["sequence"], session["timezone"]) == (1, 0, "America/New_York")


async def test_changes_need_the_csrf_token_and_without_it_nothing_changes(
    admin_client: Client, db: Database
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    await register(admin_client, sid, "ann@example.org")
    await register(admin_client, sid, "bob@example.org")
    [_, bob] = (await attendees(admin_client, sid))["items"]
    token = admin_client.headers.pop(CSRF_HEADER)
    for method, url, payload in [
        ("POST", f"{API}/webinars", {"title": "Hips"}),
        ("PATCH", f"{API}/sessions/{sid}", {"capacity": 5}),
        ("POST", f"{API}/sessions/{sid}/cancel", None),
        ("POST", f"{API}/registrations/{bob['id']}/promote", None),
        ("POST", f"{API}/registrations/{bob['id']}/remove", None),
    ]:
        response = await admin_client.request(method, url, json=payload)
        assert response.status_code == 403, (url, response.text)
    admin_client.headers[CSRF_HEADER] = token
    assert len(await ok(await admin_client.get(f"{API}/webinars"))) == 1
    session = await session_of(admin_client, sid)
    assert (session["capacity"], session["status"], session["waitlisted"]) == (1, "scheduled", 1)


# --- moving and cancelling: every registrant hears, through real SMTP -------------------------


async def test_a_moved_session_reaches_every_registrant_with_a_higher_sequence(
    admin_client: Client, db: Database, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=2, starts_in=timedelta(days=6))
    for email in ("ann@example.org", "bob@example.org", "cleo@example.org"):
        assert (await register(admin_client, sid, email)).status_code == 201
    first = by_recipient(await mailroom.deliver(3))
    uids = {email: str(invite(first[email])[1]["UID"]) for email in ("ann@example.org", "bob@example.org")}
    before = await session_of(admin_client, sid)

    new_start = in_days(9)
    moved = await ok(
        await admin_client.patch(f"{API}/sessions/{sid}", json={"starts_at": new_start.isoformat()})
    )
    assert (moved["changed"], moved["notified"], moved["session"]["sequence"]) == (True, 3, 1)
    assert datetime.fromisoformat(moved["session"]["starts_at"]) == new_start

    mail = by_recipient(await mailroom.deliver(3))
    assert set(mail) == {"ann@example.org", "bob@example.org", "cleo@example.org"}
    for email in ("ann@example.org", "bob@example.org"):
        method, event = invite(mail[email])
        assert (method, str(event["UID"]), event["SEQUENCE"]) == ("REQUEST", uids[email], 1)
        assert event["DTSTART"].dt == new_start
        assert str(event["ATTENDEE"]) == f"mailto:{email}"
        others = {"ann@example.org", "bob@example.org", "cleo@example.org"} - {email}
        assert not any(other in mail[email].as_string() for other in others)
        assert JOIN in body(mail[email])
    # The waitlist hears the new time, without an invite or the join link.
    assert not has_invite(mail["cleo@example.org"])
    assert JOIN not in mail["cleo@example.org"].as_string()

    # A new join link alone goes to seat holders only, again with SEQUENCE raised.
    relinked = await ok(
        await admin_client.patch(
            f"{API}/sessions/{sid}", json={"join_url": "https://meet.example/j/new-room"}
        )
    )
    assert relinked["notified"] == 2
    mail = by_recipient(await mailroom.deliver(2))
    assert set(mail) == {"ann@example.org", "bob@example.org"}
    assert all(invite(m)[1]["SEQUENCE"] == 2 for m in mail.values())
    assert all("https://meet.example/j/new-room" in body(m) for m in mail.values())

    updates = await audit(admin_client, entity="session", entity_id=str(sid), action="session.update")
    assert len(updates) == 2
    relink, move = updates
    assert move["before"] == before
    assert datetime.fromisoformat(move["after"]["starts_at"]) == new_start
    assert (move["before"]["sequence"], move["after"]["sequence"]) == (0, 1)
    assert (relink["before"]["join_url"], relink["after"]["join_url"]) == (
        JOIN,
        "https://meet.example/j/new-room",
    )


async def test_a_cancelled_session_reaches_every_registrant_and_then_stays_cancelled(
    admin_client: Client, db: Database, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=2, starts_in=timedelta(days=6))
    for email in ("ann@example.org", "bob@example.org", "cleo@example.org"):
        await register(admin_client, sid, email)
    first = by_recipient(await mailroom.deliver(3))
    uids = {email: str(invite(first[email])[1]["UID"]) for email in ("ann@example.org", "bob@example.org")}

    cancelled = await ok(await admin_client.post(f"{API}/sessions/{sid}/cancel"))
    assert (cancelled["changed"], cancelled["notified"], cancelled["session"]["status"]) == (
        True,
        3,
        "cancelled",
    )
    assert cancelled["session"]["seats_taken"] == 0
    mail = by_recipient(await mailroom.deliver(3))
    for email in ("ann@example.org", "bob@example.org"):
        method, event = invite(mail[email])
        assert (method, str(event["UID"]), event["SEQUENCE"], event["STATUS"]) == (
            "CANCEL",
            uids[email],
            1,
            "CANCELLED",
        )
    assert not has_invite(mail["cleo@example.org"])
    assert "cancelled" in body(mail["cleo@example.org"])
    assert {a["status"] for a in (await attendees(admin_client, sid))["items"]} == {"cancelled"}

    # Cancelling again changes nothing and tells nobody; a cancelled session cannot be moved.
    again = await ok(await admin_client.post(f"{API}/sessions/{sid}/cancel"))
    assert (again["changed"], again["notified"]) == (False, 0)
    moved = await admin_client.patch(f"{API}/sessions/{sid}", json={"starts_at": in_days(8).isoformat()})
    assert moved.status_code == 409, moved.text
    assert "cancelled" in moved.json()["detail"]
    assert await mailroom.worker.run_once() == 0
    [entry] = await audit(admin_client, entity="session", entity_id=str(sid), action="session.cancel")
    assert (entry["before"]["status"], entry["after"]["status"]) == ("scheduled", "cancelled")
    assert (entry["before"]["seats_taken"], entry["after"]["seats_taken"]) == (2, 0)


async def test_more_capacity_seats_the_waitlist_in_order_and_less_than_taken_is_refused(
    admin_client: Client, db: Database, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    for email in ("ann@example.org", "bob@example.org", "cleo@example.org", "dan@example.org"):
        await register(admin_client, sid, email)
    await mailroom.deliver(4)
    grown = await ok(await admin_client.patch(f"{API}/sessions/{sid}", json={"capacity": 3}))
    assert (grown["notified"], grown["session"]["seats_taken"], grown["session"]["waitlisted"]) == (2, 3, 1)
    mail = by_recipient(await mailroom.deliver(2))
    assert set(mail) == {"bob@example.org", "cleo@example.org"}
    assert all(invite(m)[0] == "REQUEST" for m in mail.values())
    shrunk = await admin_client.patch(f"{API}/sessions/{sid}", json={"capacity": 2})
    assert shrunk.status_code == 400
    assert "at least 3" in shrunk.json()["detail"]
    [entry] = await audit(admin_client, entity="session", entity_id=str(sid), action="session.update")
    assert (entry["before"]["capacity"], entry["after"]["capacity"]) == (1, 3)


# --- attendees, by hand -------------------------------------------------------------------------


async def test_removing_a_seat_holder_seats_the_first_on_the_waitlist(
    admin_client: Client, db: Database, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=2)
    for email in ("ann@example.org", "bob@example.org", "cleo@example.org", "dan@example.org"):
        await register(admin_client, sid, email, email.split("@")[0].title())
    first = by_recipient(await mailroom.deliver(4))
    ann_uid = str(invite(first["ann@example.org"])[1]["UID"])
    people = {a["email"]: a for a in (await attendees(admin_client, sid))["items"]}

    removed = await ok(
        await admin_client.post(f"{API}/registrations/{people['ann@example.org']['id']}/remove")
    )
    assert removed["registration"]["status"] == "cancelled"
    # Cleo registered before Dan, so the seat is hers.
    assert removed["promoted"]["email"] == "cleo@example.org"
    assert removed["promoted"]["status"] == "confirmed"
    assert (removed["session"]["seats_taken"], removed["session"]["waitlisted"]) == (2, 1)
    mail = by_recipient(await mailroom.deliver(2))
    method, event = invite(mail["ann@example.org"])
    assert (method, str(event["UID"]), event["SEQUENCE"]) == ("CANCEL", ann_uid, 1)
    assert invite(mail["cleo@example.org"])[0] == "REQUEST"
    assert JOIN in body(mail["cleo@example.org"])

    # Someone on the waitlist is simply taken off it; nobody moves up.
    dropped = await ok(
        await admin_client.post(f"{API}/registrations/{people['dan@example.org']['id']}/remove")
    )
    assert (dropped["registration"]["status"], dropped["promoted"]) == ("cancelled", None)
    assert (dropped["session"]["seats_taken"], dropped["session"]["waitlisted"]) == (2, 0)
    again = await admin_client.post(f"{API}/registrations/{people['dan@example.org']['id']}/remove")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]

    ann = await audit(admin_client, entity="registration", entity_id=str(people["ann@example.org"]["id"]))
    assert [(e["action"], e["before"]["status"], e["after"]["status"]) for e in ann] == [
        ("registration.remove", "confirmed", "cancelled")
    ]
    cleo = await audit(admin_client, entity="registration", entity_id=str(people["cleo@example.org"]["id"]))
    assert [(e["action"], e["before"]["waitlist_position"], e["after"]["status"]) for e in cleo] == [
        ("registration.promote", 1, "confirmed")
    ]


async def test_promoting_by_hand_never_exceeds_capacity(
    admin_client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1, starts_in=timedelta(seconds=3))
    for email in ("ann@example.org", "bob@example.org", "cleo@example.org"):
        assert (await register(admin_client, sid, email)).status_code == 201
    people = {a["email"]: a for a in (await attendees(admin_client, sid))["items"]}
    bob, cleo = people["bob@example.org"]["id"], people["cleo@example.org"]["id"]

    full = await admin_client.post(f"{API}/registrations/{cleo}/promote")
    assert full.status_code == 409
    assert "session is full" in full.json()["detail"]
    # Only someone on the waitlist can be promoted.
    assert (
        await admin_client.post(f"{API}/registrations/{people['ann@example.org']['id']}/promote")
    ).status_code == 409

    # Once the session is under way a freed seat is no longer passed on by itself ...
    starts_at = datetime.fromisoformat((await session_of(admin_client, sid))["starts_at"])
    await asyncio.sleep((starts_at - datetime.now(UTC)).total_seconds() + 0.1)
    ann_token = private_token(db, settings, people["ann@example.org"]["id"])
    assert (await admin_client.delete(f"/api/registrations/{ann_token}")).status_code == 200
    freed = await session_of(admin_client, sid)
    assert (freed["seats_taken"], freed["waitlisted"]) == (0, 2)

    # ... and an admin may hand it to one person: two at once, exactly one gets it.
    answers = await asyncio.gather(
        admin_client.post(f"{API}/registrations/{bob}/promote"),
        admin_client.post(f"{API}/registrations/{cleo}/promote"),
    )
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    winner = next(r.json() for r in answers if r.status_code == 200)
    assert winner["registration"]["status"] == "confirmed"
    after = await session_of(admin_client, sid)
    assert (after["seats_taken"], after["capacity"], after["waitlisted"]) == (1, 1, 1)
    confirmed = [a for a in (await attendees(admin_client, sid))["items"] if a["status"] == "confirmed"]
    assert [a["id"] for a in confirmed] == [winner["registration"]["id"]]
    promotions = await audit(admin_client, action="registration.promote")
    assert [e["entity_id"] for e in promotions] == [str(winner["registration"]["id"])]
    assert (promotions[0]["before"]["status"], promotions[0]["after"]["status"]) == (
        "waitlisted",
        "confirmed",
    )


async def test_attendee_lists_and_exports_are_recorded_and_the_csv_is_formula_safe(
    admin_client: Client, db: Database
) -> None:
    sid = make_session(db, make_webinar(db), capacity=2, timezone="America/Chicago")
    people = [
        ("Zoë Ærø", "zoe@example.org"),
        ('=HYPERLINK("https://evil.example","click")', "+1@example.org"),
        ("@SUM(1+1)", "-2@example.org"),
    ]
    for name, email in people:
        assert (await register(admin_client, sid, email, name)).status_code == 201

    listed = await attendees(admin_client, sid)
    assert listed["counts"] == {"confirmed": 2, "waitlisted": 1, "cancelled": 0}
    assert [(a["email"], a["status"], a["waitlist_position"]) for a in listed["items"]] == [
        ("zoe@example.org", "confirmed", None),
        ("+1@example.org", "confirmed", None),
        ("-2@example.org", "waitlisted", 1),
    ]
    waitlist = await attendees(admin_client, sid, status="waitlisted")
    assert [a["email"] for a in waitlist["items"]] == ["-2@example.org"]
    assert (
        await admin_client.get(f"{API}/sessions/{sid}/attendees", params={"status": "lost"})
    ).status_code == 400

    response = await admin_client.get(f"{API}/sessions/{sid}/attendees.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith(f'attachment; filename="session-{sid}-')
    assert "no-store" in response.headers["cache-control"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["registration_id", "name", "email", "status"]
    assert rows[0][6] == "registered_at (America/Chicago)"
    by_email = {row[2].lstrip("'"): row for row in rows[1:]}
    assert by_email["zoe@example.org"][1:4] == ["Zoë Ærø", "zoe@example.org", "confirmed"]
    assert by_email["+1@example.org"][1:3] == [
        '\'=HYPERLINK("https://evil.example","click")',
        "'+1@example.org",
    ]
    assert by_email["-2@example.org"][1:5] == ["'@SUM(1+1)", "'-2@example.org", "waitlisted", "1"]
    # No cell a spreadsheet would run as a formula.
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)

    entries = await audit(admin_client, entity="session", entity_id=str(sid))
    assert [(e["action"], e["after"]) for e in entries] == [
        ("session.attendees.export", {"format": "csv", "rows": 3}),
        ("session.attendees.view", {"status": "waitlisted", "rows": 1}),
        ("session.attendees.view", {"status": "all", "rows": 3}),
    ]
    assert all(e["actor"] == "admin@clinic.example" and e["before"] is None for e in entries)


def test_spreadsheet_cells_that_would_run_as_formulas_are_quoted() -> None:
    for cell in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx"):
        assert spreadsheet_safe(cell) == "'" + cell
    for cell in ("Ann", "", "1-2", "a=b", "'=kept"):
        assert spreadsheet_safe(cell) == cell
    moment = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)
    row = AttendeeOut(
        id=7,
        name="=cmd|' /C calc'!A0",
        email="ann@example.org",
        status="confirmed",
        waitlist_position=None,
        consent=True,
        created_at=moment,
        confirmed_at=moment,
        cancelled_at=None,
    )
    text = attendees_csv([row], "America/Chicago").decode("utf-8-sig")
    [header, line] = list(csv.reader(io.StringIO(text)))
    assert line == [
        "7",
        "'=cmd|' /C calc'!A0",
        "ann@example.org",
        "confirmed",
        "",
        "yes",
        "2026-07-01 18:30",
        "2026-07-01 18:30",
        "",
    ]
    assert header[-1] == "cancelled_at (America/Chicago)"
