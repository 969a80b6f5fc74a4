"""The outbox as admins see it: each e-mail's delivery state, and sending a failed one again.

Delivery is real: the app's outbox worker talks SMTP to aiosmtpd on loopback, which is told to
refuse (550, 451) when a test needs a failure. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from accounts.guards import CSRF_HEADER
from core.db import Database
from core.settings import Settings
from tests.booking.test_lifecycle_mail import Mailroom, by_recipient, invite
from tests.booking.test_registration import make_session, make_webinar, register
from tests.mailserver import MailServer

Client = AsyncTestClient[Litestar]
API = "/api/admin"
# Inside the reminder window: each registration queues its one e-mail and no reminder.
SOON = timedelta(hours=12)


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


async def outbox(client: Client, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/outbox", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def send_all(mailroom: Mailroom) -> None:
    while await mailroom.worker.run_once():
        pass


async def test_the_outbox_shows_each_state_and_a_failed_message_can_be_sent_again(
    admin_client: Client, db: Database, smtp_server: MailServer, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5, starts_in=SOON)
    other = make_session(db, make_webinar(db, "Back pain basics", regions=["lower-spine"], conditions=[]))
    # Ann's confirmation is refused for good, Bob's goes through, Cleo's meets a busy server.
    await register(admin_client, sid, "ann@example.org", "Ann Lee")
    smtp_server.answer(550, "5.1.1 Mailbox unavailable", at="RCPT")
    await send_all(mailroom)
    smtp_server.accept()
    await register(admin_client, sid, "bob@example.org", "Bob Roe")
    await send_all(mailroom)
    await register(admin_client, sid, "cleo@example.org", "Cleo Poe")
    smtp_server.answer(451, "4.3.0 Try again later")
    await send_all(mailroom)
    smtp_server.accept()
    # Dan's is written to the outbox but the worker has not run yet.
    await register(admin_client, sid, "dan@example.org", "Dan Fox")
    assert len(smtp_server.messages) == 1

    items = await outbox(admin_client)
    states = {item["recipient"]: item["status"] for item in items}
    assert states == {
        "dan@example.org": "queued",
        "cleo@example.org": "retrying",
        "bob@example.org": "sent",
        "ann@example.org": "failed",
    }
    # Newest first, the state of each, and never the message itself.
    assert [i["recipient"] for i in items] == list(states)
    assert all("message" not in item for item in items)
    failed = next(i for i in items if i["status"] == "failed")
    assert failed["kind"] == "confirmed"
    assert failed["session_id"] == sid
    assert failed["attempts"] == 1
    assert "550" in failed["last_error"]
    assert "knee" not in failed["subject"].lower()
    retrying = next(i for i in items if i["status"] == "retrying")
    assert "451" in retrying["last_error"]
    assert datetime.fromisoformat(retrying["next_attempt_at"]) > datetime.now(UTC)
    assert [i["id"] for i in await outbox(admin_client, status="failed")] == [failed["id"]]
    assert len(await outbox(admin_client, session_id=sid)) == 4
    assert await outbox(admin_client, session_id=other) == []
    first, second = (
        await outbox(admin_client, limit=2),
        await outbox(admin_client, limit=2, before_id=items[1]["id"]),
    )
    assert [i["id"] for i in first + second] == [i["id"] for i in items]
    assert (await admin_client.get(f"{API}/outbox", params={"status": "lost"})).status_code == 400

    # Only failed or sent messages can be sent again.
    queued = next(i for i in items if i["status"] == "queued")
    busy = await admin_client.post(f"{API}/outbox/{queued['id']}/resend")
    assert busy.status_code == 409, busy.text
    assert (await admin_client.post(f"{API}/outbox/987654/resend")).status_code == 404

    again = await admin_client.post(f"{API}/outbox/{failed['id']}/resend")
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["attempts"], again.json()["last_error"]) == (
        "queued",
        0,
        None,
    )
    await send_all(mailroom)
    delivered = by_recipient(smtp_server.messages[1:])
    assert set(delivered) == {"ann@example.org", "dan@example.org"}
    method, event = invite(delivered["ann@example.org"])
    assert (method, event["SEQUENCE"]) == ("REQUEST", 0)
    assert [i["status"] for i in await outbox(admin_client, status="sent")] == ["sent"] * 3

    [entry] = [e for e in await audit(admin_client) if e["action"] == "outbox.resend"]
    assert (entry["entity"], entry["entity_id"]) == ("outbox_message", str(failed["id"]))
    assert (entry["before"]["status"], entry["after"]["status"]) == ("failed", "queued")
    assert "550" in entry["before"]["last_error"]
    # Reading the outbox (who was mailed about which session) is recorded too.
    views = [e for e in await audit(admin_client) if e["action"] == "outbox.view"]
    assert {e["entity_id"] for e in views} == {"all", f"session-{sid}", f"session-{other}"}
    assert {"status": "failed", "rows": 1} in [e["after"] for e in views]


async def test_a_message_a_later_one_replaced_is_not_sent_again(
    admin_client: Client, db: Database, smtp_server: MailServer, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5, starts_in=SOON)
    await register(admin_client, sid, "ann@example.org", "Ann Lee")
    smtp_server.answer(550, "5.1.1 Mailbox unavailable", at="RCPT")
    await send_all(mailroom)
    smtp_server.accept()
    [failed] = await outbox(admin_client, status="failed")

    # The session moves: Ann's new invite replaces the old one, which must not go out any more.
    new_start = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    moved = await admin_client.patch(f"{API}/sessions/{sid}", json={"starts_at": new_start.isoformat()})
    assert moved.status_code == 200, moved.text
    await send_all(mailroom)
    [update] = await outbox(admin_client, status="sent")
    assert update["kind"] == "session_moved"

    stale = await admin_client.post(f"{API}/outbox/{failed['id']}/resend")
    assert stale.status_code == 409, stale.text
    assert f"message {update['id']}" in stale.json()["detail"]
    assert (await outbox(admin_client, status="failed"))[0]["id"] == failed["id"]

    # The current one can be sent again (a patient who deleted it), and arrives the same.
    assert (await admin_client.post(f"{API}/outbox/{update['id']}/resend")).status_code == 200
    await send_all(mailroom)
    first, second = smtp_server.messages
    assert first.message["Message-ID"] == second.message["Message-ID"]
    method, event = invite(second.message)
    assert (method, event["SEQUENCE"], event["DTSTART"].dt) == ("REQUEST", 1, new_start)


async def test_resending_needs_the_csrf_token(
    admin_client: Client, db: Database, smtp_server: MailServer, mailroom: Mailroom
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5, starts_in=SOON)
    await register(admin_client, sid, "ann@example.org")
    smtp_server.answer(550, "5.1.1 Mailbox unavailable", at="RCPT")
    await send_all(mailroom)
    [failed] = await outbox(admin_client, status="failed")
    token = admin_client.headers.pop(CSRF_HEADER)
    assert (await admin_client.post(f"{API}/outbox/{failed['id']}/resend")).status_code == 403
    admin_client.headers[CSRF_HEADER] = token
    assert [i["status"] for i in await outbox(admin_client)] == ["failed"]


async def audit(client: Client) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/audit", params={"limit": 500})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
