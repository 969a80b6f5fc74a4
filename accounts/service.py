"""Admin accounts: creating them, signing in and out, sessions, throttling and the audit log.

Sessions live in the database (shared by every worker); the cookie carries a random token and the
table keeps only its SHA-256, so neither a leaked table nor a client-chosen value can open one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlmodel import Session, col

from accounts.models import AdminSession, AdminUser, AuditEntry, LoginAttempt, utcnow
from accounts.schemas import AuditEntryOut, AuditPage
from core.db import Database

# OWASP session management: a short idle timeout and an absolute one, whatever the activity.
SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=8)
# Writing last_seen_at on every request would make each admin read a write; once a minute is enough.
TOUCH_EVERY = timedelta(seconds=60)

THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
KEEP_ATTEMPTS = timedelta(days=1)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# argon2-cffi's defaults are Argon2id with RFC 9106's second recommended parameter set.
_hasher = PasswordHasher()
# A hash of a password nobody knows, with the same parameters: an unknown e-mail costs the same
# verification as a wrong password, so response time does not tell which accounts exist.
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$7J7AaiSvqjgY315LDkRgog$dP6HoF2r/6864k26TJCwua6iEGK95L2r0D/bFEcVNHc"
)


class AccountError(ValueError):
    """An account that cannot be created as asked; the message says why."""


class BadCredentials(Exception):
    """Unknown e-mail, wrong password or disabled account: deliberately indistinguishable."""


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Admin:
    """The signed-in admin behind a request."""

    id: int
    email: str
    session_id: int
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SignedIn:
    admin: Admin
    # Goes into the cookie and nowhere else; the database only has its hash.
    token: str


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    return None


def hash_password(password: str) -> str:
    """Argon2id; slow on purpose, so callers on the event loop run it in a thread."""
    return _hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_admin(db: Database, email: str, password: str) -> int:
    """Add an admin account; returns its id. Raises AccountError for a bad e-mail or password."""
    email = normalise_email(email)
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise AccountError(f"'{email}' is not an e-mail address.")
    problem = password_problem(password)
    if problem:
        raise AccountError(f"Password too weak: {problem}")
    password_hash = hash_password(password)
    with db.write() as session:
        if (
            session.execute(select(col(AdminUser.id)).where(col(AdminUser.email) == email)).first()
            is not None
        ):
            raise AccountError(f"An admin with e-mail {email} already exists.")
        user = AdminUser(email=email, password_hash=password_hash)
        session.add(user)
        session.flush()
        assert user.id is not None
        record_audit(session, None, "admin.create", "admin", str(user.id), None, {"email": email})
        return user.id


async def login(
    db: Database,
    email: str,
    password: str,
    ip: str,
    user_agent: str = "",
    replaces: str | None = None,
) -> SignedIn:
    """Check a password and open a new session with a fresh token.

    `replaces` is the session token the browser already had, if any: it is revoked, never reused
    (session fixation). Raises LoginThrottled or BadCredentials.
    """
    email = normalise_email(email)[:254]
    ip = ip[:45]
    attempt_id, user_id, stored_hash = await anyio.to_thread.run_sync(_begin_attempt, db, email, ip)
    ok, new_hash = await anyio.to_thread.run_sync(_verify, stored_hash, password)
    if not ok or user_id is None:
        raise BadCredentials
    return await anyio.to_thread.run_sync(
        _open_session, db, attempt_id, user_id, new_hash, ip, user_agent[:300], replaces
    )


def _begin_attempt(db: Database, email: str, ip: str) -> tuple[int, int | None, str | None]:
    """Refuse if throttled; otherwise record the attempt as failed until proven otherwise.

    Recording it before the password is checked makes concurrent guesses count against the limit.
    """
    with db.write() as session:
        now = utcnow()
        if session.get_bind().dialect.name == "postgresql":
            # SQLite's IMMEDIATE transactions already serialise this; PostgreSQL needs a lock so two
            # workers cannot both see four failures and both let a fifth guess through.
            for key in (f"login-email:{email}", f"login-ip:{ip}"):
                session.execute(select(func.pg_advisory_xact_lock(_lock_key(key))))
        retry = max(_account_retry_after(session, email, now), _address_retry_after(session, ip, now))
        if retry > 0:
            raise LoginThrottled(retry)
        attempt = LoginAttempt(email=email, ip=ip, at=now)
        session.add(attempt)
        user = session.execute(select(AdminUser).where(col(AdminUser.email) == email)).scalars().first()
        session.flush()
        assert attempt.id is not None
        if user is None or not user.active:
            return attempt.id, None, None
        return attempt.id, user.id, user.password_hash


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _account_retry_after(session: Session, email: str, now: datetime) -> int:
    last_success = session.execute(
        select(func.max(LoginAttempt.at)).where(
            col(LoginAttempt.email) == email, col(LoginAttempt.succeeded).is_(True)
        )
    ).scalar_one_or_none()
    since = now - THROTTLE_WINDOW
    if last_success is not None and last_success > since:
        since = last_success
    failures = (col(LoginAttempt.email) == email, col(LoginAttempt.succeeded).is_(False))
    return _retry_after(session, failures, since, MAX_FAILURES_PER_ACCOUNT, now)


def _address_retry_after(session: Session, ip: str, now: datetime) -> int:
    failures = (col(LoginAttempt.ip) == ip, col(LoginAttempt.succeeded).is_(False))
    return _retry_after(session, failures, now - THROTTLE_WINDOW, MAX_FAILURES_PER_ADDRESS, now)


def _retry_after(session: Session, where: tuple[Any, ...], since: datetime, limit: int, now: datetime) -> int:
    """Seconds until fewer than `limit` failures remain in the window; 0 when not throttled."""
    recent = (
        session.execute(
            select(col(LoginAttempt.at))
            .where(*where, col(LoginAttempt.at) > since)
            .order_by(col(LoginAttempt.at).desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if len(recent) < limit:
        return 0
    seconds = (recent[-1] + THROTTLE_WINDOW - now).total_seconds()
    return max(1, int(seconds) + 1)


def _verify(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(password matches, a new hash if the stored one uses outdated parameters)."""
    try:
        _hasher.verify(stored_hash or DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None)


