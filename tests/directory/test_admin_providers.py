"""Provider admin API through the real app: create, edit, publish, review, delete, validation,
and changes reaching public search on every worker within a second."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import func, select

from accounts.models import AuditEntry
from app import create_app
from core.db import Database
from core.settings import Settings
from directory.models import DirectoryState, Provider
from tests.factories import add_provider

Client = AsyncTestClient[Litestar]
BASE = "/api/admin/providers"


def new_provider(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Dr. Maria Gonzalez",
        "credentials": "MD",
        "npi": "1234567893",
        "languages": ["English", "Spanish"],
        "procedures": ["PRP"],
        "conditions": ["tennis-elbow", "Knee osteoarthritis"],
        "locations": [{"clinic_name": "Midtown Regenerative", "address": "5 W 31st St", "zip": "10001"}],
    }
    body.update(overrides)
    return body


async def public_names(client: Client) -> list[str]:
    response = await client.get("/api/providers", params={"per_page": 100})
    assert response.status_code == 200
    return [item["name"] for item in response.json()["items"]]


async def eventually(client: Client, name: str, listed: bool, within: float = 1.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if (name in await public_names(client)) == listed:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_create_is_unpublished_until_published(admin_client: Client) -> None:
    response = await admin_client.post(BASE, json=new_provider())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "dr-maria-gonzalez"
    assert body["published"] is False
    assert body["listed"] is False
    assert body["conditions"] == ["knee-osteoarthritis", "tennis-elbow"]  # names resolve to slugs
    assert body["locations"][0]["city"] == "New York"
    assert body["locations"][0]["state"] == "NY"
    assert response.headers["cache-control"] == "no-store"
    slug = body["slug"]

    assert await eventually(admin_client, "Dr. Maria Gonzalez", listed=False, within=0.3)
    published = await admin_client.post(f"{BASE}/{slug}/publish")
    assert published.status_code == 200
    assert published.json()["listed"] is True
    assert await eventually(admin_client, "Dr. Maria Gonzalez", listed=True)

    assert (await admin_client.post(f"{BASE}/{slug}/unpublish")).json()["published"] is False
    assert await eventually(admin_client, "Dr. Maria Gonzalez", listed=False)


async def test_changes_reach_every_worker_within_a_second(
    admin_client: Client, settings: Settings, db: Database
) -> None:
    slug = (await admin_client.post(BASE, json=new_provider())).json()["slug"]
    async with AsyncTestClient(app=create_app(settings)) as other_worker:
        await admin_client.post(f"{BASE}/{slug}/publish")
        assert await eventually(other_worker, "Dr. Maria Gonzalez", listed=True)
        await admin_client.patch(f"{BASE}/{slug}", json={"name": "Dr. Maria Gonzalez-Ruiz"})
        assert await eventually(other_worker, "Dr. Maria Gonzalez-Ruiz", listed=True)
        await admin_client.delete(f"{BASE}/{slug}")
        assert await eventually(other_worker, "Dr. Maria Gonzalez-Ruiz", listed=False)
        profile = await other_worker.get(f"/api/providers/{slug}")
        assert profile.status_code == 404


async def test_put_replaces_patch_merges_and_status_is_left_alone(admin_client: Client) -> None:
    slug = (await admin_client.post(BASE, json=new_provider())).json()["slug"]
    await admin_client.post(f"{BASE}/{slug}/publish")
    await admin_client.post(f"{BASE}/{slug}/review")

    patched = await admin_client.patch(f"{BASE}/{slug}", json={"telehealth": True, "bio": "Sports medicine."})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["telehealth"] is True
    assert body["bio"] == "Sports medicine."
    assert body["languages"] == ["English", "Spanish"]
    assert body["published"] is True
    assert body["last_reviewed"] == datetime.now(UTC).date().isoformat()

    replaced = await admin_client.put(
        f"{BASE}/{slug}",
        json=new_provider(
            name="Maria Gonzalez",
            conditions=["sciatica"],
            locations=[
                {"clinic_name": "Brooklyn", "address": "1 Court St", "zip": "11201", "phone": "718-555-0100"},
                {"clinic_name": "Boston", "address": "1 Main", "zip": "2134"[:0] + "02134"},
            ],
        ),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["slug"] == slug  # slugs never change: links keep working
    assert body["name"] == "Maria Gonzalez"
    assert body["telehealth"] is False  # PUT is the whole listing
    assert body["bio"] == ""
    assert body["conditions"] == ["sciatica"]
    assert [loc["zip"] for loc in body["locations"]] == ["11201", "02134"]
    assert body["published"] is True
    assert body["last_reviewed"] == datetime.now(UTC).date().isoformat()


async def test_review_sets_last_reviewed_today(admin_client: Client) -> None:
    slug = (await admin_client.post(BASE, json=new_provider())).json()["slug"]
    assert (await admin_client.get(f"{BASE}/{slug}")).json()["last_reviewed"] is None
    reviewed = await admin_client.post(f"{BASE}/{slug}/review")
    assert reviewed.json()["last_reviewed"] == datetime.now(UTC).date().isoformat()


async def test_soft_delete_hides_keeps_and_restores(admin_client: Client, db: Database) -> None:
    slug = (await admin_client.post(BASE, json=new_provider())).json()["slug"]
    await admin_client.post(f"{BASE}/{slug}/publish")
    deleted = await admin_client.delete(f"{BASE}/{slug}")
    assert deleted.status_code == 200
    assert deleted.json()["deleted_at"] is not None
    assert deleted.json()["listed"] is False
    with db.session() as session:
        assert session.exec(select(Provider).where(Provider.slug == slug)).one().deleted_at is not None
    # Still visible to admins, not editable until restored.
    assert (await admin_client.get(f"{BASE}/{slug}")).status_code == 200
    listing = (await admin_client.get(BASE)).json()
    assert listing["total"] == 0
    assert [
        i["slug"] for i in (await admin_client.get(BASE, params={"status": "deleted"})).json()["items"]
    ] == [slug]
    conflict = await admin_client.patch(f"{BASE}/{slug}", json={"telehealth": True})
    assert conflict.status_code == 409
    assert "restore" in conflict.json()["detail"]
    restored = await admin_client.post(f"{BASE}/{slug}/restore")
    assert restored.status_code == 200
    assert restored.json()["listed"] is True
    assert await eventually(admin_client, "Dr. Maria Gonzalez", listed=True)


async def test_list_includes_unpublished_and_filters(admin_client: Client, db: Database) -> None:
    add_provider(db, "Alice Elbowman", published=True)
    add_provider(db, "Hank Hidden", published=False)
    add_provider(db, "Zoe Zed", published=True, npi="1245319599")
    everyone = (await admin_client.get(BASE)).json()
    assert [i["name"] for i in everyone["items"]] == ["Alice Elbowman", "Hank Hidden", "Zoe Zed"]
    assert everyone["total"] == 3
    unpublished = (await admin_client.get(BASE, params={"status": "unpublished"})).json()
    assert [i["name"] for i in unpublished["items"]] == ["Hank Hidden"]
    assert (await admin_client.get(BASE, params={"q": "ELBOW"})).json()["total"] == 1
    assert (await admin_client.get(BASE, params={"q": "1245319599"})).json()["items"][0]["name"] == "Zoe Zed"
    paged = (await admin_client.get(BASE, params={"per_page": 2, "page": 2})).json()
    assert [i["name"] for i in paged["items"]] == ["Zoe Zed"]
    assert (await admin_client.get(BASE, params={"status": "gone"})).status_code == 400


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"npi": "1234567890"}, "npi", "check digit"),
        ({"npi": "12345"}, "npi", "10 digits"),
        ({"name": "  "}, "name", "needs a name"),
        ({"conditions": ["tennis-elbow", "brain-fog"]}, "conditions", "brain-fog"),
        ({"regions": ["tail"]}, "regions", "tail"),
        ({"locations": []}, "locations", "at least one location"),
        (
            {"locations": [{"clinic_name": "X", "address": "1 Main", "zip": "00000"}]},
            "locations[0].zip",
            "not a US ZIP code we know",
        ),
        (
            {"locations": [{"clinic_name": "X", "address": "1 Main", "zip": "1234"}]},
            "locations[0].zip",
            "five",
        ),
    ],
)
async def test_validation_errors_name_the_field_and_say_what_to_fix(
    admin_client: Client, db: Database, changes: dict[str, Any], key: str, words: str
) -> None:
    response = await admin_client.post(BASE, json=new_provider(**changes))
    assert response.status_code == 400, response.text
    body = response.json()
    assert words in body["detail"]
    assert key in [e["key"] for e in body["extra"]]
    with db.session() as session:
        assert session.exec(select(func.count()).select_from(Provider)).one() == 0
        assert (
            session.exec(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "provider")
            ).one()
            == 0
        )


@pytest.mark.parametrize(
    "field",
    ["id", "published", "deleted_at", "revision", "last_reviewed", "listed", "created_at", "is_admin"],
)
async def test_unknown_fields_are_rejected_not_assigned(
    admin_client: Client, db: Database, field: str
) -> None:
    response = await admin_client.post(BASE, json=new_provider(**{field: True}))
    assert response.status_code == 400
    assert field in response.text
    slug = (await admin_client.post(BASE, json=new_provider())).json()["slug"]
    for method in ("put", "patch"):
        response = await getattr(admin_client, method)(f"{BASE}/{slug}", json=new_provider(**{field: 1}))
        assert response.status_code == 400, (method, response.text)
    with db.session() as session:
        provider = session.exec(select(Provider)).one()
    assert provider.published is False
    assert provider.deleted_at is None


async def test_npi_already_listed_is_a_400_not_a_500(admin_client: Client, db: Database) -> None:
    add_provider(db, "First Holder", npi="1234567893")
    response = await admin_client.post(BASE, json=new_provider())
    assert response.status_code == 400
    assert "already listed for provider 'first-holder'" in response.json()["detail"]
    taken_slug = await admin_client.post(BASE, json=new_provider(npi=None, slug="first-holder"))
    assert taken_slug.status_code == 400
    assert "slug" in taken_slug.text


async def test_unknown_provider_is_404(admin_client: Client) -> None:
    for method, url in (
        ("GET", f"{BASE}/nobody"),
        ("PATCH", f"{BASE}/nobody"),
        ("POST", f"{BASE}/nobody/publish"),
        ("DELETE", f"{BASE}/nobody"),
    ):
        response = await admin_client.request(method, url, json={"telehealth": True})
        assert response.status_code == 404, (method, url)
        assert "nobody" in response.json()["detail"]


async def test_an_edit_that_changes_nothing_writes_nothing(admin_client: Client, db: Database) -> None:
    slug = (await admin_client.post(BASE, json=new_provider())).json()["slug"]
    with db.session() as session:
        version = session.exec(select(DirectoryState.version)).one()
    same = await admin_client.put(f"{BASE}/{slug}", json=new_provider(name="  Dr. Maria Gonzalez "))
    assert same.status_code == 200
    with db.session() as session:
        assert session.exec(select(DirectoryState.version)).one() == version
        assert (
            session.exec(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "provider.update")
            ).one()
            == 0
        )
