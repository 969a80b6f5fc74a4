"""Test fixtures: the real app from the factory, a fresh database per test, on SQLite and PostgreSQL.

PostgreSQL tests get their own schema in the `test` database, so tests (and several developers)
can run at once. With REQUIRE_POSTGRES=1 an unreachable PostgreSQL fails those tests instead of
skipping them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from accounts.guards import CSRF_HEADER
from accounts.service import create_admin
from app import create_app
from core.db import Database
from core.models import import_all_models
from core.settings import Settings
from tests.mailserver import MailServer

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"

import_all_models()


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


_PG_PROBLEM: str | None = None
_PG_CHECKED = False


def require_postgres() -> None:
    global _PG_CHECKED, _PG_PROBLEM
    if not _PG_CHECKED:
        _PG_PROBLEM, _PG_CHECKED = _postgres_reachable(), True
    if _PG_PROBLEM:
        message = f"PostgreSQL unreachable at {PG_URL}: {_PG_PROBLEM}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own, dropped afterwards."""
    require_postgres()
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orthodex.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once per database."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        network_name="Test Clinic Network",
        base_url="http://testserver.local",
        secret_key="test-secret-key-not-for-production",
        mail_dir=tmp_path / "mail",
        directory_refresh_seconds=0.05,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The test's database with every table created (migrations have their own test)."""
    database = Database(settings.database_url)
    SQLModel.metadata.create_all(database.engine)
    with database.write() as session:
        from directory.models import DirectoryState

        session.add(DirectoryState(id=1, version=0))
    yield database
    database.dispose()


@pytest.fixture
def smtp_server() -> Iterator[MailServer]:
    """A real SMTP server on a free loopback port; `.messages` holds what it received."""
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app(settings: Settings, db: Database) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


ADMIN_EMAIL = "admin@clinic.example"
ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_account(db: Database) -> tuple[str, str]:
    """An admin account in the test database: (email, password)."""
    create_admin(db, ADMIN_EMAIL, ADMIN_PASSWORD)
    return ADMIN_EMAIL, ADMIN_PASSWORD


@pytest.fixture
async def admin_client(
    client: AsyncTestClient[Litestar], admin_account: tuple[str, str]
) -> AsyncTestClient[Litestar]:
    """`client`, signed in as an admin and sending its CSRF token (X-CSRF-Token) on every request."""
    email, password = admin_account
    response = await client.post("/api/admin/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers[CSRF_HEADER] = response.json()["csrf_token"]
    return client