def _open_session(
    db: Database,
    attempt_id: int,
    user_id: int,
    new_hash: str | None,
    ip: str,
    user_agent: str,
    replaces: str | None,
) -> SignedIn:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as session:
        session.execute(update(LoginAttempt).where(col(LoginAttempt.id) == attempt_id).values(succeeded=True))
        if replaces:
            session.execute(delete(AdminSession).where(col(AdminSession.token_hash) == _token_hash(replaces)))
        # Housekeeping rides on logins: they are rare, and every worker does them.
        session.execute(
            delete(AdminSession).where(
                (col(AdminSession.expires_at) < now) | (col(AdminSession.last_seen_at) < now - SESSION_IDLE)
            )
        )
        session.execute(delete(LoginAttempt).where(col(LoginAttempt.at) < now - KEEP_ATTEMPTS))
        user = session.get(AdminUser, user_id)
        assert user is not None
        user.last_login_at = now
        if new_hash:
            user.password_hash = new_hash
        row = AdminSession(
            token_hash=_token_hash(token),
            admin_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_ABSOLUTE,
            ip=ip,
            user_agent=user_agent,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        admin = Admin(user_id, user.email, row.id, row.csrf_token, row.expires_at)
        record_audit(session, admin, "admin.login", "admin", str(user_id), None, {"ip": ip})
    return SignedIn(admin=admin, token=token)


def resume_session(db: Database, token: str) -> Admin | None:
    """The admin whose session this cookie token opens, or None if it is unknown or has expired."""
    if not token or len(token) > 128:
        return None
    now = utcnow()
    with db.session() as session:
        found = session.execute(
            select(AdminSession, AdminUser)
            .join(AdminUser, col(AdminUser.id) == AdminSession.admin_id)
            .where(col(AdminSession.token_hash) == _token_hash(token))
        ).first()
    if found is None:
        return None
    row, user = found
    assert row.id is not None
    if not user.active or row.expires_at <= now or row.last_seen_at + SESSION_IDLE <= now:
        with db.write() as session:
            session.execute(delete(AdminSession).where(col(AdminSession.id) == row.id))
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with db.write() as session:
            session.execute(
                update(AdminSession).where(col(AdminSession.id) == row.id).values(last_seen_at=now)
            )
    return Admin(user.id or 0, user.email, row.id, row.csrf_token, row.expires_at)


def logout(db: Database, admin: Admin) -> None:
    """End this session (only this browser's; other sessions of the same admin stay)."""
    with db.write() as session:
        session.execute(delete(AdminSession).where(col(AdminSession.id) == admin.session_id))
        record_audit(session, admin, "admin.logout", "admin", str(admin.id), None, None)


def record_audit(
    session: Session,
    actor: Admin | None,
    action: str,
    entity: str,
    entity_id: str | int,
    before: Any,
    after: Any,
) -> None:
    """Add an audit entry in the caller's transaction, so it commits (or not) with the change.

    `actor` None means the command line. `before`/`after` are any msgspec-encodable values
    (Structs, dataclasses, dicts); they are stored as JSON.
    """
    session.add(
        AuditEntry(
            at=utcnow(),
            actor_id=actor.id if actor else None,
            actor_email=actor.email if actor else "(command line)",
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=_json(before),
            after=_json(after),
        )
    )


def _json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    built = msgspec.to_builtins(value)
    return built if isinstance(built, dict) else {"value": built}


def list_audit(
    db: Database,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> AuditPage:
    """Newest first; page on with `before_id` = the last id seen."""
    query = select(AuditEntry)
    if entity:
        query = query.where(col(AuditEntry.entity) == entity)
    if entity_id:
        query = query.where(col(AuditEntry.entity_id) == entity_id)
    if action:
        query = query.where(col(AuditEntry.action) == action)
    if actor:
        query = query.where(col(AuditEntry.actor_email) == normalise_email(actor))
    if before_id:
        query = query.where(col(AuditEntry.id) < before_id)
    with db.session() as session:
        rows = session.execute(query.order_by(col(AuditEntry.id).desc()).limit(limit + 1)).scalars().all()
    items = [
        AuditEntryOut(
            id=r.id or 0,
            at=r.at,
            actor=r.actor_email,
            action=r.action,
            entity=r.entity,
            entity_id=r.entity_id,
            before=r.before,
            after=r.after,
        )
        for r in rows[:limit]
    ]
    return AuditPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)
