"""The public webinar listing, its filters, and the public calendar feed: never a join URL or an attendee."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from booking.service import cancel_session, covers_condition, move_session
from core.db import Database
from core.settings import Settings
from tests.booking.test_registration import JOIN, make_session, make_webinar, register
from tests.factories import add_provider

Client = AsyncTestClient[Litestar]
KNEE = "stem-cell-and-platelet-procedures-for-knee-arthritis"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(background_workers=False)


class Catalogue:
    def __init__(self, client: Client, db: Database, sessions: dict[str, int]) -> None:
        self.client, self.db, self.sessions = client, db, sessions

    async def get(self, url: str, **params: Any) -> Any:
        response = await self.client.get(url, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def catalogue(db: Database, app: Litestar) -> AsyncIterator[Catalogue]:
    """Four webinars (one unpublished), presenters from the directory (one unpublished)."""
    ada = add_provider(db, "Ada Kneeling", conditions=["knee-osteoarthritis"])
    hidden = add_provider(db, "Hal Hidden", conditions=["knee-osteoarthritis"], published=False)
    knee = make_webinar(db, presenter_ids=[ada.id, hidden.id])
    spine = make_webinar(
        db,
        "Back and neck pain: options for the spine",
        regions=["lower-spine", "cervical-spine"],
        conditions=[],
    )
    elbow = make_webinar(
        db, "Tennis elbow without surgery", regions=["elbow"], conditions=["tennis-elbow", "golfers-elbow"]
    )
    draft = make_webinar(db, "Draft: hips", regions=["hip"], conditions=[], published=False)
    sessions = {
        "knee-soon": make_session(db, knee, starts_in=timedelta(days=3), timezone="America/Los_Angeles"),
        "knee-later": make_session(db, knee, starts_in=timedelta(days=17), capacity=40),
        "spine": make_session(db, spine, starts_in=timedelta(days=1), timezone="America/Chicago"),
        "elbow-past": make_session(db, elbow, starts_in=timedelta(seconds=2)),
        "draft": make_session(db, draft, starts_in=timedelta(days=5)),
    }
    async with AsyncTestClient(app=app) as client:
        yield Catalogue(client, db, sessions)


async def test_upcoming_webinars_with_their_sessions_soonest_first(catalogue: Catalogue) -> None:
    # The elbow webinar's only session has started by the time anyone asks.
    await _until_started(catalogue)
    items = await catalogue.get("/api/webinars")
    assert [w["slug"] for w in items] == ["back-and-neck-pain-options-for-the-spine", KNEE]
    knee = items[1]
    assert knee["title"] == "Stem cell and platelet procedures for knee arthritis"
    assert [p["name"] for p in knee["presenters"]] == ["Ada Kneeling"]
    assert knee["presenters"][0]["url"] == "/api/providers/ada-kneeling"
    assert knee["regions"] == [{"slug": "knee", "name": "Knee"}]
    assert knee["conditions"] == [{"slug": "knee-osteoarthritis", "name": "Knee osteoarthritis"}]
    soon, later = knee["sessions"]
    assert soon["id"] == catalogue.sessions["knee-soon"]
    assert set(soon) >= {"id", "starts_at", "ends_at", "timezone", "capacity", "seats_left", "status"}
    assert soon["timezone"] == "America/Los_Angeles"
    start, end = datetime.fromisoformat(soon["starts_at"]), datetime.fromisoformat(soon["ends_at"])
    # ISO 8601 in the display zone, with its offset: Pacific time is UTC-7 or UTC-8.
    assert start.utcoffset() in (timedelta(hours=-7), timedelta(hours=-8))
    assert end - start == timedelta(minutes=60)
    assert (soon["capacity"], soon["seats_left"], soon["status"]) == (2, 2, "scheduled")
    assert (later["capacity"], later["seats_left"]) == (40, 40)


async def test_seats_left_follow_registrations_and_nothing_private_is_shown(catalogue: Catalogue) -> None:
    sid = catalogue.sessions["knee-soon"]
    for i in range(3):
        await register(catalogue.client, sid, f"patient{i}@example.org")
    detail = await catalogue.get(f"/api/webinars/{KNEE}")
    [soon] = [s for s in detail["sessions"] if s["id"] == sid]
    assert soon["seats_left"] == 0
    for url in ("/api/webinars", f"/api/webinars/{KNEE}", "/webinars.ics"):
        body = (await catalogue.client.get(url)).text
        assert JOIN not in body
        assert "secret-4711" not in body
        assert "patient0@example.org" not in body
        assert "ATTENDEE" not in body


async def test_filters_by_region_and_by_condition_in_a_patients_words(catalogue: Catalogue) -> None:
    async def slugs(**params: Any) -> list[str]:
        return [w["slug"] for w in await catalogue.get("/api/webinars", **params)]

    assert await slugs(region="knee") == [KNEE]
    assert await slugs(region="lower-spine") == ["back-and-neck-pain-options-for-the-spine"]
    assert await slugs(region="hip") == []
    assert await slugs(condition="knee-osteoarthritis") == [KNEE]
    # A webinar about knee arthritis is not offered for a meniscus tear ...
    assert await slugs(condition="meniscus-tear") == []
    # ... but one about the spine in general covers every spine condition.
    assert await slugs(condition="sciatica") == ["back-and-neck-pain-options-for-the-spine"]
    assert await slugs(condition="bulging disk") == ["back-and-neck-pain-options-for-the-spine"]
    assert await slugs(condition="arthritis in my knee") == [KNEE]
    assert await slugs(condition="xyzzy plugh") == []
    bad = await catalogue.client.get("/api/webinars", params={"region": "spleen"})
    assert bad.status_code == 400
    assert "knee" in bad.json()["detail"]


def test_what_a_webinar_covers() -> None:
    assert covers_condition(["knee"], ["knee-osteoarthritis"], "knee-osteoarthritis")
    assert not covers_condition(["knee"], ["knee-osteoarthritis"], "meniscus-tear")
    assert covers_condition(["knee"], [], "meniscus-tear")
    # Named conditions in one region leave another region covered broadly.
    assert covers_condition(["knee", "hip"], ["knee-osteoarthritis"], "hip-labral-tear")
    assert not covers_condition(["hip"], [], "tennis-elbow")


async def test_unpublished_and_unknown_webinars_are_404(catalogue: Catalogue) -> None:
    for slug in ("draft-hips", "no-such-webinar"):
        response = await catalogue.client.get(f"/api/webinars/{slug}")
        assert response.status_code == 404
        assert "GET /api/webinars" in response.json()["detail"]
    assert "draft-hips" not in (await catalogue.client.get("/api/webinars")).text
    assert "Draft" not in (await catalogue.client.get("/webinars.ics")).text


async def test_a_cancelled_session_shows_as_cancelled_with_no_seats(
    catalogue: Catalogue, settings: Settings
) -> None:
    cancel_session(catalogue.db, settings, catalogue.sessions["knee-later"])
    detail = await catalogue.get(f"/api/webinars/{KNEE}")
    [later] = [s for s in detail["sessions"] if s["id"] == catalogue.sessions["knee-later"]]
    assert (later["status"], later["seats_left"]) == ("cancelled", 0)


async def test_public_feed_is_publish_with_every_session_and_follows_changes(
    catalogue: Catalogue, settings: Settings
) -> None:
    response = await catalogue.client.get("/webinars.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert b"\r\n" in response.content
    calendar = icalendar.Calendar.from_ical(response.content)
    assert calendar["METHOD"] == "PUBLISH"
    events: dict[str, Any] = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    knee_uid = f"session-{catalogue.sessions['knee-soon']}@testserver.local"
    assert knee_uid in events
    # The published sessions (the elbow one may just have started: it stays a week).
    assert len(events) == 4
    assert events[knee_uid]["SEQUENCE"] == 0
    assert "attendee" not in [k.lower() for k in events[knee_uid]]

    new_start = (datetime.now(UTC) + timedelta(days=9)).replace(microsecond=0)
    move_session(catalogue.db, settings, catalogue.sessions["knee-soon"], starts_at=new_start)
    cancel_session(catalogue.db, settings, catalogue.sessions["spine"])
    calendar = icalendar.Calendar.from_ical((await catalogue.client.get("/webinars.ics")).content)
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert events[knee_uid]["SEQUENCE"] == 1
    assert events[knee_uid]["DTSTART"].dt == new_start
    spine = events[f"session-{catalogue.sessions['spine']}@testserver.local"]
    assert spine["STATUS"] == "CANCELLED"


async def _until_started(catalogue: Catalogue) -> None:
    for _ in range(100):
        items = await catalogue.get("/api/webinars")
        if all(w["slug"] != "tennis-elbow-without-surgery" for w in items):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the elbow session never started")
