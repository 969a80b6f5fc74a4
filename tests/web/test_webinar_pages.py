"""The webinar pages over HTTP, through the real app: what a browser with JavaScript off gets.

Each page must agree with the JSON API (same services): the tests register through the form and
read the result back through /api/registrations/{token}.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import select

from booking.models import Registration
from booking.pages import (
    RegistrationForm,
    form_errors,
    session_times,
    session_view,
)
from booking.service import (
    RegistrationLimits,
    SessionInput,
    WebinarInput,
    add_session,
    cancel_session,
    create_webinar,
    get_webinar,
)
from core.db import Database
from core.settings import Settings
from directory.search import SearchIndex
from directory.service import build_index
from tests.factories import add_provider
from tests.web.html_doc import Element, parse
from tests.web.test_pages import page
from web.pages import STATIC_DIR

Client = AsyncTestClient[Litestar]
NY, LA = "America/New_York", "America/Los_Angeles"
JOIN = "https://meet.example/j/knee-4711?pwd=secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Mail stays in the outbox; these tests look at pages, the booking tests at mail.
    return settings.with_(background_workers=False)


def local_start(zone: str, days: int, at: time) -> datetime:
    """A wall-clock time in `zone`, `days` from today: what an admin would type."""
    return datetime.combine(date.today() + timedelta(days=days), at, tzinfo=ZoneInfo(zone))


@dataclass
class Demo:
    knee: str
    hip: str
    small: int  # New York, 6:30 PM, one seat
    big: int  # Los Angeles, 5:00 PM, 25 seats
    gone: int  # cancelled
    hip_session: int
    small_start: datetime
    big_start: datetime


@pytest.fixture
def demo(db: Database) -> Demo:
    carla = add_provider(db, "Carla Knee", ("10001",), conditions=["knee-osteoarthritis"])
    hana = add_provider(db, "Hana Hip", ("10001",), conditions=["hip-arthritis"])
    knee = create_webinar(
        db,
        WebinarInput(
            title="Stem cell and platelet procedures for knee arthritis",
            description="Who may be a candidate, and what recovery is like.",
            presenter_ids=[carla.id or 0],
            regions=["knee"],
            conditions=["knee-osteoarthritis"],
        ),
    )
    hip = create_webinar(
        db,
        WebinarInput(title="Hip arthritis and labral tears", presenter_ids=[hana.id or 0], regions=["hip"]),
    )
    create_webinar(db, WebinarInput(title="Not published yet", regions=["knee"], published=False))
    small_start = local_start(NY, 10, time(18, 30))
    big_start = local_start(LA, 17, time(17, 0))
    small = add_session(db, knee, SessionInput(small_start, NY, 1, JOIN, 60))
    big = add_session(db, knee, SessionInput(big_start, LA, 25, JOIN, 90))
    gone = add_session(db, knee, SessionInput(local_start(NY, 24, time(12, 0)), NY, 10, JOIN))
    hip_session = add_session(db, hip, SessionInput(local_start(NY, 5, time(12, 0)), NY, 10, JOIN))
    return Demo(knee, hip, small, big, gone, hip_session, small_start, big_start)


@pytest.fixture
async def site(demo: Demo, db: Database, settings: Settings, app: Litestar) -> AsyncIterator[Client]:
    cancel_session(db, settings, demo.gone)
    async with AsyncTestClient(app=app) as client:
        yield client


async def form_key(client: Client, slug: str) -> str:
    doc = await page(client, f"/webinars/{slug}")
    return doc.find("input", name="key").attrs["value"]


async def post_form(client: Client, slug: str, **fields: Any) -> httpx.Response:
    fields.setdefault("key", await form_key(client, slug))
    return await client.post(
        f"/webinars/{slug}", data={k: str(v) for k, v in fields.items()}, follow_redirects=False
    )


async def register(client: Client, slug: str, session: int, email: str, name: str = "Pat Doe") -> str:
    """Register through the form; the manage token from the redirect."""
    response = await post_form(client, slug, session=session, name=name, email=email)
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/registrations/([A-Za-z0-9_-]{40,})/confirmation", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


async def api_registration(client: Client, token: str) -> dict[str, Any]:
    response = await client.get(f"/api/registrations/{token}")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def text_of(doc: Element) -> str:
    return doc.find("main").text


def clock(moment: datetime) -> str:
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def day(moment: datetime) -> str:
    return f"{moment:%A}, {moment:%B} {moment.day}, {moment.year}"


# --- The upcoming list ------------------------------------------------------------------------


async def test_list_shows_upcoming_published_webinars_soonest_first_with_dates_and_seats(
    site: Client, demo: Demo
) -> None:
    doc = await page(site, "/webinars")
    assert doc.find("h1").text == "Free webinars"
    cards = doc.find_all("li", class_="webinar-card")
    # The hip webinar's first date (5 days) comes before the knee webinar's (10 days).
    assert [c.find("h3").text for c in cards] == [
        "Hip arthritis and labral tears",
        "Stem cell and platelet procedures for knee arthritis",
    ]
    assert doc.find("h2", id="webinars-count").text == "2 upcoming webinars"
    knee = cards[1]
    assert knee.find("h3").find("a").attrs["href"] == f"/webinars/{demo.knee}"
    assert "With Carla Knee" in knee.text
    dates = knee.find_all("li", class_="date")
    assert [d.find(class_="seats").text for d in dates] == ["1 seat left", "25 seats left", "Cancelled"]
    assert f"{day(demo.small_start)}, {clock(demo.small_start)}" in dates[0].text
    assert "Not published yet" not in doc.text
    assert JOIN not in (await site.get("/webinars")).text


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("region=hip", ["Hip arthritis and labral tears"]),
        ("region=knee", ["Stem cell and platelet procedures for knee arthritis"]),
        ("condition=knee-osteoarthritis", ["Stem cell and platelet procedures for knee arthritis"]),
        # A webinar about the hip in general covers each hip condition.
        ("condition=hip-labral-tear", ["Hip arthritis and labral tears"]),
        ("region=elbow", []),
    ],
)
async def test_list_filters_by_region_and_condition_like_the_api(
    site: Client, query: str, titles: list[str]
) -> None:
    doc = await page(site, f"/webinars?{query}")
    shown = [c.find("h3").text for c in doc.find_all("li", class_="webinar-card")]
    api = (await site.get(f"/api/webinars?{query}")).json()
    assert shown == [w["title"] for w in api] == titles
    field, value = query.split("=")
    assert doc.find("select", id=field).find("option", value=value).attrs.get("selected") == ""
    if not titles:
        empty = doc.find(class_="empty")
        assert "no upcoming webinar on this topic" in empty.text
        assert empty.find("a", href="/webinars").text == "See all upcoming webinars"


async def test_list_heading_names_the_topic(site: Client) -> None:
    assert (await page(site, "/webinars?region=knee")).find("h1").text == "Free webinars about the knee"
    doc = await page(site, "/webinars?condition=knee-osteoarthritis")
    assert doc.find("h1").text == "Free webinars about knee osteoarthritis"


@pytest.mark.parametrize("query", ["region=kneee", "condition=not-a-condition"])
async def test_an_unknown_topic_is_a_plain_400_page(site: Client, query: str) -> None:
    doc = await page(site, f"/webinars?{query}", status=400)
    assert "We do not know the" in doc.find("p", class_="lead").text


# --- One webinar: dates, times, seats ---------------------------------------------------------


async def test_detail_shows_each_date_in_its_zone_in_utc_and_for_the_visitors_script(
    site: Client, demo: Demo
) -> None:
    doc = await page(site, f"/webinars/{demo.knee}")
    assert doc.find("h1").text == "Stem cell and platelet procedures for knee arthritis"
    small = doc.find("label", for_=f"session-{demo.small}")
    end = demo.small_start + timedelta(minutes=60)
    zone = demo.small_start.tzname()
    assert small.find(class_="when__local").text == (
        f"{day(demo.small_start)}, 6:30 PM – 7:30 PM {zone} (New York time)"
    )
    start_utc, end_utc = demo.small_start.astimezone(UTC), end.astimezone(UTC)
    # 6:30 PM in New York is after midnight UTC in winter: the end then names its own day.
    end_day = "" if end_utc.date() == start_utc.date() else f"{day(end_utc)}, "
    assert small.find(class_="when__utc").text == (
        f"In UTC: {day(start_utc)}, {clock(start_utc)} – {end_day}{clock(end_utc)} UTC"
    )
    # What web/static/booking.js reads: the instants in UTC, and a holder hidden until it runs.
    yours = small.find(class_="when__yours")
    assert "hidden" in yours.attrs
    assert "data-your-time" in yours.attrs
    stamp = yours.find("time")
    assert stamp.attrs["datetime"] == start_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stamp.attrs["data-end"] == end_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    big = doc.find("label", for_=f"session-{demo.big}")
    assert "5:00 PM – 6:30 PM" in big.find(class_="when__local").text
    assert "(Los Angeles time)" in big.text
    assert big.find(class_="seats").text == "25 seats left"
    assert small.find(class_="seats").text == "1 seat left"
    # A cancelled date is listed, but cannot be chosen.
    assert not doc.find_all("input", id=f"session-{demo.gone}")
    assert "Cancelled" in doc.find("li", class_="date--cancelled").text
    # Presenters link to their profiles and carry the disclaimer.
    presenters = doc.find("section", **{"aria-labelledby": "presenters-title"})
    assert presenters.find("a", href="/providers/carla-knee").text == "Carla Knee, MD"
    assert "for informational purposes only" in presenters.find(class_="disclaimer").text
    assert booking_script(doc)


def booking_script(doc: Element) -> bool:
    return any(s.attrs.get("src", "").startswith("/static/booking.js?v=") for s in doc.find_all("script"))


async def test_the_join_link_never_appears_on_public_pages(site: Client, demo: Demo) -> None:
    await register(site, demo.knee, demo.big, "someone@example.com")
    for url in ("/webinars", f"/webinars/{demo.knee}", f"/webinars/{demo.knee}/already-registered"):
        assert JOIN not in (await site.get(url)).text


async def test_detail_json_ld_lists_each_date_as_an_online_event(
    site: Client, demo: Demo, settings: Settings
) -> None:
    doc = await page(site, f"/webinars/{demo.knee}")
    data = json.loads(doc.find("script", type="application/ld+json").text)
    events = data["@graph"]
    assert [e["@type"] for e in events] == ["EducationEvent"] * 3
    assert datetime.fromisoformat(events[0]["startDate"]) == demo.small_start
    assert events[0]["url"] == f"{settings.base_url}/webinars/{demo.knee}"
    assert events[0]["eventAttendanceMode"] == "https://schema.org/OnlineEventAttendanceMode"
    assert [e["eventStatus"].rsplit("/", 1)[1] for e in events] == [
        "EventScheduled",
        "EventScheduled",
        "EventCancelled",
    ]
    assert events[0]["performer"] == [{"@type": "Person", "name": "Carla Knee, MD"}]
    assert JOIN not in json.dumps(data)


async def test_unknown_or_unpublished_webinar_is_a_404_page(site: Client) -> None:
    for slug in ("no-such-webinar", "not-published-yet"):
        doc = await page(site, f"/webinars/{slug}", status=404)
        assert "We could not find that webinar" in doc.find("p", class_="lead").text


async def test_the_form_asks_for_name_email_and_consent_in_plain_words(site: Client, demo: Demo) -> None:
    doc = await page(site, f"/webinars/{demo.knee}")
    form = doc.find("form", method="post")
    assert form.attrs["action"] == f"/webinars/{demo.knee}"
    # The server's messages, not the browser's bubbles, which some screen readers miss.
    assert "novalidate" in form.attrs
    labels = {label.attrs["for"]: label.text for label in form.find_all("label")}
    assert labels["name"] == "Your name"
    assert labels["email"] == "Your e-mail address"
    assert labels["consent"] == "Yes, e-mail me about future free webinars"
    assert form.find("legend").text == "Choose a date"
    radios = form.find_all("input", type="radio")
    assert [r.attrs["value"] for r in radios] == [str(demo.small), str(demo.big)]
    assert not any("checked" in r.attrs for r in radios), "two dates: the visitor chooses"
    assert form.find("input", id="name").attrs["autocomplete"] == "name"
    email = form.find("input", id="email")
    assert (email.attrs["type"], email.attrs["autocomplete"]) == ("email", "email")
    assert email.attrs["aria-describedby"] == "email-hint"
    consent = form.find("input", id="consent")
    assert "checked" not in consent.attrs
    assert "either way" in doc.find(id=consent.attrs["aria-describedby"]).text
    # A new idempotency key for every form shown.
    assert await form_key(site, demo.knee) != await form_key(site, demo.knee)


async def test_a_link_to_one_date_has_it_chosen(site: Client, demo: Demo) -> None:
    doc = await page(site, f"/webinars/{demo.knee}?session={demo.big}")
    checked = [r.attrs["value"] for r in doc.find_all("input", type="radio") if "checked" in r.attrs]
    assert checked == [str(demo.big)]


async def test_a_webinar_with_one_date_has_it_chosen_already(site: Client, demo: Demo) -> None:
    doc = await page(site, f"/webinars/{demo.hip}")
    [radio] = doc.find_all("input", type="radio")
    assert radio.attrs["value"] == str(demo.hip_session)
    assert "checked" in radio.attrs


# --- Registering ------------------------------------------------------------------------------


async def test_registering_leads_to_a_confirmation_that_matches_the_api(
    site: Client, demo: Demo, db: Database
) -> None:
    response = await post_form(
        site, demo.knee, session=demo.big, name="  Pat   Doe ", email="Pat.Doe@Example.COM", consent="true"
    )
    assert response.status_code == 303
    location = response.headers["location"]
    token = location.split("/")[2]
    confirmation = await site.get(location)
    assert confirmation.status_code == 200
    assert confirmation.headers["cache-control"] == "no-store"
    assert confirmation.headers["referrer-policy"] == "no-referrer"
    doc = parse(confirmation.text)
    assert doc.find("h1").text == "You are registered"
    assert doc.find("meta", name="robots").attrs["content"] == "noindex"
    api = await api_registration(site, token)
    assert (api["status"], api["name"], api["email"], api["consent"]) == (
        "confirmed",
        "Pat Doe",
        "pat.doe@example.com",
        True,
    )
    assert api["session"]["id"] == demo.big
    summary = doc.find("dl", class_="summary")
    assert "pat.doe@example.com" in summary.text
    assert "5:00 PM – 6:30 PM" in summary.text
    # A confirmed seat: the join link and the calendar buttons.
    assert doc.find("a", href=JOIN).text == "Join the webinar"
    assert doc.find("a", href=api["google_calendar_url"]).text == "Add to Google Calendar"
    assert doc.find("a", href=api["outlook_calendar_url"]).text == "Add to Outlook"
    assert doc.find("a", href=f"/api/registrations/{token}/invite.ics")
    assert doc.find("a", href=f"/registrations/{token}").text == "Manage my registration"
    assert (await page(site, f"/webinars/{demo.knee}")).find("label", for_=f"session-{demo.big}").find(
        class_="seats"
    ).text == "24 seats left"
    with db.session() as session:
        assert len(session.exec(select(Registration)).all()) == 1


async def test_every_problem_is_shown_next_to_its_field_and_in_a_summary(
    site: Client, demo: Demo, db: Database
) -> None:
    response = await post_form(site, demo.knee, name="   ", email="pat@@example")
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    doc = parse(response.text)
    assert doc.find("title").text.startswith("Error: ")
    summary = doc.find(class_="error-summary")
    assert summary.attrs["role"] == "alert"
    assert "data-error-summary" in summary.attrs  # site.js focuses it
    links = [(a.attrs["href"], a.text) for a in summary.find_all("a")]
    assert [href for href, _ in links] == [f"#session-{demo.small}", "#name", "#email"]
    assert links[0][1] == "Choose the date you want to attend."
    assert links[1][1] == "Enter your name."
    assert "not an e-mail address" in links[2][1]
    for field_id in ("name", "email"):
        field = doc.find("input", id=field_id)
        assert field.attrs["aria-invalid"] == "true"
        described = field.attrs["aria-describedby"].split()
        assert f"{field_id}-error" in described
        assert all(doc.find_all(id=i) for i in described)
    assert doc.find(id="email-error").text == "Error: " + links[2][1]
    assert doc.find("input", id="email").attrs["value"] == "pat@@example"
    fieldset = doc.find("fieldset")
    assert fieldset.attrs["aria-describedby"] == f"session-{demo.small}-error"
    assert all(r.attrs["aria-invalid"] == "true" for r in fieldset.find_all("input", type="radio"))
    with db.session() as session:
        assert session.exec(select(Registration)).all() == []


async def test_what_was_typed_is_kept_when_only_one_field_is_wrong(site: Client, demo: Demo) -> None:
    response = await post_form(site, demo.knee, session=demo.big, name="Pat Doe", email="", consent="true")
    doc = parse(response.text)
    assert [a.attrs["href"] for a in doc.find(class_="error-summary").find_all("a")] == ["#email"]
    assert doc.find("input", id="name").attrs["value"] == "Pat Doe"
    assert "aria-invalid" not in doc.find("input", id="name").attrs
    assert "checked" in doc.find("input", id=f"session-{demo.big}").attrs
    assert "checked" in doc.find("input", id="consent").attrs


async def test_a_date_of_another_webinar_or_a_cancelled_one_cannot_be_chosen(
    site: Client, demo: Demo
) -> None:
    for session in (demo.hip_session, demo.gone):
        response = await post_form(site, demo.knee, session=session, name="Pat", email="pat@example.com")
        assert response.status_code == 400
        summary = parse(response.text).find(class_="error-summary")
        assert summary.find("a").text == "Choose the date you want to attend."


async def test_a_full_date_puts_people_on_the_waitlist_and_says_their_place(site: Client, demo: Demo) -> None:
    first = await register(site, demo.knee, demo.small, "first@example.com")
    detail = await page(site, f"/webinars/{demo.knee}")
    full = detail.find("label", for_=f"session-{demo.small}")
    assert full.find(class_="seats").text == "Full: you can join the waitlist"
    assert full.find("input").attrs.get("disabled") is None, "a full date can still be chosen"
    second = await register(site, demo.knee, demo.small, "second@example.com")
    third = await register(site, demo.knee, demo.small, "third@example.com")
    for token, place in ((second, 1), (third, 2)):
        doc = await page(site, f"/registrations/{token}/confirmation")
        assert doc.find("h1").text == "You are on the waitlist"
        assert f"You are number {place} on the waitlist." in doc.find(class_="status").text
        assert (await api_registration(site, token))["waitlist_position"] == place
        # No seat: no join link, no invitation to download.
        html = (await site.get(f"/registrations/{token}/confirmation")).text
        assert JOIN not in html
        assert "invite.ics" not in html
        manage = await page(site, f"/registrations/{token}")
        assert f"On the waitlist, number {place}" in manage.find(class_="status").text
        assert JOIN not in (await site.get(f"/registrations/{token}")).text
    assert (await api_registration(site, first))["status"] == "confirmed"


async def test_the_same_address_again_gets_no_private_link(site: Client, demo: Demo) -> None:
    token = await register(site, demo.knee, demo.big, "pat@example.com")
    again = await post_form(site, demo.knee, session=demo.big, name="Someone Else", email="PAT@example.com")
    assert again.status_code == 303
    assert again.headers["location"] == f"/webinars/{demo.knee}/already-registered"
    landing = await site.get(again.headers["location"])
    assert token not in landing.text
    assert parse(landing.text).find("h1").text == "You are already registered"
    # Another date of the same webinar is a registration of its own.
    assert await register(site, demo.knee, demo.small, "pat@example.com") != token


async def test_sending_the_same_form_twice_gives_the_same_confirmation(site: Client, demo: Demo) -> None:
    key = await form_key(site, demo.knee)
    fields = {"session": demo.big, "name": "Pat Doe", "email": "pat@example.com", "key": key}
    first = await post_form(site, demo.knee, **fields)
    second = await post_form(site, demo.knee, **fields)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    # The back button brings the same form (same key) back for someone else: a new registration.
    other = await post_form(site, demo.knee, **{**fields, "email": "sam@example.com", "name": "Sam"})
    assert other.status_code == 303
    assert other.headers["location"] not in (
        first.headers["location"],
        f"/webinars/{demo.knee}/already-registered",
    )
    sam = await api_registration(site, other.headers["location"].split("/")[2])
    assert (sam["email"], sam["status"]) == ("sam@example.com", "confirmed")


async def test_the_per_address_limit_is_the_apis_and_says_when_to_try_again(
    site: Client, demo: Demo, app: Litestar
) -> None:
    app.state["registration_limits"] = RegistrationLimits(per_email_per_day=1)
    await register(site, demo.knee, demo.big, "busy@example.com")
    response = await post_form(
        site, demo.hip, session=demo.hip_session, name="Busy", email="busy@example.com"
    )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    doc = parse(response.text)
    summary = doc.find(class_="error-summary")
    assert "try again tomorrow" in summary.text
    assert summary.find("a").attrs["href"] == "#register-button"
    assert doc.find("input", id="email").attrs["value"] == "busy@example.com"


async def test_a_hand_made_request_out_of_bounds_gets_a_plain_400_page(site: Client, demo: Demo) -> None:
    response = await post_form(site, demo.knee, session=demo.big, name="x" * 201, email="pat@example.com")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    unknown = await post_form(site, demo.knee, session=demo.big, name="P", email="p@example.com", admin="1")
    assert unknown.status_code == 400


# --- The private pages ------------------------------------------------------------------------


PRIVATE_PATHS = ["/registrations/{}", "/registrations/{}/confirmation", "/registrations/{}/cancel"]


@pytest.mark.parametrize("path", PRIVATE_PATHS)
async def test_private_pages_are_never_stored_or_referred_and_a_wrong_token_reveals_nothing(
    site: Client, demo: Demo, path: str
) -> None:
    token = await register(site, demo.knee, demo.big, "pat@example.com")
    good = await site.get(path.format(token))
    assert good.status_code == 200
    # A last character changed: a typo and a guess look the same.
    wrong = await site.get(path.format(token[:-1] + ("A" if token[-1] != "A" else "B")))
    assert wrong.status_code == 404
    for response in (good, wrong):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-robots-tag"] == "noindex"
        assert response.headers["content-type"].startswith("text/html")
    assert "pat@example.com" in good.text
    body = parse(wrong.text).find("main").text
    assert "No registration for this link" in body
    assert "pat" not in body.lower()
    assert demo.knee not in wrong.text


async def test_manage_page_shows_status_join_link_and_calendar_for_a_seat(site: Client, demo: Demo) -> None:
    token = await register(site, demo.knee, demo.big, "pat@example.com")
    doc = await page(site, f"/registrations/{token}")
    assert doc.find("h1").text == "Your webinar registration"
    assert "Status: Seat confirmed" in doc.find(class_="status").text
    assert doc.find("a", href=JOIN)
    assert doc.find("a", href=f"/webinars/{demo.knee}").text == (
        "Stem cell and platelet procedures for knee arthritis"
    )
    assert doc.find("a", href=f"/registrations/{token}/cancel").text == "Cancel my registration"
    calendar = doc.find("section", **{"aria-labelledby": "calendar-title"})
    hrefs = [a.attrs["href"] for a in calendar.find_all("a")]
    assert hrefs[0].startswith("https://calendar.google.com/calendar/render?")
    assert hrefs[1].startswith("https://outlook.live.com/calendar/")
    assert all("noreferrer" in a.attrs["rel"] for a in calendar.find_all("a")[:2])
    invite = await site.get(hrefs[2])
    assert invite.headers["content-type"].startswith("text/calendar")
    calendar_data = icalendar.Calendar.from_ical(invite.content)
    assert calendar_data["METHOD"] == "REQUEST"
    [event] = calendar_data.walk("VEVENT")
    assert str(event["ATTENDEE"]).lower() == "mailto:pat@example.com"
    assert event.decoded("DTSTART") == demo.big_start.astimezone(UTC)


async def test_cancelling_asks_first_then_frees_the_seat_for_the_waitlist(site: Client, demo: Demo) -> None:
    holder = await register(site, demo.knee, demo.small, "holder@example.com")
    waiting = await register(site, demo.knee, demo.small, "waiting@example.com")
    step = await page(site, f"/registrations/{holder}/cancel")
    assert step.find("h1").text == "Cancel your registration?"
    assert "next person on the waitlist" in step.find("p", class_="lead").text
    form = step.find("form", method="post")
    assert form.attrs["action"] == f"/registrations/{holder}/cancel"
    assert form.find("button").text == "Yes, cancel my registration"
    assert form.find("a", href=f"/registrations/{holder}").text == "No, keep my seat"
    # Looking at the question changes nothing.
    assert (await api_registration(site, holder))["status"] == "confirmed"

    done = await site.post(f"/registrations/{holder}/cancel", follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/registrations/{holder}?cancelled=true"
    assert done.headers["referrer-policy"] == "no-referrer"
    after = await page(site, done.headers["location"])
    assert "Your registration is cancelled." in after.find(class_="notice").text
    assert "Status: Cancelled" in after.find(class_="status").text
    assert JOIN not in (await site.get(done.headers["location"])).text
    assert not after.find_all("a", href=f"/registrations/{holder}/cancel")
    # The cancellation file for anyone who added it from the .ics.
    removal = after.find("section", **{"aria-labelledby": "remove-title"}).find("a")
    assert b"METHOD:CANCEL" in (await site.get(removal.attrs["href"])).content
    # The freed seat went to the first person waiting.
    promoted = await page(site, f"/registrations/{waiting}")
    assert "Status: Seat confirmed" in promoted.find(class_="status").text
    assert promoted.find("a", href=JOIN)
    # Nothing left to cancel: the step leads back to the manage page; a second POST changes nothing.
    again = await site.get(f"/registrations/{holder}/cancel", follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, f"/registrations/{holder}")
    assert (await site.post(f"/registrations/{holder}/cancel", follow_redirects=False)).status_code == 303
    assert (await api_registration(site, waiting))["status"] == "confirmed"


async def test_leaving_the_waitlist_is_worded_for_the_waitlist(site: Client, demo: Demo) -> None:
    await register(site, demo.knee, demo.small, "holder@example.com")
    waiting = await register(site, demo.knee, demo.small, "waiting@example.com")
    manage = await page(site, f"/registrations/{waiting}")
    assert manage.find("a", href=f"/registrations/{waiting}/cancel").text == "Leave the waitlist"
    step = await page(site, f"/registrations/{waiting}/cancel")
    assert step.find("h1").text == "Leave the waitlist?"
    assert "you are number 1" in step.find("p", class_="lead").text
    await site.post(f"/registrations/{waiting}/cancel")
    assert (await api_registration(site, waiting))["status"] == "cancelled"


async def test_a_cancelled_session_says_so_on_the_manage_page(
    site: Client, demo: Demo, db: Database, settings: Settings
) -> None:
    token = await register(site, demo.knee, demo.big, "pat@example.com")
    cancel_session(db, settings, demo.big)
    doc = await page(site, f"/registrations/{token}")
    assert "Status: Cancelled" in doc.find(class_="status").text
    assert "session has been cancelled" in doc.find(class_="status").text
    assert "Cancelled" in doc.find("dl", class_="summary").text
    assert JOIN not in (await site.get(f"/registrations/{token}")).text


# --- Around the site --------------------------------------------------------------------------


async def test_header_links_to_the_webinars(site: Client) -> None:
    for url in ("/", "/webinars"):
        nav = (await page(site, url)).find("nav", **{"aria-label": "Main"})
        assert nav.find("a", href="/webinars").text == "Webinars"


async def test_provider_profile_lists_the_webinars_they_present(site: Client, demo: Demo) -> None:
    doc = await page(site, "/providers/carla-knee")
    section = doc.find("section", **{"aria-labelledby": "webinars-title"})
    link = section.find("a", href=f"/webinars/{demo.knee}")
    assert link.text.startswith("Stem cell and platelet procedures for knee arthritis ")
    # The next date that is still on, in its own zone.
    assert f"{day(demo.small_start)}, 6:30 PM" in link.text
    hana = (await page(site, "/providers/hana-hip")).find("section", **{"aria-labelledby": "webinars-title"})
    assert [a.attrs["href"] for a in hana.find_all("a")] == [f"/webinars/{demo.hip}"]


async def test_webinar_pages_load_nothing_inline_or_from_elsewhere(site: Client, demo: Demo) -> None:
    token = await register(site, demo.knee, demo.big, "pat@example.com")
    urls = [
        "/webinars",
        f"/webinars/{demo.knee}",
        f"/webinars/{demo.knee}/already-registered",
        f"/registrations/{token}",
        f"/registrations/{token}/confirmation",
        f"/registrations/{token}/cancel",
    ]
    for url in urls:
        html = (await site.get(url)).text
        doc = parse(html)
        for script in doc.find_all("script"):
            assert script.attrs.get("src", "").startswith("/static/") or (
                script.attrs.get("type") == "application/ld+json"
            ), url
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), url
        for el in doc.find_all("link"):
            assert el.attrs["href"].startswith("/static/"), url
        # Every page that shows a time links the script that adds the visitor's own zone.
        assert booking_script(doc) == ("data-your-time" in html), url
    assert (STATIC_DIR / "booking.js").exists()


# --- Pure parts -------------------------------------------------------------------------------


def test_session_times_name_the_zone_and_utc_across_a_dst_change() -> None:
    # US clocks go forward at 2 AM on March 8, 2026: the end is in a different offset.
    start = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 1:30 AM EST
    times = session_times(start, start + timedelta(hours=2), NY)
    assert times.when == "Sunday, March 8, 2026, 1:30 AM EST – 4:30 AM EDT"
    assert times.zone_city == "New York"
    assert times.utc == "Sunday, March 8, 2026, 6:30 AM – 8:30 AM UTC"
    assert (times.starts_iso, times.ends_iso) == ("2026-03-08T06:30:00Z", "2026-03-08T08:30:00Z")
    assert session_times(start, start, LA).zone_city == "Los Angeles"


def test_form_errors_come_all_at_once_in_the_forms_order(db: Database, settings: Settings) -> None:
    slug = create_webinar(db, WebinarInput(title="Knee", regions=["knee"]))
    add_session(db, slug, SessionInput(local_start(NY, 3, time(12, 0)), NY, 5, JOIN))
    index: SearchIndex = build_index(db)
    sessions = [session_view(s) for s in get_webinar(db, index, settings, slug).sessions]
    [only] = sessions
    assert [f for f, _ in form_errors(RegistrationForm(), sessions)] == [
        f"session-{only.id}",
        "name",
        "email",
    ]
    good = RegistrationForm(session=only.id, name="Pat", email="pat@example.com")
    assert form_errors(good, sessions) == []
    bad_name = RegistrationForm(session=only.id, name="Pat\x07", email="pat@example.com")
    assert [f for f, _ in form_errors(bad_name, sessions)] == ["name"]
