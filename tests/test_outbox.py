"""The mail outbox against a real SMTP server, on SQLite and PostgreSQL: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from litestar.exceptions import ClientException
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from app import create_app
from booking.invites import InviteEvent, build_invite, discreet_summary
from booking.messages import (
    RENDERERS,
    InviteSpec,
    MessageContext,
    MessageKind,
    build_message,
    mail_payload,
    subject_line,
)
from core.db import Database
from core.mail import (
    OutboxMessage,
    OutboxStatus,
    OutboxWorker,
    PayloadMail,
    Renderer,
    cancel_pending,
    enqueue,
    enqueue_payload,
    enqueue_payloads,
    resend,
)
from core.settings import Settings
from tests.booking.test_invites import parse_everywhere, same_everywhere
from tests.booking.test_messages import calendar_parts, tree
from tests.mailserver import Blackhole, MailServer, free_port

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 7, 14, 22, 0, tzinfo=UTC)


def _context(n: int = 0) -> MessageContext:
    return MessageContext(
        kind=MessageKind.confirmed,
        recipient_email=f"attendee{n}@example.com",
        recipient_name=f"Attendee {n}, Jr.; Zoë 😀",
        webinar_title="Stem cell and platelet procedures for knee arthritis",
        starts_at=START,
        ends_at=START + timedelta(hours=1),
        timezone="America/New_York",
        join_url="https://meet.example/j/1",
        manage_url=f"https://orthodex.example/registrations/token-{n}",
        ics_url=f"https://orthodex.example/api/registrations/token-{n}/invite.ics",
        network_name="Test Clinic Network",
        mail_from="webinars@orthodex.example",
    )


def _message(n: int = 0) -> EmailMessage:
    ctx = _context(n)
    event = InviteEvent(
        uid=f"registration-{n}@orthodex.example",
        sequence=0,
        summary=discreet_summary(ctx.network_name),
        description=ctx.webinar_title,
        start=ctx.starts_at,
        end=ctx.ends_at,
        location="Online",
        url=ctx.manage_url,
    )
    ics = build_invite(
        event,
        method="REQUEST",
        organizer_email=ctx.mail_from,
        organizer_name=ctx.network_name,
        attendee_email=ctx.recipient_email,
        attendee_name=ctx.recipient_name,
        dtstamp=datetime.now(UTC),
    )
    return build_message(ctx, ics, method="REQUEST")


def _queue(db: Database, count: int = 1, **kwargs: Any) -> list[int]:
    with db.write() as session:
        rows = [
            enqueue(session, _message(n), kind="confirmed", registration_id=n, **kwargs) for n in range(count)
        ]
        session.flush()
        return [cast(int, row.id) for row in rows]


def _queue_payloads(db: Database, count: int = 1, **kwargs: Any) -> list[int]:
    """Rows as booking writes them (one INSERT): what to send, rendered by booking's renderer."""
    mails = [
        PayloadMail(
            kind="confirmed",
            recipient=f"attendee{n}@example.com",
            subject=subject_line(MessageKind.confirmed, START, "America/New_York"),
            payload=mail_payload(
                _context(n), InviteSpec(f"registration-{n}@orthodex.example", 0, "REQUEST", START)
            ),
            registration_id=n,
            **kwargs,
        )
        for n in range(count)
    ]
    with db.write() as session:
        enqueue_payloads(session, mails, sender="Test Clinic Network <webinars@orthodex.example>")
    return [cast(int, row.id) for row in _rows(db)]


def _rows(db: Database) -> list[OutboxMessage]:
    with db.session() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def _smtp(settings: Settings, port: int, **changes: Any) -> Settings:
    return settings.with_(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=10.0, **changes)


async def _drain(worker: OutboxWorker, seconds: float = 15.0) -> int:
    """Run the worker until nothing is left to do right now; returns how many rows it handled."""
    handled, deadline = 0, time.monotonic() + seconds
    while (n := await worker.run_once()) > 0:
        handled += n
        assert time.monotonic() < deadline, "the worker never ran out of work"
    return handled


