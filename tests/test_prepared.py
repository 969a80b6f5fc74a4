"""`core.db.Prepared` runs a Core statement on the driver's connection: values go in and come out
as they do through SQLAlchemy, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, insert, select
from sqlmodel import col

from core.db import Database, Prepared
from core.mail import OUTBOX, OUTBOX_ROW_COLUMNS, OutboxMessage, OutboxStatus, PayloadMail, outbox_rows

WHEN = datetime(2026, 3, 8, 6, 59, 59, 123456, tzinfo=UTC)


def mails() -> list[PayloadMail]:
    return [
        PayloadMail(
            "confirmed",
            "zoë@example.org",
            "Ça va? 🦵",
            {"name": "Zoë", "n": 3, "nested": {"ok": True, "list": [1, "two", None]}},
            registration_id=7,
        ),
        PayloadMail(
            "reminder", "ann@example.org", "Soon", {}, session_id=9, send_after=WHEN + timedelta(days=1)
        ),
    ]


def test_rows_written_by_prepared_statements_read_back_through_the_orm(db: Database) -> None:
    dialect = db.engine.dialect
    add = Prepared(insert(OUTBOX).returning(OUTBOX.c.id), dialect, OUTBOX_ROW_COLUMNS)
    with db.write() as session:
        raw = session.connection().connection.dbapi_connection
        ids = [add.scalar(raw, **row) for row in outbox_rows(mails(), sender="clinic@example.org", now=WHEN)]
    with db.session() as session:
        rows = session.scalars(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert [r.id for r in rows] == ids
    first, second = rows
    assert first.payload == {"name": "Zoë", "n": 3, "nested": {"ok": True, "list": [1, "two", None]}}
    assert (first.recipient, first.subject, first.registration_id) == ("zoë@example.org", "Ça va? 🦵", 7)
    assert first.status == OutboxStatus.queued
    assert (first.message, first.locked_until) == (None, None)
    # SQLite keeps naive text and PostgreSQL timestamptz; either way the instant is kept.
    assert first.created_at.replace(tzinfo=UTC) == WHEN
    assert second.next_attempt_at.replace(tzinfo=UTC) == WHEN + timedelta(days=1)
    assert second.payload == {}


def test_prepared_selects_convert_values_as_core_does(db: Database) -> None:
    with db.write() as session:
        session.connection().execute(
            insert(OUTBOX), outbox_rows(mails(), sender="clinic@example.org", now=WHEN)
        )
    due = (
        select(OUTBOX.c.id, OUTBOX.c.payload, OUTBOX.c.send_after, OUTBOX.c.sent_at, OUTBOX.c.attempts)
        .where(OUTBOX.c.send_after <= bindparam("until"), OUTBOX.c.status == OutboxStatus.queued.value)
        .order_by(OUTBOX.c.id)
    )
    until = WHEN + timedelta(hours=1)
    with db.session() as session:
        connection = session.connection()
        through_core = [tuple(row) for row in connection.execute(due, {"until": until})]
        prepared = Prepared(due, connection.dialect)
        first = prepared.first(connection.connection.dbapi_connection, until=until)
    assert len(through_core) == 1
    assert first == through_core[0]
    assert first.payload["nested"]["list"] == [1, "two", None]
    assert isinstance(first.send_after, datetime)
