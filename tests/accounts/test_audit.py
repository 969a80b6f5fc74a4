"""The audit log: every admin change says who, when, what, before and after; nothing else writes to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import select

from accounts.models import AuditEntry
from accounts.service import Admin, record_audit
from core.db import Database

Client = AsyncTestClient[Litestar]
BASE = "/api/admin/providers"
LISTING: dict[str, Any] = {
    "name": "Dr. Lee Park",
    "credentials": "DO",
    "conditions": ["plantar-fasciitis"],
    "locations": [{"clinic_name": "Lakeview", "address": "3 Lake Shore Dr", "zip": "60611"}],
}


async def audit(client: Client, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/admin/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_each_provider_change_is_recorded_with_before_and_after(admin_client: Client) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    slug = (await admin_client.post(BASE, json=LISTING)).json()["slug"]
    await admin_client.patch(f"{BASE}/{slug}", json={"credentials": "MD"})
    await admin_client.post(f"{BASE}/{slug}/publish")
    await admin_client.post(f"{BASE}/{slug}/review")
    await admin_client.post(f"{BASE}/{slug}/unpublish")
    await admin_client.delete(f"{BASE}/{slug}")

    entries = await audit(admin_client, entity="provider", entity_id=slug)
    assert [e["action"] for e in entries] == [
        "provider.delete",
        "provider.unpublish",
        "provider.review",
        "provider.publish",
        "provider.update",
        "provider.create",
    ]
    for entry in entries:
        assert entry["actor"] == "admin@clinic.example"
        assert started <= datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)
    by_action = {e["action"]: e for e in entries}
    create = by_action["provider.create"]
    assert create["before"] is None
    assert create["after"]["name"] == "Dr. Lee Park"
    assert create["after"]["locations"][0]["city"] == "Chicago"
    update = by_action["provider.update"]
    assert (update["before"]["credentials"], update["after"]["credentials"]) == ("DO", "MD")
    publish = by_action["provider.publish"]
    assert (publish["before"]["published"], publish["after"]["published"]) == (False, True)
    review = by_action["provider.review"]
    assert review["before"]["last_reviewed"] is None
    assert review["after"]["last_reviewed"] == datetime.now(UTC).date().isoformat()
    delete = by_action["provider.delete"]
    assert delete["before"]["deleted_at"] is None
    assert delete["after"]["deleted_at"] is not None


async def test_rejected_and_no_op_changes_leave_no_entry(admin_client: Client) -> None:
    slug = (await admin_client.post(BASE, json=LISTING)).json()["slug"]
    assert (await admin_client.patch(f"{BASE}/{slug}", json={"npi": "1234567890"})).status_code == 400
    assert (await admin_client.patch(f"{BASE}/{slug}", json={"credentials": "DO"})).status_code == 200
    entries = await audit(admin_client, entity="provider")
    assert [e["action"] for e in entries] == ["provider.create"]


async def test_sign_in_and_out_are_recorded(admin_client: Client) -> None:
    await admin_client.post("/api/admin/logout")
    await admin_client.post(
        "/api/admin/login", json={"email": "admin@clinic.example", "password": "correct horse battery staple"}
    )
    entries = await audit(admin_client, entity="admin")
    assert [e["action"] for e in entries] == ["admin.login", "admin.logout", "admin.login", "admin.create"]
    assert entries[-1]["actor"] == "(command line)"
    assert entries[0]["after"] == {"ip": "testclient"}


async def test_filters_and_paging(admin_client: Client) -> None:
    slugs = []
    for name in ("Ann One", "Ben Two", "Cy Three"):
        slugs.append((await admin_client.post(BASE, json={**LISTING, "name": name})).json()["slug"])
    created = await audit(admin_client, action="provider.create", actor="ADMIN@clinic.example")
    assert [e["entity_id"] for e in created] == slugs[::-1]
    first = (
        await admin_client.get("/api/admin/audit", params={"action": "provider.create", "limit": 2})
    ).json()
    assert len(first["items"]) == 2
    rest = await audit(admin_client, action="provider.create", before_id=first["next_before_id"])
    assert [e["entity_id"] for e in first["items"] + rest] == slugs[::-1]
    assert (await admin_client.get("/api/admin/audit", params={"limit": 0})).status_code == 400


def test_record_audit_commits_or_rolls_back_with_the_change(db: Database) -> None:
    actor = Admin(id=0, email="a@b.example", session_id=0, csrf_token="", expires_at=datetime.now(UTC))
    try:
        with db.write() as session:
            record_audit(session, actor, "webinar.attendees.view", "session", 7, None, {"count": 3})
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    with db.write() as session:
        record_audit(session, None, "webinar.attendees.export", "session", 7, None, {"rows": 3})
    with db.session() as session:
        entries = session.exec(select(AuditEntry)).all()
    assert [(e.action, e.entity_id, e.after, e.actor_email) for e in entries] == [
        ("webinar.attendees.export", "7", {"rows": 3}, "(command line)")
    ]