def _message_ids(server: MailServer) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in server.messages)


async def test_invite_mail_arrives_through_smtp(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    [row_id] = _queue(db)
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port))
    assert await worker.run_once() == 1
    [received] = await smtp_server.wait_for(1)
    assert received.mail_from == "webinars@orthodex.example"
    assert received.rcpt_tos == ["attendee0@example.com"]
    message = received.message
    assert tree(message) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html", "text/calendar"]), "application/ics"],
    )
    assert message["Date"] is not None
    inline, attachment = calendar_parts(message)
    invite = inline.get_payload(decode=True)
    assert isinstance(invite, bytes)
    assert attachment.get_payload(decode=True) == invite
    calendar = same_everywhere(parse_everywhere(invite))
    # The header method is the METHOD inside; the recipient is the one and only ATTENDEE.
    assert inline.get_param("method") == calendar["method"] == "REQUEST"
    [event] = calendar["events"]
    assert [a["address"] for a in event["attendees"]] == ["mailto:attendee0@example.com"]
    assert (event["start"], event["end"]) == ("2026-07-14T22:00:00Z", "2026-07-14T23:00:00Z")
    [row] = _rows(db)
    assert (row.id, row.status, row.attempts, row.last_error) == (row_id, OutboxStatus.sent, 1, None)
    assert row.sent_at is not None
    assert row.locked_until is None
    assert row.message is not None
    assert str(message["Message-ID"]) == row.message_id
    assert row.message_id in row.message.decode()
    assert await worker.run_once() == 0
    assert len(smtp_server.messages) == 1


