"""Capacity and one-registration-per-address under load, against a running server with two workers.

A real `litestar run --wc 2` process per database (a SQLite file, a PostgreSQL schema), migrated
first; many registrations arrive at once over HTTP and the database is counted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import col, select

from booking.models import Registration, WebinarSession
from core.db import Database
from core.mail import OutboxMessage
from core.migrate import upgrade
from tests.booking.test_registration import make_session, make_webinar
from tests.conftest import PG_URL, require_postgres
from tests.mailserver import free_port

ROOT = Path(__file__).resolve().parents[2]
LITESTAR = Path(sys.executable).parent / "litestar"


@dataclass
class Server:
    url: str
    db: Database


def start_server(database_url: str, workdir: Path, workers: int = 2) -> Iterator[Server]:
    """`litestar run` in its own process group, until the generator is closed."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "concurrency-test-secret",
        "BASE_URL": f"http://127.0.0.1:{port}",
        "MAIL_DIR": str(workdir / "mail"),
    }
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(LITESTAR),
            "--app",
            "app:create_app",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--wc",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    db = Database(database_url)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited:\n{(workdir / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{(workdir / 'server.log').read_text()}")
            time.sleep(0.1)
        yield Server(url, db)
    finally:
        db.dispose()
        # The whole group: the supervisor and its worker processes.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One migrated database and one two-worker server for this module's tests, per database."""
    workdir = tmp_path_factory.mktemp(f"server-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'orthodex.db'}"
        upgrade(url)
        yield from start_server(url, workdir)
        return
    require_postgres()
    schema = f"t_{os.urandom(6).hex()}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        upgrade(url)
        yield from start_server(url, workdir)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def post_all(
    server: Server, session_id: int, bodies: list[dict[str, Any]], **headers: str
) -> list[httpx.Response]:
    """Every request in flight at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
        return await asyncio.gather(
            *(
                client.post(f"/api/sessions/{session_id}/registrations", json=b, headers=headers)
                for b in bodies
            )
        )


def counted(db: Database, session_id: int) -> tuple[Counter[str], WebinarSession, list[Registration]]:
    with db.session() as session:
        rows = list(
            session.exec(select(Registration).where(col(Registration.session_id) == session_id)).all()
        )
        sess = session.get(WebinarSession, session_id)
        assert sess is not None
    return Counter(r.status for r in rows), sess, rows


def outbox_kinds(db: Database, session_id: int) -> Counter[str]:
    with db.session() as session:
        return Counter(
            session.exec(
                select(col(OutboxMessage.kind)).where(col(OutboxMessage.session_id) == session_id)
            ).all()
        )


def test_200_at_once_for_50_seats_give_50_confirmed_and_150_waitlisted(server: Server) -> None:
    session_id = make_session(server.db, make_webinar(server.db), capacity=50)
    bodies = [{"name": f"Patient {i}", "email": f"patient{i}@example.org"} for i in range(200)]
    answers = asyncio.run(post_all(server, session_id, bodies))
    assert Counter(a.status_code for a in answers) == {201: 200}
    assert Counter(a.json()["status"] for a in answers) == {"confirmed": 50, "waitlisted": 150}
    statuses, sess, rows = counted(server.db, session_id)
    assert statuses == {"confirmed": 50, "waitlisted": 150}
    assert (sess.seats_taken, sess.capacity) == (50, 50)
    # The waitlist is one line: every ticket handed out once, positions 1..150 once each.
    tickets = sorted(r.waitlist_ticket or 0 for r in rows if r.status == "waitlisted")
    assert tickets == list(range(1, 151))
    positions = sorted(a.json()["waitlist_position"] for a in answers if a.json()["status"] == "waitlisted")
    assert len(set(positions)) == 150
    # The join link went to the 50 seat holders and nobody else.
    assert sum(a.json()["join_url"] is not None for a in answers) == 50
    # Each registration's e-mail was in the outbox once its answer came back (committed with it),
    # and each seat's reminder with it.
    assert outbox_kinds(server.db, session_id) == {"confirmed": 50, "reminder": 50, "waitlisted": 150}


def test_50_at_once_with_one_address_give_one_registration(server: Server) -> None:
    session_id = make_session(server.db, make_webinar(server.db), capacity=10)
    bodies = [{"name": "Ann Lee", "email": "ann@example.org"}] * 50
    answers = asyncio.run(post_all(server, session_id, bodies))
    assert Counter(a.status_code for a in answers) == {201: 1, 200: 49}
    statuses, sess, _ = counted(server.db, session_id)
    assert statuses == {"confirmed": 1}
    assert sess.seats_taken == 1
    tokens = {a.json()["token"] for a in answers}
    assert len(tokens) == 2
    assert None in tokens


def test_retries_with_one_idempotency_key_give_the_first_answer(server: Server) -> None:
    session_id = make_session(server.db, make_webinar(server.db), capacity=10)
    bodies = [{"name": "Bob Roe", "email": "bob@example.org"}] * 30
    answers = asyncio.run(post_all(server, session_id, bodies, **{"Idempotency-Key": "retry-7f3a"}))
    assert Counter(a.status_code for a in answers) == {201: 30}
    assert len({a.json()["token"] for a in answers}) == 1
    statuses, _, _ = counted(server.db, session_id)
    assert statuses == {"confirmed": 1}
