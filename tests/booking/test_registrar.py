"""The API's registrations on SQLite run on the event loop: they wait for other writers without
blocking it, give up with a 503 that loses nothing, and leave WAL checkpoints to a worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

import core.db
from booking.schemas import RegistrationIn
from booking.service import Busy, Registrar
from booking.service import register as register_in_thread
from core.db import Database
from core.settings import Settings
from tests.booking.test_invite_downloads import open_files_under
from tests.booking.test_registration import make_session, make_webinar, register, registrations, seats

Client = AsyncTestClient[Litestar]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    # What these tests are about exists on SQLite only (PostgreSQL registers in a worker thread).
    return sqlite_url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(background_workers=False)


def database_file(settings: Settings) -> str:
    path = make_url(settings.database_url).database
    assert path
    return path


async def loop_goes_on_while(pending: asyncio.Task[Any]) -> None:
    """The event loop runs other work while the registration waits: it is not blocked."""
    started = time.monotonic()
    for _ in range(5):
        await asyncio.sleep(0.02)
    assert time.monotonic() - started < 1
    assert not pending.done(), "the registration should still be waiting for its turn"


def attempt(registrar: Registrar, session_id: int, email: str) -> asyncio.Task[Any]:
    return asyncio.create_task(registrar.register(session_id, RegistrationIn(name="Ann Lee", email=email)))


@pytest.fixture
def app_db(settings: Settings) -> Iterator[Database]:
    """The app's own Database (its own writers' turn), beside the test's."""
    database = Database(settings.database_url)
    yield database
    database.dispose()


async def test_a_registration_waits_for_another_connections_write(
    settings: Settings, db: Database, app_db: Database
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    registrar = Registrar(app_db, settings)
    # Another process's writer, as far as the registrar can tell: its own connection to the file.
    other = sqlite3.connect(database_file(settings), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        pending = attempt(registrar, sid, "ann@example.org")
        await loop_goes_on_while(pending)
    finally:
        other.execute("COMMIT")
        other.close()
    status, out = await pending
    assert (status, out.status) == (201, "confirmed")
    assert seats(db, sid) == (1, 5)


async def test_a_registration_waits_for_this_process_s_other_writers(
    settings: Settings, db: Database
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    app_db = Database(settings.database_url)
    registrar = Registrar(app_db, settings)
    turn = app_db.writer_turn
    assert turn is not None
    turn.acquire()  # as the outbox worker or an admin's change in a worker thread would
    try:
        pending = attempt(registrar, sid, "ann@example.org")
        await loop_goes_on_while(pending)
    finally:
        turn.release()
    status, _ = await pending
    assert status == 201
    assert [r.email for r in registrations(db, sid)] == ["ann@example.org"]


async def test_busy_for_too_long_is_a_503_that_writes_nothing(
    client: Client, app: Litestar, db: Database
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    registrar: Registrar = app.state.registrar
    registrar.wait_seconds = 0.3
    turn = app.state.db.writer_turn
    turn.acquire()  # a writer of this process that does not finish
    try:
        response = await register(client, sid, "ann@example.org")
    finally:
        turn.release()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert "try again" in response.json()["detail"]
    assert registrations(db, sid) == []
    assert seats(db, sid) == (0, 5)
    # The database is free again: the same request now goes through.
    assert (await register(client, sid, "ann@example.org")).status_code == 201


def test_another_process_writing_past_the_busy_timeout_is_busy_not_an_error(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A registration that waited on another process's write (in a worker thread, in SQLite's busy
    # handler) for the whole busy timeout: the same 503 as above, not a 500.
    sid = make_session(db, make_webinar(db), capacity=5)
    monkeypatch.setattr(core.db, "BUSY_TIMEOUT_S", 0.3)
    impatient = Database(settings.database_url)
    other = sqlite3.connect(database_file(settings), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Busy, match="try again"):
            register_in_thread(
                impatient, settings, sid, RegistrationIn(name="Ann Lee", email="ann@example.org")
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
        impatient.dispose()
    assert registrations(db, sid) == []


async def wal_frames_after(
    client: Client, app: Litestar, settings: Settings, db: Database, every: int
) -> int:
    registrar: Registrar = app.state.registrar
    registrar.checkpoint_every = every
    sid = make_session(db, make_webinar(db), capacity=1000)
    for n in range(60):
        assert (await register(client, sid, f"p{n}@example.org")).status_code == 201
        # Let a checkpoint the registrar started finish before the next commit.
        await asyncio.sleep(0.01)
    # The frames in the log since it last restarted (this checkpoint's own work aside).
    check = sqlite3.connect(database_file(settings))
    try:
        _, frames, _ = check.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        check.close()
    return int(frames)


async def test_checkpoints_keep_the_wal_small(
    client: Client, app: Litestar, settings: Settings, db: Database
) -> None:
    # The registrar's connection never checkpoints on commit; a worker thread does it every few
    # commits, so the log restarts instead of growing with every registration.
    # (60 registrations write ~900 frames: see the next test.)
    assert await wal_frames_after(client, app, settings, db, every=4) < 200


async def test_without_checkpoints_the_wal_grows(
    client: Client, app: Litestar, settings: Settings, db: Database
) -> None:
    # The control for the test above: the same registrations, no checkpoint, a much longer log.
    assert await wal_frames_after(client, app, settings, db, every=10**9) > 600


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files through /proc")
async def test_disposing_the_database_closes_the_registrar_s_connection(
    settings: Settings, db: Database, app_db: Database
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    registrar = Registrar(app_db, settings)
    assert (await attempt(registrar, sid, "ann@example.org"))[0] == 201
    app_db.dispose()
    # What the app's shutdown does: none of its connections to the database is left open.
    db.dispose()
    assert open_files_under(Path(database_file(settings))) == []
    # A registrar used after that opens a connection again.
    assert (await attempt(registrar, sid, "bob@example.org"))[0] == 201