async def test_mail_is_written_only_if_its_transaction_commits(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    def register_then_fail() -> None:
        with db.write() as session:
            enqueue(session, _message(), kind="confirmed")
            raise RuntimeError("the registration failed after its mail was queued")

    with pytest.raises(RuntimeError, match="after its mail was queued"):
        register_then_fail()

    def write_payload_then_fail() -> None:
        with db.write() as session:
            enqueue_payload(session, kind="confirmed", recipient="a@example.com", subject="S", payload={})
            raise RuntimeError("the change failed after its payload row was written")

    with pytest.raises(RuntimeError, match="payload row"):
        write_payload_then_fail()
    assert _rows(db) == []
    assert await OutboxWorker(db, _smtp(settings, smtp_server.port)).run_once() == 0
    assert smtp_server.messages == []


async def test_smtp_down_loses_nothing_and_sends_each_once_when_back(
    settings: Settings, db: Database
) -> None:
    server = MailServer(port=free_port())  # nothing listens on this port yet
    ids = _queue(db, 5)
    worker = OutboxWorker(db, _smtp(settings, server.port, outbox_retry_seconds=0.05))
    for _ in range(3):
        before = datetime.now(UTC)
        assert await worker.run_once() == 5
        rows = _rows(db)
        assert [r.status for r in rows] == [OutboxStatus.retrying] * 5
        assert all(r.last_error and "Connect" in r.last_error for r in rows), rows[0].last_error
        # Backed off (at least 80% of 0.05 s), not retried in a tight loop.
        assert all(r.next_attempt_at >= before + timedelta(seconds=0.04) for r in rows)
        await asyncio.sleep(max(r.next_attempt_at for r in rows).timestamp() - time.time() + 0.01)
    server.start()
    try:
        await asyncio.sleep(0.5)  # past the last backoff
        assert await _drain(worker) == 5
        assert [r.status for r in _rows(db)] == [OutboxStatus.sent] * 5
        assert [r.attempts for r in _rows(db)] == [4] * 5
        assert sorted(m.rcpt_tos[0] for m in server.messages) == [
            f"attendee{n}@example.com" for n in range(5)
        ]
        assert set(_message_ids(server).values()) == {1}
        assert len(ids) == len(server.messages) == 5
    finally:
        server.stop()


async def test_backoff_doubles_per_attempt(settings: Settings, db: Database) -> None:
    [row_id] = _queue(db)
    worker = OutboxWorker(db, _smtp(settings, free_port(), outbox_retry_seconds=100.0))
    delays = []
    for _ in range(3):
        before = datetime.now(UTC)
        assert await worker.run_once() == 1
        [row] = _rows(db)
        delays.append((row.next_attempt_at - before).total_seconds())
        with db.write() as session:  # skip the wait
            due = session.get_one(OutboxMessage, row_id)
            due.next_attempt_at = datetime.now(UTC)
            session.add(due)
    # 100 s, 200 s, 400 s, each within the +-20% jitter.
    for delay, base in zip(delays, (100, 200, 400), strict=True):
        assert base * 0.8 - 1 <= delay <= base * 1.2 + 1, delays


async def test_transient_errors_give_up_after_the_attempt_budget(settings: Settings, db: Database) -> None:
    _queue(db)
    worker = OutboxWorker(db, _smtp(settings, free_port(), outbox_retry_seconds=0.01, outbox_max_attempts=2))
    assert await worker.run_once() == 1
    await asyncio.sleep(0.05)
    assert await worker.run_once() == 1
    [row] = _rows(db)
    assert row.status == OutboxStatus.failed
    assert row.last_error is not None
    assert row.last_error.startswith("gave up after 2 attempts")


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
async def test_4xx_is_retried_until_accepted(
    settings: Settings, db: Database, smtp_server: MailServer, stage: Any
) -> None:
    _queue(db)
    smtp_server.answer(451, "4.3.0 Mailbox busy, try again", at=stage)
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port, outbox_retry_seconds=0.01))
    assert await worker.run_once() == 1
    [row] = _rows(db)
    assert row.status == OutboxStatus.retrying
    assert row.last_error is not None
    assert "451" in row.last_error
    smtp_server.accept()
    await asyncio.sleep(0.05)
    assert await _drain(worker) == 1
    assert [r.status for r in _rows(db)] == [OutboxStatus.sent]
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(("stage", "code"), [("RCPT", 550), ("DATA", 554)])
async def test_5xx_fails_for_good_and_an_admin_can_resend(
    settings: Settings, db: Database, smtp_server: MailServer, stage: Any, code: int
) -> None:
    [row_id] = _queue(db)
    smtp_server.answer(code, "5.1.1 No such user here", at=stage)
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port, outbox_retry_seconds=0.01))
    assert await worker.run_once() == 1
    [row] = _rows(db)
    assert row.status == OutboxStatus.failed
    assert row.last_error is not None
    assert str(code) in row.last_error
    await asyncio.sleep(0.05)
    assert await worker.run_once() == 0
    assert smtp_server.messages == []

    smtp_server.accept()
    with db.write() as session:
        assert resend(session, row_id).status == OutboxStatus.queued
    assert await worker.run_once() == 1
    assert len(await smtp_server.wait_for(1)) == 1
    [row] = _rows(db)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.sent, 1, None)


async def test_resend_refuses_a_message_still_on_its_way(settings: Settings, db: Database) -> None:
    [row_id] = _queue(db)
    with pytest.raises(ClientException) as refused, db.write() as session:
        resend(session, row_id)
    assert refused.value.status_code == 409
    assert "only failed or sent" in str(refused.value.detail)


async def test_send_after_holds_a_reminder_until_its_time(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    _queue(db, send_after=datetime.now(UTC) + timedelta(seconds=1))
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port))
    assert await worker.run_once() == 0
    await asyncio.sleep(1.1)
    assert await worker.run_once() == 1
    assert len(await smtp_server.wait_for(1)) == 1


