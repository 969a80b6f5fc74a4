"""What the account API speaks: msgspec Structs with bounds; unknown fields are rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec


class LoginIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class SessionOut(msgspec.Struct, kw_only=True):
    email: str
    # Send it back as the X-CSRF-Token header (or the `_csrf` form field) on every unsafe request.
    csrf_token: str
    expires_at: datetime
    idle_timeout_seconds: int


class AuditEntryOut(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEntryOut]
    # Pass as `before_id` for the next (older) page; null on the last page.
    next_before_id: int | None
