"""A booking change and its e-mails are one transaction, and a crash after the commit loses no mail.

The outbox row is written by the registration's own transaction (DESIGN.md, "Calendar invites"):
it is there the moment the answer is, it rolls back with the registration, and a server killed
between the commit and the send leaves it for the next worker, which sends the same message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import inspect, text
from sqlmodel import col, select

from booking.messages import RENDERERS
from booking.models import Registration
from booking.schemas import RegistrationIn
from booking.service import register as register_in_service
from booking.service import writing
from core.db import Database, make_engine
from core.mail import OutboxMessage, OutboxStatus, OutboxWorker
from core.migrate import upgrade
from core.settings import Settings
from tests.booking.test_lifecycle_mail import body, invite
from tests.booking.test_registration import make_session, make_webinar, parsed, register
from tests.mailserver import Blackhole, MailServer, free_port

Client = AsyncTestClient[Litestar]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No worker: what a test finds in the outbox is what the request's transaction wrote.
    return settings.with_(background_workers=False)


def rows(db: Database) -> list[OutboxMessage]:
    with db.session() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


async def test_the_confirmation_is_in_the_outbox_when_the_answer_arrives(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=1)
    ann = await register(client, sid, "ann@example.org", "Ann Lee")
    bob = await register(client, sid, "bob@example.org", "Bob Roe")
    assert (ann.status_code, bob.status_code) == (201, 201)
    # Nothing ran between the commit and this read: the rows came with the registrations.
    confirmation, reminder, waitlisted = rows(db)
    assert [(r.kind, r.recipient, r.status) for r in (confirmation, reminder, waitlisted)] == [
        ("confirmed", "ann@example.org", OutboxStatus.queued),
        ("reminder", "ann@example.org", OutboxStatus.queued),
        ("waitlisted", "bob@example.org", OutboxStatus.queued),
    ]
    # What they will say is fixed already: the private link the answer gave, the invite's UID.
    message = parsed(confirmation)
    assert ann.json()["manage_url"] in body(message)
    method, event = invite(message)
    with db.session() as session:
        uid = session.exec(
            select(Registration.invite_uid).where(Registration.email == "ann@example.org")
        ).one()
    assert (method, str(event["UID"]), event["SEQUENCE"]) == ("REQUEST", uid, 0)
    assert "number 1 on the waitlist" in body(parsed(waitlisted))


def test_the_outbox_rows_roll_back_with_the_registration(db: Database, settings: Settings) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)

    def register_then_fail() -> None:
        # An enclosing transaction (as admin changes use): the registration's own joins it.
        with writing(db) as session:
            status, _ = register_in_service(
                db, settings, sid, RegistrationIn(name="Ann", email="ann@example.org")
            )
            assert status == 201
            # Inside the transaction, both the registration and its e-mails are there...
            kinds = session.exec(select(OutboxMessage.kind).order_by(col(OutboxMessage.id))).all()
            assert list(kinds) == ["confirmed", "reminder"]
            raise RuntimeError("the request failed after registering")

    with pytest.raises(RuntimeError, match="after registering"):
        register_then_fail()
    # ...and after the rollback neither is.
    with db.session() as session:
        assert session.exec(select(Registration)).all() == []
    assert rows(db) == []


SERVER = """
import sys
import uvicorn
from app import create_app
from core.settings import Settings

url, port, smtp_port, mail_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
settings = Settings(
    database_url=url, base_url=f"http://127.0.0.1:{port}", secret_key="crash-test-secret",
    smtp_host="127.0.0.1", smtp_port=smtp_port, mail_dir=mail_dir, network_name="Test Clinic Network",
    outbox_poll_seconds=0.05, outbox_lease_seconds=3.0, smtp_timeout_seconds=600.0,
)
uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
"""


@pytest.fixture
def doomed_server(
    db: Database, settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The app in a process of its own whose outbox worker mails a server that never answers."""
    blackhole, port = Blackhole(), free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, settings.database_url, str(port), str(blackhole.port), str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()
        blackhole.close()


