"""Booking's background mail: the e-mails registrations are owed, and reminders before each session.

Every worker process runs `BookingMailer`. Owed e-mails (a registration's confirmation or waitlist
notice, recorded by the form in its own transaction) are written to the outbox within a moment;
`settings.reminder_hours` before a session each confirmed attendee gets one reminder. The session
row lock and a conditional UPDATE on each registration's `reminder_sent_at` make sure a reminder is
queued once, whichever worker gets there. Moving a session clears `reminder_sent_at`
(booking.service.move_session), so the new time gets its own reminder.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy import exists, select, update
from sqlmodel import col

from booking.messages import MessageKind
from booking.models import Registration, SessionStatus, WebinarSession, utcnow
from booking.service import (
    CONFIRMED,
    SCHEDULED,
    Seat,
    lock_session,
    purge_idempotency_keys,
    queue_message,
    queue_owed_mail,
    writing,
)
from core.db import Database
from core.settings import Settings

log = logging.getLogger(__name__)

# A confirmation should follow its registration within a moment; the poll is one indexed read.
OWED_MAIL_PERIOD_SECONDS = 0.25
# Building a message (MIME, iCalendar) takes milliseconds of CPU; in the background it takes at most
# this share of the worker, so a rush of registrations is served first and its mail follows.
MAIL_BUILD_DUTY = 0.2
# A minute's lateness on a reminder sent a day ahead is invisible.
REMINDER_PERIOD_SECONDS = 60.0
# Clean-up of stored idempotent answers runs this often (each worker; deleting nothing is cheap).
PURGE_EVERY = 60


def queue_due_reminders(db: Database, settings: Settings, *, now: datetime | None = None) -> int:
    """Queue the reminder for every confirmed attendee of a session starting within the window."""
    now = now or utcnow()
    horizon = now + timedelta(hours=settings.reminder_hours)
    with db.session() as session:
        session_ids = list(
            session.execute(
                select(col(WebinarSession.id))
                .where(
                    col(WebinarSession.status) == SessionStatus.scheduled,
                    col(WebinarSession.starts_at) > now,
                    col(WebinarSession.starts_at) <= horizon,
                    exists().where(
                        col(Registration.session_id) == col(WebinarSession.id),
                        col(Registration.status) == CONFIRMED,
                        col(Registration.reminder_sent_at).is_(None),
                    ),
                )
                .order_by(col(WebinarSession.starts_at))
            ).scalars()
        )
    return sum(_remind_session(db, settings, session_id, now, horizon) for session_id in session_ids)


def _remind_session(
    db: Database, settings: Settings, session_id: int, now: datetime, horizon: datetime
) -> int:
    queued = 0
    with writing(db) as session:
        # The session lock orders this with moves, cancellations and promotions of the same session.
        sess, webinar = lock_session(session, session_id)
        if sess.status != SCHEDULED or not now < sess.starts_at <= horizon:
            return 0
        due = (
            session.execute(
                select(Registration).where(
                    col(Registration.session_id) == session_id,
                    col(Registration.status) == CONFIRMED,
                    col(Registration.reminder_sent_at).is_(None),
                )
            )
            .scalars()
            .all()
        )
        for reg in due:
            # Only the worker whose UPDATE changes the row queues the reminder.
            claimed = session.exec(
                update(Registration)
                .where(col(Registration.id) == reg.id, col(Registration.reminder_sent_at).is_(None))
                .values(reminder_sent_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed:
                queue_message(
                    session, settings, Seat.of(reg, sess, webinar), MessageKind.reminder, "REQUEST", now
                )
                queued += 1
    return queued


class BookingMailer:
    """Runs `queue_owed_mail` every `period` seconds and `queue_due_reminders` every minute."""

    def __init__(self, db: Database, settings: Settings, period: float = OWED_MAIL_PERIOD_SECONDS) -> None:
        self.db = db
        self.settings = settings
        self.period = period
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="booking-mailer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        next_reminders = time.monotonic()
        rounds = 0
        while True:
            try:
                await anyio.to_thread.run_sync(
                    functools.partial(queue_owed_mail, self.db, self.settings, duty=MAIL_BUILD_DUTY)
                )
                if time.monotonic() >= next_reminders:
                    next_reminders = time.monotonic() + REMINDER_PERIOD_SECONDS
                    queued = await anyio.to_thread.run_sync(queue_due_reminders, self.db, self.settings)
                    if queued:
                        log.info("queued %s webinar reminders", queued)
                    if rounds % PURGE_EVERY == 0:
                        await anyio.to_thread.run_sync(purge_idempotency_keys, self.db)
                    rounds += 1
            except Exception:
                log.exception("booking mail failed; retrying in %.2fs", self.period)
            await asyncio.sleep(self.period)
