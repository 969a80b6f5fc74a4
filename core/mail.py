"""The mail outbox: mail is a row written in the transaction that causes it; a worker sends it.

A registration commits together with its e-mail, so a crash can never confirm a seat without the
confirmation (or send one for a seat that rolled back). A row holds either the message itself
(`enqueue`) or, cheaper to write while the transaction holds its locks, what to send
(`enqueue_payload`: a JSON payload that the worker renders at send time with the renderer the app
gave it for the row's kind; core knows no domain's messages). The first rendering is stored in
the row, so retries and resends send the same message. `OutboxWorker` claims due rows, marking
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib
import anyio
from litestar.exceptions import ClientException, NotFoundException
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Index,
    LargeBinary,
    String,
    Table,
    and_,
    insert,
    or_,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, Session, SQLModel, col, select

from core.db import Database
from core.settings import Settings

log = logging.getLogger(__name__)

# Transient failures back off from `outbox_retry_seconds`, doubling, up to this.
MAX_BACKOFF_SECONDS = 3600.0
BATCH_SIZE = 10
# The outbox worker treats the process as busy serving requests when the rest of it uses more than
# this share of a CPU; only then does it hold its rendering to `Settings.outbox_render_duty`. (Under
# a rush of registrations the rest used 0.7-0.9; idle, 0.1-0.3, the worker's own SMTP exchanges on
# the event loop included.)
BUSY_SHARE = 0.5
_T = TypeVar("_T")

# Turns a payload row's JSON into the e-mail it stands for; one per kind, handed to the worker.
Renderer = Callable[[dict[str, Any]], EmailMessage]


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
    """One e-mail to one recipient: its RFC 5322 bytes, or the payload they are rendered from."""

    __tablename__ = "outbox"
    # The worker's claim: due rows by status and time, and `sending` rows whose lease ran out.
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'retrying', 'failed', 'cancelled')", name="status"
        ),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_status_locked_until", "status", "locked_until"),
        CheckConstraint("message IS NOT NULL OR payload IS NOT NULL", name="has_content"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    recipient: str = Field(max_length=320)
    subject: str = Field(max_length=1000)
    # The message as sent: written by `enqueue`, or by the worker when it first renders `payload`.
    message: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # What to send (enqueue_payload): everything the renderer for `kind` needs, as of the commit.
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Given when the row is written, so every attempt (and an admin's resend) carries the same one.
    message_id: str | None = Field(default=None, max_length=255)
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
        message_id=str(message["Message-ID"]),
        status=OutboxStatus.queued,
        send_after=due,
        next_attempt_at=due,
        registration_id=registration_id,
        session_id=session_id,
    )
    session.add(row)
    return row


OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")


@dataclass(frozen=True, slots=True)
class PayloadMail:
    """One e-mail as what to send: the renderer for `kind` turns `payload` into the message."""

    kind: str
    recipient: str
    # What the admin's outbox list shows (nothing is rendered for a list).
    subject: str
    # JSON: plain values only, everything the message will say.
    payload: dict[str, Any]
    registration_id: int | None = None
    session_id: int | None = None
    send_after: datetime | None = None


def enqueue_payload(
    session: Session,
    *,
    kind: str,
    recipient: str,
    subject: str,
    payload: dict[str, Any],
    registration_id: int | None = None,
    session_id: int | None = None,
    send_after: datetime | None = None,
    sender: str | None = None,
) -> None:
    """Add one e-mail to the caller's transaction as what to send (see `enqueue_payloads`)."""
    mail = PayloadMail(kind, recipient, subject, payload, registration_id, session_id, send_after)
    enqueue_payloads(session, [mail], sender=sender)


def enqueue_payloads(session: Session, mails: Sequence[PayloadMail], *, sender: str | None = None) -> None:
    """Add e-mails to the caller's transaction as what to send; each is sent once (if) it commits.

    The worker renders each payload when its row is due, so the transaction pays for one INSERT of
    small rows, not for building MIME.
    """
    rows = outbox_rows(mails, sender=sender)
    if rows:
        # One Core INSERT for them all: booking writes these while holding SQLite's write lock,
        # where a statement per row (or the ORM's unit of work) would cost more than the rows.
        session.connection().execute(insert(OUTBOX), rows)