async def test_a_server_killed_between_commit_and_send_loses_no_mail(
    db: Database,
    settings: Settings,
    smtp_server: MailServer,
    doomed_server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = doomed_server
    sid = make_session(db, make_webinar(db), capacity=5)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post(
            f"/api/sessions/{sid}/registrations", json={"name": "Ann Lee", "email": "ann@example.org"}
        )
    assert answer.status_code == 201, answer.text
    token = answer.json()["token"]
    # Its worker picks the confirmation up and hangs on the silent mail server; then the process dies.
    deadline = time.monotonic() + 30
    while rows(db)[0].status != OutboxStatus.sending:
        assert time.monotonic() < deadline, "the server's worker never claimed the confirmation"
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(process.wait, 10) == -signal.SIGKILL

    [confirmation, reminder] = rows(db)
    assert (confirmation.status, confirmation.message) == (OutboxStatus.sending, None)
    assert reminder.status == OutboxStatus.queued  # due a day before the start, untouched
    assert confirmation.locked_until is not None
    # Another process's worker (here, this test's) sends it once the dead one's claim runs out.
    worker = OutboxWorker(
        db, settings.with_(smtp_host=smtp_server.host, smtp_port=smtp_server.port), renderers=RENDERERS
    )
    await asyncio.sleep(max(confirmation.locked_until.timestamp() - time.time() + 0.05, 0))
    assert await worker.run_once() == 1
    [received] = await smtp_server.wait_for(1)
    assert received.rcpt_tos == ["ann@example.org"]
    assert str(received.message["Message-ID"]) == confirmation.message_id
    # It says what was committed: the link is the one the answer gave (the dead server's).
    assert f"/registrations/{token}" in body(received.message)
    method, event = invite(received.message)
    assert (method, event["SEQUENCE"]) == ("REQUEST", 0)
    [confirmation, reminder] = rows(db)
    assert (confirmation.status, confirmation.attempts) == (OutboxStatus.sent, 2)
    assert reminder.status == OutboxStatus.queued


def test_the_upgrade_refuses_to_drop_mail_a_registration_is_still_owed(database_url: str) -> None:
    # The schema before 0005: the previous version's background mailer wrote owed mail later.
    for revision in ("0002_booking", "0003_outbox"):
        upgrade(database_url, revision)
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO webinar (id, slug, title, description, published, created_at, updated_at) "
                    "VALUES (1, 'w', 'W', '', true, :now, :now)"
                ),
                {"now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO webinar_session (id, webinar_id, starts_at, duration_minutes, timezone, "
                    "capacity, seats_taken, waitlist_counter, join_url, status, sequence, created_at, "
                    "updated_at) VALUES (1, 1, :now, 60, 'UTC', 5, 1, 0, 'https://meet.example/j', "
                    "'scheduled', 0, :now, :now)"
                ),
                {"now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO registration (session_id, name, email, status, token_hash, invite_uid, "
                    "sequence, consent, mail_owed, created_at, updated_at) VALUES (1, 'Ann', "
                    "'ann@example.org', 'confirmed', 'h', 'u@x', 0, false, 'confirmed', :now, :now)"
                ),
                {"now": now},
            )
        with pytest.raises(RuntimeError, match="1 registrations still owe"):
            upgrade(database_url)
        # Once the old version has written it out, the upgrade goes through.
        with engine.begin() as connection:
            connection.execute(text("UPDATE registration SET mail_owed = NULL"))
        upgrade(database_url)
        with engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("registration")}
            outbox = {c["name"]: c for c in inspect(connection).get_columns("outbox")}
        assert "mail_owed" not in columns
        assert "reminder_sent_at" not in columns
        assert {"payload", "message_id"} <= set(outbox)
        assert outbox["message"]["nullable"]
    finally:
        engine.dispose()
