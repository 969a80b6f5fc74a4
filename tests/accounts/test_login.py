"""Signing in and out: cookies, session rotation and expiry, CSRF, throttling, the CLI, on both databases."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import col, select

from accounts.guards import CSRF_HEADER, SESSION_COOKIE
from accounts.models import AdminSession, AdminUser, LoginAttempt, utcnow
from accounts.service import DUMMY_HASH, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS, _hasher
from app import create_app
from core.db import Database
from core.settings import Settings

Client = AsyncTestClient[Litestar]
ROOT = Path(__file__).resolve().parents[2]


async def login(client: Client, email: str, password: str) -> tuple[int, dict[str, str], str]:
    response = await client.post("/api/admin/login", json={"email": email, "password": password})
    return response.status_code, dict(response.headers), response.text


def set_cookie(headers: dict[str, str]) -> dict[str, str]:
    """The session cookie's attributes from a Set-Cookie header, lower-cased."""
    parts = [p.strip() for p in headers["set-cookie"].split(";")]
    name, _, value = parts[0].partition("=")
    assert name == SESSION_COOKIE
    attributes = {"value": value}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val
    return attributes


async def test_login_sets_a_hardened_cookie_and_returns_csrf(
    client: Client, admin_account: tuple[str, str], db: Database
) -> None:
    email, password = admin_account
    response = await client.post(
        "/api/admin/login", json={"email": email.upper() + " ", "password": password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] == email
    assert len(body["csrf_token"]) >= 32
    assert response.headers["cache-control"] == "no-store"
    cookie = set_cookie(dict(response.headers))
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert 0 < int(cookie["max-age"]) <= 8 * 3600
    # BASE_URL is http:// in these tests: a developer's machine, so no Secure flag.
    assert "secure" not in cookie
    token = cookie["value"]
    with db.session() as session:
        stored = session.exec(select(AdminSession)).all()
    assert [s.token_hash for s in stored] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in {s.token_hash for s in stored} | {s.csrf_token for s in stored}
    session_info = await client.get("/api/admin/session")
    assert session_info.status_code == 200
    assert session_info.json()["csrf_token"] == body["csrf_token"]


async def test_cookie_is_secure_when_served_over_https(
    settings: Settings, admin_account: tuple[str, str]
) -> None:
    app = create_app(settings.with_(base_url="https://directory.clinic.example"))
    async with AsyncTestClient(app=app) as client:
        status, headers, _ = await login(client, *admin_account)
    assert status == 200
    assert "secure" in set_cookie(headers)


async def test_unknown_email_and_wrong_password_look_the_same(
    client: Client, admin_account: tuple[str, str]
) -> None:
    email, password = admin_account
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    answers = set()
    for _ in range(3):
        for kind, who in (("wrong", email), ("unknown", "nobody@clinic.example")):
            started = time.perf_counter()
            status, headers, text = await login(client, who, password + "x")
            timings[kind].append(time.perf_counter() - started)
            assert "set-cookie" not in headers
            answers.add((status, text))
    assert answers == {(401, '{"status_code":401,"detail":"E-mail or password is not correct."}')}
    # An unknown e-mail still pays for an Argon2 verification: without the dummy hash it would
    # answer in a few milliseconds instead of about a tenth of a second.
    assert min(timings["unknown"]) > 0.5 * min(timings["wrong"])
    assert not _hasher.check_needs_rehash(DUMMY_HASH), "DUMMY_HASH must use the hasher's parameters"


async def test_login_issues_a_new_session_and_never_adopts_the_clients(
    client: Client, admin_account: tuple[str, str]
) -> None:
    # Session fixation: a value planted in the browser before login must not become the session.
    client.cookies.set(SESSION_COOKIE, "planted-by-an-attacker", domain="testserver.local")
    status, headers, _ = await login(client, *admin_account)
    assert status == 200
    first = set_cookie(headers)["value"]
    assert first != "planted-by-an-attacker"
    # Signing in again from the same browser rotates the token and revokes the old one.
    status, headers, _ = await login(client, *admin_account)
    second = set_cookie(headers)["value"]
    assert second != first
    assert (await client.get("/api/admin/session")).status_code == 200
    for stale in (first, "planted-by-an-attacker"):
        client.cookies.set(SESSION_COOKIE, stale, domain="testserver.local")
        assert (await client.get("/api/admin/session")).status_code == 401


async def test_logout_ends_the_session_on_the_server(admin_client: Client, db: Database) -> None:
    token = admin_client.cookies[SESSION_COOKIE]
    response = await admin_client.post("/api/admin/logout")
    assert response.status_code == 204
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert (await admin_client.get("/api/admin/session")).status_code == 401
    # Replaying the old cookie does not help: the server forgot the session.
    admin_client.cookies.set(SESSION_COOKIE, token, domain="testserver.local")
    assert (await admin_client.get("/api/admin/session")).status_code == 401
    with db.session() as session:
        assert session.exec(select(AdminSession)).all() == []


async def test_csrf_token_required_on_changes(admin_client: Client) -> None:
    token = admin_client.headers.pop(CSRF_HEADER)
    assert (await admin_client.post("/api/admin/logout")).status_code == 403
    wrong = await admin_client.post("/api/admin/logout", headers={CSRF_HEADER: token[:-1] + "x"})
    assert wrong.status_code == 403
    assert "CSRF" in wrong.json()["detail"]
    # Still signed in: the rejected requests changed nothing.
    assert (await admin_client.get("/api/admin/session")).status_code == 200
    # Pages send the token as a form field instead of a header.
    response = await admin_client.post("/api/admin/logout", data={"_csrf": token})
    assert response.status_code == 204
    assert (await admin_client.get("/api/admin/session")).status_code == 401


async def test_idle_and_absolute_expiry(admin_client: Client, db: Database) -> None:
    def age(**values: object) -> None:
        with db.write() as session:
            session.execute(update(AdminSession).values(**values))

    age(last_seen_at=utcnow() - timedelta(minutes=5))
    assert (await admin_client.get("/api/admin/session")).status_code == 200
    with db.session() as session:
        seen = session.exec(select(AdminSession)).one().last_seen_at
    assert utcnow() - seen < timedelta(seconds=30), "activity keeps the session alive"
    age(expires_at=utcnow() - timedelta(seconds=1))
    assert (await admin_client.get("/api/admin/session")).status_code == 401

    status, _, _ = await login(admin_client, "admin@clinic.example", "correct horse battery staple")
    assert status == 200
    age(last_seen_at=utcnow() - timedelta(minutes=31))
    response = await admin_client.get("/api/admin/session")
    assert response.status_code == 401
    assert "ended" in response.json()["detail"]
    with db.session() as session:
        assert session.exec(select(AdminSession)).all() == []


async def test_throttled_per_account_with_retry_after(
    client: Client, admin_account: tuple[str, str], db: Database
) -> None:
    email, password = admin_account
    # A success resets the account's count.
    for _ in range(MAX_FAILURES_PER_ACCOUNT - 1):
        assert (await login(client, email, "wrong password!"))[0] == 401
    assert (await login(client, email, password))[0] == 200
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert (await login(client, email, "wrong password!"))[0] == 401
    status, headers, text = await login(client, email, password)
    assert status == 429, text
    assert 60 < int(headers["retry-after"]) <= 15 * 60
    assert "Try again in" in text
    # Unknown accounts are throttled the same way, so 429 does not reveal which exist.
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        await login(client, "ghost@clinic.example", "wrong password!")
    assert (await login(client, "ghost@clinic.example", "wrong password!"))[0] == 429
    # When the window has passed, the account can sign in again.
    with db.write() as session:
        session.execute(update(LoginAttempt).values(at=utcnow() - timedelta(minutes=16)))
    assert (await login(client, email, password))[0] == 200


async def test_throttled_per_address_across_workers(
    client: Client, admin_account: tuple[str, str], settings: Settings
) -> None:
    email, password = admin_account
    for i in range(MAX_FAILURES_PER_ADDRESS):
        assert (await login(client, f"guess{i}@clinic.example", "wrong password!"))[0] == 401
    # Another worker process shares the count: it lives in the database, not in memory.
    async with AsyncTestClient(app=create_app(settings)) as other_worker:
        status, headers, _ = await login(other_worker, email, password)
    assert status == 429
    assert int(headers["retry-after"]) > 0


async def test_bad_login_bodies_are_400(client: Client) -> None:
    for body in ({"email": "a@b.c"}, {"email": "a@b.c", "password": "x", "remember": True}, {"email": 3}):
        response = await client.post("/api/admin/login", json=body)
        assert response.status_code == 400, body


def run_cli(database_url: str, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    # A new session has no terminal, so the hidden prompt reads the piped stdin.
    return subprocess.run(
        [str(Path(sys.executable).with_name("litestar")), "--app", "app:create_app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        start_new_session=True,
        check=False,
    )


async def test_cli_creates_an_admin_who_can_sign_in(settings: Settings, db: Database, client: Client) -> None:
    password = "a long clinic passphrase"
    result = run_cli(
        settings.database_url, "admin", "create", "Nurse@Clinic.example", stdin=f"{password}\n{password}\n"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Admin nurse@clinic.example created." in result.stdout
    assert password not in result.stdout
    with db.session() as session:
        user = session.exec(select(AdminUser).where(col(AdminUser.email) == "nurse@clinic.example")).one()
    assert user.password_hash.startswith("$argon2id$")
    assert (await login(client, "nurse@clinic.example", password))[0] == 200

    again = run_cli(
        settings.database_url, "admin", "create", "nurse@clinic.example", stdin=f"{password}\n{password}\n"
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr + again.stdout
    short = run_cli(settings.database_url, "admin", "create", "x@clinic.example", stdin="short\nshort\n")
    assert short.returncode != 0
    assert "at least 12 characters" in short.stderr + short.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_password_must_be_typed_twice_alike(settings: Settings, db: Database) -> None:
    result = run_cli(
        settings.database_url,
        "admin",
        "create",
        "y@clinic.example",
        stdin="first passphrase!!\nsecond passphrase!\n",
    )
    assert result.returncode != 0
    assert "do not match" in result.stderr + result.stdout
    with db.session() as session:
        assert session.exec(select(AdminUser)).all() == []