async def test_cancel_pending_stops_unsent_mail_only(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with db.write() as session:
        enqueue(session, _message(1), kind="confirmed", registration_id=1, session_id=9)
        enqueue(session, _message(1), kind="reminder", registration_id=1, session_id=9, send_after=later)
        enqueue(session, _message(2), kind="reminder", registration_id=2, session_id=9, send_after=later)
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port))
    assert await worker.run_once() == 1  # the confirmation; the reminders are not due
    with db.write() as session:
        assert cancel_pending(session, registration_id=1, kind="reminder") == 1
        assert cancel_pending(session, registration_id=1) == 0  # the confirmation is already sent
    assert [(r.kind, r.registration_id, r.status) for r in _rows(db)] == [
        ("confirmed", 1, OutboxStatus.sent),
        ("reminder", 1, OutboxStatus.cancelled),
        ("reminder", 2, OutboxStatus.queued),
    ]
    with db.write() as session, pytest.raises(ValueError, match="needs a"):
        cancel_pending(session)


async def test_without_smtp_host_mail_is_written_as_eml_files(settings: Settings, db: Database) -> None:
    ids = _queue(db, 2)
    assert settings.smtp_host is None
    assert await OutboxWorker(db, settings).run_once() == 2
    files = await asyncio.to_thread(lambda: sorted(Path(settings.mail_dir).iterdir()))
    assert [f.name for f in files] == [f"{i}-confirmed.eml" for i in ids]
    for n, path in enumerate(files):
        message = message_from_bytes(await asyncio.to_thread(path.read_bytes), policy=policy.default)
        assert message["To"].addresses[0].addr_spec == f"attendee{n}@example.com"
        assert message["Date"] is not None
        assert tree(message)[0] == "multipart/mixed"
    assert [r.status for r in _rows(db)] == [OutboxStatus.sent] * 2


# --- rows that hold what to send (enqueue_payload) ---------------------------------------------


class CountingRenderer:
    """Booking's own renderer, counting how often the worker calls it."""

    def __init__(self, render: Renderer = RENDERERS["confirmed"]) -> None:
        self.render = render
        self.calls = 0

    def __call__(self, payload: dict[str, Any]) -> EmailMessage:
        self.calls += 1
        return self.render(payload)


async def test_a_payload_row_is_rendered_once_at_send_time_and_resent_unchanged(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    [row_id] = _queue_payloads(db)
    [row] = _rows(db)
    assert (row.status, row.message, row.recipient) == (OutboxStatus.queued, None, "attendee0@example.com")
    assert row.payload is not None
    assert row.message_id is not None
    assert row.message_id.endswith("@orthodex.example>")
    # The admin's list shows a subject without anything being rendered.
    assert row.subject.startswith("Your webinar seat is confirmed")
    renderer = CountingRenderer()
    worker = OutboxWorker(
        db, _smtp(settings, smtp_server.port, outbox_retry_seconds=0.01), renderers={"confirmed": renderer}
    )
    smtp_server.answer(451, "4.3.0 Try again later", at="DATA")
    assert await worker.run_once() == 1
    [row] = _rows(db)
    assert row.status == OutboxStatus.retrying
    assert row.message is not None, "the rendering is kept for the retry"
    smtp_server.accept()
    await asyncio.sleep(0.05)
    assert await _drain(worker) == 1
    [received] = await smtp_server.wait_for(1)
    message = received.message
    assert str(message["Message-ID"]) == row.message_id
    assert message["Subject"] == row.subject
    assert message["Date"] is not None
    assert tree(message) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html", "text/calendar"]), "application/ics"],
    )
    inline, _ = calendar_parts(message)
    invite = inline.get_payload(decode=True)
    assert isinstance(invite, bytes)
    calendar = same_everywhere(parse_everywhere(invite))
    assert inline.get_param("method") == calendar["method"] == "REQUEST"
    [event] = calendar["events"]
    assert (event["uid"], event["start"]) == ("registration-0@orthodex.example", "2026-07-14T22:00:00Z")
    assert [a["address"] for a in event["attendees"]] == ["mailto:attendee0@example.com"]
    # An admin's "send again" sends that same message, not a new rendering.
    with db.write() as session:
        resend(session, row_id)
    assert await worker.run_once() == 1
    first, second = await smtp_server.wait_for(2)
    assert second.message["Message-ID"] == first.message["Message-ID"]
    assert second.raw.split(b"\r\n\r\n", 1)[1] == first.raw.split(b"\r\n\r\n", 1)[1], "the same body"
    assert renderer.calls == 1


