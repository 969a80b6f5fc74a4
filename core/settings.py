"""Settings, read from the environment once, by whoever builds the app (never at import time)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_VAR_DIR = Path("var")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_VAR_DIR / 'orthodex.db'}"
    network_name: str = "Orthodex Clinic Network"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    mail_from: str = "webinars@orthodex.example"
    mail_dir: Path = DEFAULT_VAR_DIR / "mail"
    # How often each worker looks for directory changes made elsewhere (admin edits, other workers).
    directory_refresh_seconds: float = 0.25
    # Start the outbox worker and the directory refresher with the app (off in some tests).
    background_workers: bool = True
    reminder_hours: float = 24.0
    # Outbox worker (core/mail.py): how often it looks for due mail; how long a claimed row stays
    # its worker's (a crashed worker's rows go to another after this; keep it well above an SMTP
    # exchange); first retry delay, doubled per attempt; attempts before a transient error is final.
    outbox_poll_seconds: float = 1.0
    outbox_lease_seconds: float = 300.0
    outbox_retry_seconds: float = 30.0
    outbox_max_attempts: int = 48
    # The most of its time the outbox worker spends rendering e-mails (CPU in this process) while
    # requests keep the process busy: during a rush they come first, and the mail follows. When
    # the process is otherwise idle it renders flat out. 1 always renders flat out.
    outbox_render_duty: float = 0.2
    smtp_timeout_seconds: float = 30.0
    debug: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            database_url=_normalise_db_url(env.get("DATABASE_URL") or defaults.database_url),
            network_name=env.get("NETWORK_NAME") or defaults.network_name,
            base_url=(env.get("BASE_URL") or defaults.base_url).rstrip("/"),
            # Without SECRET_KEY each process invents one: fine for one local process only.
            secret_key=env.get("SECRET_KEY") or defaults.secret_key,
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=int(env.get("SMTP_PORT") or defaults.smtp_port),
            smtp_user=env.get("SMTP_USER") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            mail_from=env.get("MAIL_FROM") or defaults.mail_from,
            mail_dir=Path(env.get("MAIL_DIR") or defaults.mail_dir),
            directory_refresh_seconds=float(
                env.get("DIRECTORY_REFRESH_SECONDS") or defaults.directory_refresh_seconds
            ),
            reminder_hours=float(env.get("REMINDER_HOURS") or defaults.reminder_hours),
            debug=(env.get("DEBUG") or "").lower() in {"1", "true", "yes"},
        )


def _normalise_db_url(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy wants a driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