# The columns of an `outbox_rows` row, for a prepared INSERT (`core.db.Prepared`).
OUTBOX_ROW_COLUMNS = (
    "kind",
    "recipient",
    "subject",
    "message",
    "payload",
    "message_id",
    "status",
    "attempts",
    "send_after",
    "next_attempt_at",
    "locked_until",
    "last_error",
    "created_at",
    "sent_at",
    "registration_id",
    "session_id",
)


def outbox_rows(
    mails: Sequence[PayloadMail], *, sender: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The outbox rows (column values) of e-mails to send, for the caller to INSERT in its transaction.

    `sender` (the From address) names the Message-IDs' domain; each row gets its Message-ID now, so
    every attempt carries the same one. `now` is the transaction's time (default: the clock's).
    """
    now = now or utcnow()
    domain = _domain(sender or "")
    rows = []
    for mail in mails:
        if not _ADDRESS.fullmatch(mail.recipient):
            raise ValueError(f"an outbox message goes to exactly one address, not {mail.recipient!r}")
        if mail.send_after is not None and mail.send_after.utcoffset() is None:
            raise ValueError("send_after must be timezone-aware")
        due = mail.send_after or now
        rows.append(
            {
                "kind": mail.kind,
                "recipient": mail.recipient,
                "subject": mail.subject,
                "message": None,
                "payload": mail.payload,
                "message_id": make_msgid(domain=domain),
                "status": OutboxStatus.queued.value,
                "attempts": 0,
                "send_after": due,
                "next_attempt_at": due,
                "locked_until": None,
                "last_error": None,
                "created_at": now,
                "sent_at": None,
                "registration_id": mail.registration_id,
                "session_id": mail.session_id,
            }
        )
    return rows


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
    message: bytes | None
    payload: dict[str, Any] | None
    message_id: str | None
    # Bumped by every claim: a worker records an outcome only while the row is still its claim.
    attempts: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: OutboxStatus
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Result:
    row: _Claimed
    outcome: _Outcome
    # The message rendered for this attempt, stored so a retry or resend sends exactly it.
    rendered: bytes | None = None


class OutboxWorker:
    """Sends due outbox rows; one per process, started with the app."""

    def __init__(
        self, db: Database, settings: Settings, renderers: Mapping[str, Renderer] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        # By row kind: how payload rows become messages (the app passes each domain's in).
        self.renderers: Mapping[str, Renderer] = dict(renderers or {})
        self.batch_size = BATCH_SIZE
        self._sender = parseaddr(settings.mail_from)[1] or settings.mail_from
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Seconds the last batch spent rendering; the run loop rests in proportion (see _run).
        self._rendering = 0.0
        # CPU seconds this worker's threads have used (claims, rendering, records).
        self._own_cpu = 0.0

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
        self._rendering = 0.0
        claimed = await self._in_thread(self._claim)
        if claimed:
            # Rendering is CPU work: a worker thread does the batch's, not the event loop.
            started = time.perf_counter()
            ready = await self._in_thread(self._render_all, claimed)
            self._rendering = time.perf_counter() - started
            results = await asyncio.gather(*(self._deliver(row, raw) for row, raw in ready))
            # One write transaction for the batch's outcomes: on SQLite every write takes the
            # database's only write lock, which registrations are waiting for.
            await self._in_thread(self._record, results)
        return len(claimed)

    async def _in_thread(self, work: Callable[..., _T], *args: Any) -> _T:
        """`work(*args)` in a worker thread, its CPU time counted as this worker's own."""

        def timed() -> tuple[_T, float]:
            started = time.thread_time()
            return work(*args), time.thread_time() - started

        result, used = await anyio.to_thread.run_sync(timed)
        # Added here, on the loop: the batch's file writes run in several threads at once.
        self._own_cpu += used
        return result

    async def _run(self) -> None:
        duty = self.settings.outbox_render_duty
        while not self._stopping.is_set():
            wall, cpu, own = time.monotonic(), time.process_time(), self._own_cpu
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox run failed; trying again in %.1fs", self.settings.outbox_poll_seconds)
                handled = 0
            # The share of a CPU the rest of the process (its requests) used meanwhile.
            others = (time.process_time() - cpu - (self._own_cpu - own)) / max(time.monotonic() - wall, 1e-3)
            # While requests keep the process busy, rest so that rendering takes at most `duty`
            # of the time: during a rush of registrations they get the CPU first and their mail
            # follows. Otherwise the backlog goes out as fast as it renders.
            busy = others > BUSY_SHARE
            pause = self._rendering * (1 / duty - 1) if busy and 0 < duty < 1 else 0.0
            if handled < self.batch_size:
                pause = max(pause, self.settings.outbox_poll_seconds)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)

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
                claimed.append(
                    _Claimed(
                        row.id,
                        row.kind,
                        row.recipient,
                        row.message,
                        row.payload,
                        row.message_id,
                        row.attempts,
                    )
                )
            return claimed

    def _render_all(self, rows: list[_Claimed]) -> list[tuple[_Claimed, bytes | _Outcome]]:
        return [(row, row.message if row.message is not None else self._render(row)) for row in rows]

    def _render(self, row: _Claimed) -> bytes | _Outcome:
        """The payload row's message, ready to send; or why it cannot be sent (yet)."""
        renderer = self.renderers.get(row.kind)
        if renderer is None or row.payload is None:
            # Perhaps a newer process knows this kind (a rolling upgrade): leave it to the retries.
            return self._retry(row, f"this worker has no renderer for {row.kind!r} messages")
        try:
            message = renderer(row.payload)
            _check_one_recipient(message, row.recipient)
            del message["Message-ID"]
            message["Message-ID"] = row.message_id or make_msgid(domain=_domain(str(message["From"])))
            return message.as_bytes(policy=policy.SMTP)
        except Exception as exc:
            # The same payload would fail the same way again: a bug or bad data, for a person to see.
            log.exception("outbox message %s could not be rendered", row.id)
            return _Outcome(OutboxStatus.failed, f"could not render the message: {type(exc).__name__}: {exc}")

    async def _deliver(self, row: _Claimed, rendered: bytes | _Outcome) -> _Result:
        if isinstance(rendered, _Outcome):
            return _Result(row, rendered)
        raw = _with_date(rendered)
        outcome = await (self._smtp(row, raw) if self.settings.smtp_host else self._file(row, raw))
        return _Result(row, outcome, rendered if row.message is None else None)

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
            await self._in_thread(_write_atomically, target, raw)
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

    def _record(self, results: list[_Result]) -> None:
        now = utcnow()
        with self.db.write() as session:
            for result in results:
                row, outcome = result.row, result.outcome
                values: dict[str, object] = {"status": outcome.status, "locked_until": None}
                if result.rendered is not None:
                    values["message"] = result.rendered
                if outcome.status is OutboxStatus.sent:
                    values.update(sent_at=now, last_error=None)
                else:
                    values["last_error"] = (outcome.error or "")[:2000]
                if outcome.status is OutboxStatus.retrying:
                    values["next_attempt_at"] = now + timedelta(seconds=self._backoff(row.attempts))
                # Only while the row is still this worker's claim (a lease that ran out may have
                # handed it to another worker since).
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


def _check_one_recipient(message: EmailMessage, recipient: str) -> None:
    """The envelope recipient is the only address in the headers (DESIGN.md: no one else's, ever)."""
    headers = message.get_all("To") or []
    addresses = [a.addr_spec for header in headers for a in getattr(header, "addresses", ())]
    if addresses != [recipient] or message.get("Cc") or message.get("Bcc"):
        raise ValueError(f"the rendered message is addressed to {addresses}, not only to {recipient}")


def _with_date(raw: bytes) -> bytes:
    head = raw.split(b"\r\n\r\n", 1)[0]
    if re.search(rb"^Date:", head, re.MULTILINE | re.IGNORECASE):
        return raw
    # RFC 5322 3.6.1: the Date is when the message was sent, which for a reminder is not when it
    # was queued.
    return f"Date: {formatdate(usegmt=True)}\r\n".encode("ascii") + raw


@lru_cache(maxsize=64)
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