async def test_a_worker_without_the_kinds_renderer_leaves_the_row_to_one_that_has_it(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    _queue_payloads(db)
    mail_settings = _smtp(settings, smtp_server.port, outbox_retry_seconds=0.01)
    assert await OutboxWorker(db, mail_settings).run_once() == 1
    [row] = _rows(db)
    assert row.status == OutboxStatus.retrying
    assert row.last_error is not None
    assert "no renderer for 'confirmed'" in row.last_error
    await asyncio.sleep(0.05)
    assert await OutboxWorker(db, mail_settings, renderers=RENDERERS).run_once() == 1
    assert len(await smtp_server.wait_for(1)) == 1
    assert [r.status for r in _rows(db)] == [OutboxStatus.sent]


def _to_someone_else(payload: dict[str, Any]) -> EmailMessage:
    message = RENDERERS["confirmed"](payload)
    message.replace_header("To", "someone.else@example.com")
    return message


def _broken(payload: dict[str, Any]) -> EmailMessage:
    raise KeyError("webinar_title")


@pytest.mark.parametrize("render", [_broken, _to_someone_else])
async def test_a_payload_that_cannot_be_rendered_right_fails_for_an_admin_to_see(
    settings: Settings, db: Database, smtp_server: MailServer, render: Renderer
) -> None:
    _queue_payloads(db)
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port), renderers={"confirmed": render})
    assert await worker.run_once() == 1
    [row] = _rows(db)
    assert (row.status, row.message) == (OutboxStatus.failed, None)
    assert row.last_error is not None
    assert row.last_error.startswith("could not render the message")
    await asyncio.sleep(0.1)
    assert smtp_server.messages == []


def test_enqueue_payload_takes_one_address_and_an_aware_time(db: Database) -> None:
    for recipient in ("a@example.com, b@example.com", "a@example.com\r\nBcc: b@example.com", "nobody"):
        with pytest.raises(ValueError, match="one address"), db.write() as session:
            enqueue_payload(session, kind="confirmed", recipient=recipient, subject="S", payload={})
    with pytest.raises(ValueError, match="timezone-aware"), db.write() as session:
        enqueue_payload(
            session,
            kind="reminder",
            recipient="a@example.com",
            subject="S",
            payload={},
            send_after=datetime(2026, 7, 14, 12, 0),
        )
    assert _rows(db) == []


CRASHING_WORKER = """
import asyncio, sys
from booking.messages import RENDERERS
from core.db import Database
from core.mail import OutboxWorker
from core.settings import Settings

url, port = sys.argv[1], int(sys.argv[2])
settings = Settings(database_url=url, smtp_host="127.0.0.1", smtp_port=port,
                    outbox_lease_seconds=3.0, smtp_timeout_seconds=600.0)
asyncio.run(OutboxWorker(Database(url), settings, renderers=RENDERERS).run_once())
"""


