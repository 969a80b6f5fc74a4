"""The mail outbox: mail is a row written in the transaction that causes it; a worker sends it.

A registration commits together with its e-mail, so a crash can never confirm a seat without the
confirmation (or send one for a seat that rolled back). `OutboxWorker` claims due rows, marking
them `sending` with a lease (`locked_until`), sends them with aiosmtplib and records the outcome.
Claims are `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several processes share the work without
sending a row twice; SQLite's write transactions are serial anyway. A worker that dies holding
rows leaves them `sending`; once the lease passes any worker claims them again. Delivery is
therefore at-least-once: the Message-ID stays the same across attempts, so a rare duplicate after
a crash mid-send looks like one message in most mail clients.

SMTP replies decide what happens next (RFC 5321 4.2.1): 4xx and network trouble retry with
exponential backoff; 5xx to the message's own MAIL/RCPT/DATA is final (`failed`, `last_error`).
Without an SMTP host, mail is written to `<mail_dir>/<id>-<kind>.eml` for a developer to open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from enum import StrEnum
from pathlib import Path

import aiosmtplib
import anyio
from litestar.exceptions import ClientException, NotFoundException
from sqlalchemy import CheckConstraint, Column, Index, LargeBinary, String, and_, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, Session, SQLModel, col, select

from core.db import Database
from core.settings import Settings

log = logging.getLogger(__name__)

# Transient failures back off from `outbox_retry_seconds`, doubling, up to this.
MAX_BACKOFF_SECONDS = 3600.0
BATCH_SIZE = 10


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    retrying = "retrying"
    failed = "failed"
    cancelled = "cancelled"


class OutboxMessage(SQLModel, table=True):
    """One e-mail to one recipient, stored whole (RFC 5322 bytes) so a retry sends the same thing."""

    __tablename__ = "outbox"
    # The worker's claim: due rows by status and time, and `sending` rows whose lease ran out.
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'retrying', 'failed', 'cancelled')", name="status"
        ),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_status_locked_until", "status", "locked_until"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    recipient: str = Field(max_length=320)
    subject: str = Field(max_length=1000)
    message: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: OutboxStatus = Field(default=OutboxStatus.queued, sa_column=Column(String(20), nullable=False))
    attempts: int = 0
    # Not sent before this (reminders are queued days ahead).
    send_after: datetime
    next_attempt_at: datetime
    locked_until: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # Plain ids, no foreign keys: core knows no domain's tables, and mail outlives what caused it.
    registration_id: int | None = Field(default=None, index=True)
    session_id: int | None = Field(default=None, index=True)


_PENDING = (OutboxStatus.queued, OutboxStatus.retrying)


def enqueue(
    session: Session,
    message: EmailMessage,
    *,
    kind: str,
    registration_id: int | None = None,
    session_id: int | None = None,
    send_after: datetime | None = None,
) -> OutboxMessage:
    """Add `message` to the caller's transaction; it is sent once (and only if) that commits.

    Gives the message a Message-ID if it has none, so every retry carries the same one. The Date
    header is added when the message is actually sent.
    """
    recipients = message.get_all("To") or []
    addresses = [a for header in recipients for a in getattr(header, "addresses", ())]
    if len(addresses) != 1 or message.get("Cc") or message.get("Bcc"):
        raise ValueError("an outbox message goes to exactly one recipient, in To")
    if send_after is not None and send_after.utcoffset() is None:
        raise ValueError("send_after must be timezone-aware")
    if message.get("Message-ID") is None:
        message["Message-ID"] = make_msgid(domain=_domain(str(message.get("From", ""))))
    due = send_after or utcnow()
    row = OutboxMessage(
        kind=kind,
        recipient=addresses[0].addr_spec,
        subject=str(message.get("Subject", "")),
        message=message.as_bytes(policy=policy.SMTP),
        status=OutboxStatus.queued,
        send_after=due,
        next_attempt_at=due,
        registration_id=registration_id,
        session_id=session_id,
    )
    session.add(row)
    return row


def cancel_pending(
    session: Session,
    *,
    registration_id: int | None = None,
    session_id: int | None = None,
    kind: str | None = None,
) -> int:
    """Cancel not-yet-sent rows matching every filter given (at least one); returns how many."""
    filters: list[ColumnElement[bool]] = []
    if registration_id is not None:
        filters.append(col(OutboxMessage.registration_id) == registration_id)
    if session_id is not None:
        filters.append(col(OutboxMessage.session_id) == session_id)
    if kind is not None:
        filters.append(col(OutboxMessage.kind) == kind)
    if not filters:
        raise ValueError("cancel_pending needs a registration_id, session_id or kind")
    # A row already `sending` is in a worker's hands: it may be on the wire, so it is left alone.
    result = session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.status).in_(_PENDING), *filters)
        .values(status=OutboxStatus.cancelled, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)


def resend(session: Session, message_id: int) -> OutboxMessage:
    """Queue a failed or sent message again (an admin's "send again"), with a fresh retry budget."""
    row = session.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise NotFoundException(detail=f"No outbox message {message_id}.")
    if row.status not in (OutboxStatus.failed, OutboxStatus.sent):
        raise ClientException(
            status_code=409,
            detail=f"Message {message_id} is {row.status}: only failed or sent messages can be sent again.",
        )
    now = utcnow()
    row.status = OutboxStatus.queued
    row.attempts = 0
    row.next_attempt_at = now
    row.locked_until = None
    row.last_error = None
    row.sent_at = None
    session.add(row)
    return row


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    kind: str
    recipient: str
    message: bytes
    # Bumped by every claim: a worker records an outcome only while the row is still its claim.
    attempts: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: OutboxStatus
    error: str | None = None


class OutboxWorker:
    """Sends due outbox rows; one per process, started with the app."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.batch_size = BATCH_SIZE
        self._sender = parseaddr(settings.mail_from)[1] or settings.mail_from
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Let the batch in hand finish (up to `grace_seconds`), then stop."""
        if self._task is None:
            return
        self._stopping.set()
        _, pending = await asyncio.wait({self._task}, timeout=grace_seconds)
        if pending:
            # Rows of an interrupted batch stay `sending` and are claimed again after the lease.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def run_once(self) -> int:
        """Claim the due rows (up to a batch) and send them; returns how many were handled."""
        claimed = await anyio.to_thread.run_sync(self._claim)
        if claimed:
            await asyncio.gather(*(self._deliver(row) for row in claimed))
        return len(claimed)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox run failed; trying again in %.1fs", self.settings.outbox_poll_seconds)
                handled = 0
            if handled < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.outbox_poll_seconds)

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            and_(col(OutboxMessage.status).in_(_PENDING), col(OutboxMessage.next_attempt_at) <= now),
            and_(
                col(OutboxMessage.status) == OutboxStatus.sending,
                col(OutboxMessage.locked_until) < now,
            ),
        )

    def _claim(self) -> list[_Claimed]:
        now = utcnow()
        # A plain read first: most polls find nothing, and on SQLite a write transaction would
        # take the database's single write lock every poll.
        with self.db.session() as session:
            if session.exec(select(OutboxMessage.id).where(self._due(now)).limit(1)).first() is None:
                return []
        lease = now + timedelta(seconds=self.settings.outbox_lease_seconds)
        with self.db.write() as session:
            rows = session.exec(
                select(OutboxMessage)
                .where(self._due(now))
                .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
                .limit(self.batch_size)
                # Another process's claimed rows are skipped, not waited for (ignored on SQLite).
                .with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for row in rows:
                row.status = OutboxStatus.sending
                row.locked_until = lease
                row.attempts += 1
                session.add(row)
                assert row.id is not None
                claimed.append(_Claimed(row.id, row.kind, row.recipient, row.message, row.attempts))
            return claimed

    async def _deliver(self, row: _Claimed) -> None:
        raw = _with_date(row.message)
        outcome = await (self._smtp(row, raw) if self.settings.smtp_host else self._file(row, raw))
        await anyio.to_thread.run_sync(self._record, row, outcome)

    async def _smtp(self, row: _Claimed, raw: bytes) -> _Outcome:
        settings = self.settings
        try:
            await aiosmtplib.send(
                raw,
                sender=self._sender,
                recipients=[row.recipient],
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_user,
                password=settings.smtp_password,
                timeout=settings.smtp_timeout_seconds,
                # Port 465 is implicit TLS; elsewhere STARTTLS is used whenever the server offers it.
                use_tls=settings.smtp_port == 465,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            return self._after_reply(row, code, str(refused or exc))
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as exc:
            return self._after_reply(row, exc.code, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection refused, timeouts, a refused greeting or login: trouble with the server or
            # our settings, not with this message, so even a 5xx here is retried.
            return self._retry(row, f"{type(exc).__name__}: {exc}")
        return _Outcome(OutboxStatus.sent)

    async def _file(self, row: _Claimed, raw: bytes) -> _Outcome:
        directory = Path(self.settings.mail_dir)
        target = directory / f"{row.id}-{_safe(row.kind)}.eml"
        try:
            await anyio.to_thread.run_sync(_write_atomically, target, raw)
        except OSError as exc:
            return self._retry(row, f"could not write {target}: {exc}")
        return _Outcome(OutboxStatus.sent)

    def _after_reply(self, row: _Claimed, code: int, error: str) -> _Outcome:
        if 500 <= code < 600:
            log.warning("outbox message %s refused for good: %s", row.id, error)
            return _Outcome(OutboxStatus.failed, error)
        return self._retry(row, error)

    def _retry(self, row: _Claimed, error: str) -> _Outcome:
        if row.attempts >= self.settings.outbox_max_attempts:
            log.error("outbox message %s gave up after %s attempts: %s", row.id, row.attempts, error)
            return _Outcome(OutboxStatus.failed, f"gave up after {row.attempts} attempts: {error}")
        log.info("outbox message %s will be retried: %s", row.id, error)
        return _Outcome(OutboxStatus.retrying, error)

    def _record(self, row: _Claimed, outcome: _Outcome) -> None:
        now = utcnow()
        values: dict[str, object] = {"status": outcome.status, "locked_until": None}
        if outcome.status is OutboxStatus.sent:
            values.update(sent_at=now, last_error=None)
        else:
            values["last_error"] = (outcome.error or "")[:2000]
        if outcome.status is OutboxStatus.retrying:
            values["next_attempt_at"] = now + timedelta(seconds=self._backoff(row.attempts))
        with self.db.write() as session:
            session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == row.id,
                    col(OutboxMessage.status) == OutboxStatus.sending,
                    col(OutboxMessage.attempts) == row.attempts,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def _backoff(self, attempts: int) -> float:
        delay = min(self.settings.outbox_retry_seconds * 2.0 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        # Jitter, so rows that failed together (SMTP down) do not all come back in the same second.
        return delay * random.uniform(0.8, 1.2)


def _with_date(raw: bytes) -> bytes:
    head = raw.split(b"\r\n\r\n", 1)[0]
    if re.search(rb"^Date:", head, re.MULTILINE | re.IGNORECASE):
        return raw
    # RFC 5322 3.6.1: the Date is when the message was sent, which for a reminder is not when it
    # was queued.
    return f"Date: {formatdate(usegmt=True)}\r\n".encode("ascii") + raw


def _domain(from_header: str) -> str:
    address = parseaddr(from_header)[1]
    return address.rpartition("@")[2] or "localhost"


def _safe(kind: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", kind)[:40] or "mail"


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".eml.partial")
    partial.write_bytes(data)
    # A reader never sees half a file, and a crash mid-write leaves only the .partial behind.
    os.replace(partial, target)
