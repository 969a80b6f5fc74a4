"""Account tables. They stay inside `accounts/`: routes and other domains speak through the service."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class AdminUser(SQLModel, table=True):
    __tablename__ = "admin_user"

    id: int | None = Field(default=None, primary_key=True)
    # Lower-cased and trimmed, so one person has one account whatever they type.
    email: str = Field(max_length=254, unique=True)
    # Argon2id, PHC string format: algorithm, parameters and salt travel with the hash.
    password_hash: str = Field(max_length=255)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class AdminSession(SQLModel, table=True):
    """One signed-in browser. Only a hash of the cookie's token is kept, so a copy of this table
    cannot be replayed as a login."""

    __tablename__ = "admin_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    admin_id: int = Field(
        sa_column=Column(Integer, ForeignKey("admin_user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    # Synchronizer token: sent back by the client on every unsafe request, never in a cookie.
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    ip: str = Field(default="", max_length=45)
    user_agent: str = Field(default="", max_length=300)


class LoginAttempt(SQLModel, table=True):
    """Every sign-in attempt, in the database so that all workers count the same failures."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_at", "email", "at"),
        Index("ix_login_attempt_ip_at", "ip", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254)
    ip: str = Field(max_length=45)
    succeeded: bool = False
    at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """Who changed what, when, with the record before and after. Rows are only ever added."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_entity_entity_id", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    # The e-mail is copied so the entry still says who it was if the account goes away.
    actor_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin_user.id", ondelete="SET NULL"), nullable=True),
    )
    actor_email: str = Field(max_length=254)
    action: str = Field(max_length=60)
    entity: str = Field(max_length=60)
    entity_id: str = Field(max_length=120)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