@pytest.mark.parametrize("stored", ["message", "payload"])
async def test_a_worker_killed_between_claim_and_send_loses_nothing(
    settings: Settings, db: Database, smtp_server: MailServer, stored: str
) -> None:
    [row_id] = _queue(db) if stored == "message" else _queue_payloads(db)
    message_id = _rows(db)[0].message_id
    # The doomed worker's SMTP server accepts the connection and never answers: it claims the
    # row (committed as `sending`), then hangs before a byte of mail is sent, and is killed.
    blackhole = Blackhole()
    worker_process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_WORKER,
        settings.database_url,
        str(blackhole.port),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while _rows(db)[0].status != OutboxStatus.sending:
            assert worker_process.returncode is None, "the worker exited before it was killed"
            assert time.monotonic() < deadline, "the worker never claimed the row"
            await asyncio.sleep(0.05)
        worker_process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(worker_process.wait(), 10) == -signal.SIGKILL
    finally:
        if worker_process.returncode is None:
            worker_process.kill()
            await worker_process.wait()
        blackhole.close()

    [row] = _rows(db)
    assert (row.status, row.attempts) == (OutboxStatus.sending, 1)
    assert row.locked_until is not None
    worker = OutboxWorker(db, _smtp(settings, smtp_server.port), renderers=RENDERERS)
    # While the dead worker's lease lasts, nobody else touches the row...
    assert row.locked_until > datetime.now(UTC) + timedelta(seconds=1)
    assert await worker.run_once() == 0
    # ...and once it has run out, the mail goes out.
    await asyncio.sleep(row.locked_until.timestamp() - time.time() + 0.05)
    assert await worker.run_once() == 1
    [received] = await smtp_server.wait_for(1)
    assert received.rcpt_tos == ["attendee0@example.com"]
    # The dead worker may have rendered it already: the one that sends it gives the same Message-ID.
    assert message_id is not None
    assert str(received.message["Message-ID"]) == message_id
    assert calendar_parts(received.message)[0].get_param("method") == "REQUEST"
    [row] = _rows(db)
    assert (row.id, row.status, row.attempts) == (row_id, OutboxStatus.sent, 2)
    await asyncio.sleep(0.2)
    assert len(smtp_server.messages) == 1


async def test_two_workers_at_once_send_each_message_once(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    ids = _queue(db, 30)
    smtp_server.delay = 0.02  # keeps both workers mid-batch at the same time
    mail_settings = _smtp(settings, smtp_server.port)
    # Two engines, two connection pools: as two processes would claim, in two threads at once.
    first, second = Database(settings.database_url), Database(settings.database_url)
    try:
        workers = [OutboxWorker(first, mail_settings), OutboxWorker(second, mail_settings)]
        for worker in workers:
            worker.batch_size = 4
        handled = await asyncio.gather(*(_drain(w, seconds=60) for w in workers))
    finally:
        first.dispose()
        second.dispose()
    assert sum(handled) == 30, handled
    assert all(n > 0 for n in handled), f"one worker did everything: {handled}"
    assert len(smtp_server.messages) == 30
    assert set(_message_ids(smtp_server).values()) == {1}
    rows = _rows(db)
    assert [r.id for r in rows] == ids
    assert {(r.status, r.attempts) for r in rows} == {(OutboxStatus.sent, 1)}


async def test_the_app_starts_and_stops_the_worker(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    app = create_app(_smtp(settings, smtp_server.port, outbox_poll_seconds=0.05))
    async with AsyncTestClient(app=app):
        _queue(db, 2)
        assert len(await smtp_server.wait_for(2)) == 2
    _queue(db, 1)
    await asyncio.sleep(0.3)
    assert len(smtp_server.messages) == 2, "the worker kept running after the app stopped"
    assert [r.status for r in _rows(db)] == [OutboxStatus.sent, OutboxStatus.sent, OutboxStatus.queued]


async def test_app_without_background_workers_sends_nothing(
    settings: Settings, db: Database, smtp_server: MailServer
) -> None:
    app = create_app(_smtp(settings, smtp_server.port, outbox_poll_seconds=0.05, background_workers=False))
    async with AsyncTestClient(app=app):
        _queue(db, 1)
        await asyncio.sleep(0.3)
    assert smtp_server.messages == []


async def test_with_nothing_else_to_do_the_worker_sends_at_full_speed(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # The duty limit is for a busy process. At 0.001, a worker that wrongly held to it would rest
    # 999 times each batch's rendering (seconds per batch); an idle one sends the backlog at once.
    settings = settings.with_(mail_dir=tmp_path / "mail", outbox_render_duty=0.001, outbox_poll_seconds=0.05)
    _queue_payloads(db, 40)
    worker = OutboxWorker(db, settings, renderers=RENDERERS)
    started = time.monotonic()
    await worker.start()
    try:
        while any(row.status != OutboxStatus.sent for row in _rows(db)):
            assert time.monotonic() - started < 20, "the backlog should not wait on the duty limit"
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 40
