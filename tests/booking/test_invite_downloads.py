"""invite.ics downloads across workers and app shutdown, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import icalendar
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app import create_app
from booking.schemas import RegistrationIn
from booking.service import InviteFiles, register
from core.db import Database
from core.settings import Settings
from tests.booking.test_registration import make_session, make_webinar

Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No outbox worker: these tests are about the downloads, not the mail.
    return settings.with_(background_workers=False)


def invite(content: bytes) -> tuple[str, str, object]:
    """The file's METHOD, and its event's UID and SEQUENCE."""
    calendar = icalendar.Calendar.from_ical(content)
    [event] = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), str(event["UID"]), event["SEQUENCE"]


async def test_an_invite_reflects_a_cancel_made_by_another_worker(
    client: Client, db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    registered = await client.post(
        f"/api/sessions/{sid}/registrations", json={"name": "Ann Lee", "email": "ann@example.org"}
    )
    token = registered.json()["token"]
    url = f"/api/registrations/{token}/invite.ics"
    method, uid, sequence = invite((await client.get(url)).content)
    assert (method, sequence) == ("REQUEST", 0)
    # Another worker: its own app, connections and cache of files, on the same database.
    async with AsyncTestClient(app=create_app(settings)) as other:
        assert (await other.delete(f"/api/registrations/{token}")).status_code == 200
    # This worker had the REQUEST cached; it must not serve it again.
    cancelled = await client.get(url)
    assert cancelled.status_code == 200
    assert invite(cancelled.content) == ("CANCEL", uid, 1)


def open_files_under(path: Path) -> list[str]:
    """This process's open files whose path starts with `path` (the database and its -wal, -shm)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files through /proc")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_disposing_the_database_closes_the_connection_downloads_read_on(
    db: Database, settings: Settings
) -> None:
    sid = make_session(db, make_webinar(db), capacity=5)
    _, registered = register(db, settings, sid, RegistrationIn(name="Ann Lee", email="ann@example.org"))
    assert registered.token is not None
    files = InviteFiles(db, settings)
    first = await files.download(registered.token)
    database_file = Path(db.engine.url.database or "")
    db.dispose()
    # What the app's shutdown does: no connection to the database is left open.
    assert open_files_under(database_file) == []
    assert await files.download(registered.token) == first
