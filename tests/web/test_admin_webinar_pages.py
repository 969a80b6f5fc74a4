"""The webinar admin pages over HTTP, through the real app, as a browser without JavaScript uses
them: webinars and their dates, moving and cancelling a session (with the confirmation step),
seats, attendee lists and their CSV, and the outbox.

Mail goes through the app's own outbox worker to a real SMTP server on loopback and is read the
way a mail client and a calendar would read it. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from accounts.guards import SESSION_COOKIE
from accounts.models import AuditEntry
from booking.admin_pages import (
    PresenterChoice,
    SessionForm,
    local_start,
    parse_clock,
    parse_day,
    people_told,
    plain,
    presenter_choices,
    review_move,
    short_time,
)
from booking.admin_service import session_detail, webinar_detail
from booking.models import Registration
from booking.service import registration_token
from core.db import Database
from core.settings import Settings
from directory.search import SearchIndex
from directory.service import build_index
from tests.booking.test_lifecycle_mail import Mailroom, body, by_recipient, has_invite, invite
from tests.booking.test_registration import JOIN, make_session, make_webinar, register
from tests.factories import add_provider
from tests.mailserver import MailServer
from tests.web.html_doc import Element, parse
from tests.web.test_admin_pages import form_data, page, replaced, sign_in, submit

Client = AsyncTestClient[Litestar]
CHICAGO = ZoneInfo("America/Chicago")
NEW_JOIN = "https://meet.example/j/new-room?pwd=quiet"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    # tests/web pins SQLite for the directory's pages; these pages only use the services, so both.
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def settings(settings: Settings, smtp_server: MailServer) -> Settings:
    return settings.with_(
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        background_workers=False,
        mail_from="Test Clinic Network <webinars@clinic.example>",
    )


@pytest.fixture
def mailroom(db: Database, settings: Settings, smtp_server: MailServer) -> Mailroom:
    return Mailroom(db, settings, smtp_server)


@pytest.fixture
async def signed_in(client: Client, admin_account: tuple[str, str]) -> tuple[Client, str]:
    """(client with the admin's session cookie, the CSRF token for forms)."""
    return client, await sign_in(client, admin_account)


def audit_actions(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))).all())


def audit_after(db: Database, action: str) -> list[Any]:
    with db.session() as session:
        return [
            e.after
            for e in session.exec(
                select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
            ).all()
        ]


def later(days: int, hour: int = 18, minute: int = 30, zone: ZoneInfo = CHICAGO) -> datetime:
    """A wall-clock time `days` from today in `zone`."""
    day = datetime.now(zone).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def notice(doc: Element) -> str:
    return doc.find(role="status").text


def errors_of(doc: Element) -> list[tuple[str, str]]:
    return [(a.attrs["href"], a.text) for a in doc.find(role="alert").find_all("a")]


async def post_form(client: Client, doc: Element, action: str, **changes: Any) -> Any:
    """Submit the form with this action as the page has it, with some fields changed (None drops
    one); `follow_redirects=False` passes through to the client."""
    follow = bool(changes.pop("follow_redirects", True))
    pairs = replaced(form_data(doc.find("form", action=action)), **changes)
    return await submit(client, action, pairs, follow_redirects=follow)


async def seated(client: Client, session_id: int, *emails: str) -> None:
    for email in emails:
        response = await register(client, session_id, email, email.split("@")[0].title() + " Doe")
        assert response.status_code == 201, response.text


# --- signed out, forged, cached -----------------------------------------------------------------


def page_urls(slug: str, sid: int) -> list[str]:
    return [
        "/admin/webinars",
        "/admin/webinars/new",
        f"/admin/webinars/{slug}/edit",
        f"/admin/webinars/{slug}/sessions/new",
        f"/admin/sessions/{sid}",
        f"/admin/sessions/{sid}/cancel",
        f"/admin/sessions/{sid}/attendees",
        f"/admin/sessions/{sid}/attendees?status=waitlisted",
        f"/admin/sessions/{sid}/attendees.csv",
        "/admin/outbox",
        f"/admin/outbox?status=failed&session={sid}",
    ]


def form_urls(slug: str, sid: int, rid: int) -> list[str]:
    return [
        "/admin/webinars/new",
        f"/admin/webinars/{slug}/edit",
        f"/admin/webinars/{slug}/publish",
        f"/admin/webinars/{slug}/unpublish",
        f"/admin/webinars/{slug}/sessions/new",
        f"/admin/sessions/{sid}/move",
        f"/admin/sessions/{sid}/capacity",
        f"/admin/sessions/{sid}/cancel",
        f"/admin/sessions/{sid}/attendees/{rid}/remove",
        f"/admin/sessions/{sid}/attendees/{rid}/promote",
        "/admin/outbox/1/resend",
    ]


async def test_every_webinar_admin_page_sends_strangers_to_the_sign_in_page(
    client: Client, db: Database, settings: Settings
) -> None:
    slug = make_webinar(db)
    sid = make_session(db, slug)
    await seated(client, sid, "ann@example.org")
    with db.session() as session:
        [rid] = session.exec(select(Registration.id)).all()
    assert rid is not None
    for forged in (None, "forged-token"):
        client.cookies.clear()
        if forged:
            client.cookies.set(SESSION_COOKIE, forged, domain="testserver.local")
        for url in page_urls(slug, sid):
            response = await client.get(url, follow_redirects=False)
            assert response.status_code == 303, url
            target = urlsplit(response.headers["location"])
            assert (target.path, parse_qs(target.query)["next"]) == ("/admin/login", [url])
            assert "ann" not in response.text
        for url in form_urls(slug, sid, rid):
            response = await client.post(url, data={"_csrf": "x", "confirm": "yes"}, follow_redirects=False)
            assert response.status_code == 303, url
            assert response.headers["location"] == "/admin/login"
    # Nothing happened on the way: no change, no audit entry, not even a view.
    assert audit_actions(db) == []
    sess = session_detail(db, sid)
    assert (sess.status, sess.seats_taken, sess.sequence) == ("scheduled", 1, 0)
    assert webinar_detail(db, slug).published is True


async def test_changes_without_the_csrf_field_are_refused(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, _ = signed_in
    slug = make_webinar(db)
    sid = make_session(db, slug, capacity=1)
    await seated(client, sid, "ann@example.org", "bob@example.org")
    with db.session() as session:
        rid = session.exec(select(Registration.id).where(Registration.email == "bob@example.org")).one()
    assert rid is not None
    before = audit_actions(db)
    starts = later(20)
    for url in form_urls(slug, sid, rid):
        for data in ({}, {"_csrf": "forged"}):
            response = await client.post(
                url,
                data={
                    **data,
                    "confirm": "yes",
                    "title": "Changed",
                    "date": starts.date().isoformat(),
                    "time": "18:30",
                    "timezone": "America/Chicago",
                    "duration_minutes": "60",
                    "capacity": "5",
                    "join_url": NEW_JOIN,
                },
                follow_redirects=False,
            )
            assert response.status_code == 403, (url, response.text)
            assert parse(response.text).find("h1").text == "This form is out of date"
    assert audit_actions(db) == before
    sess = session_detail(db, sid)
    assert (sess.status, sess.capacity, sess.sequence, sess.seats_taken, sess.waitlisted) == (
        "scheduled",
        1,
        0,
        1,
        1,
    )
    assert webinar_detail(db, slug).title != "Changed"


async def test_every_webinar_admin_page_is_no_store_html_with_the_admin_menu(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, _ = signed_in
    slug = make_webinar(db)
    sid = make_session(db, slug)
    for url in [*page_urls(slug, sid), "/admin/webinars/nobody/edit", "/admin/sessions/987654"]:
        response = await client.get(url, follow_redirects=False)
        assert response.status_code in (200, 404), url
        assert response.headers["cache-control"] == "no-store", url
        assert "default-src 'self'" in response.headers["content-security-policy"]
        if url.endswith(".csv"):
            continue
        doc = parse(response.text)
        # No inline script or style, which the CSP would refuse.
        assert all("src" in script.attrs for script in doc.find_all("script"))
        assert all("style" not in el.attrs for el in doc.iter())
        assert all(not any(name.startswith("on") for name in el.attrs) for el in doc.iter())
        if response.status_code == 404:
            continue
        links = {a.attrs["href"]: a.text for a in doc.find("nav", aria_label="Admin").find_all("a")}
        assert links["/admin/webinars"] == "Webinars"
        assert links["/admin/outbox"] == "Outbox"
    missing = parse((await client.get("/admin/sessions/987654")).text)
    assert missing.find("h1").text == "We could not find that"
    assert "/api/" not in missing.text


async def test_the_dashboard_leads_to_webinars_and_the_outbox(signed_in: tuple[Client, str]) -> None:
    client, _ = signed_in
    doc = await page(client, "/admin")
    tile = doc.find("section", aria_labelledby="webinars-title")
    assert [a.attrs["href"] for a in tile.find_all("a")] == [
        "/admin/webinars",
        "/admin/webinars/new",
        "/admin/outbox",
    ]


# --- webinars and their dates through the forms -------------------------------------------------


async def test_an_admin_adds_a_webinar_and_a_date_through_the_forms(
    admin_account: tuple[str, str], app: Litestar, db: Database
) -> None:
    ada = add_provider(db, "Ada Elbowright", conditions=["tennis-elbow"])
    add_provider(db, "Hidden Person", conditions=["tennis-elbow"], published=False)
    # The directory index is built when the app starts: the providers are in it.
    async with AsyncTestClient(app=app) as client:
        await sign_in(client, admin_account)
        doc = await page(client, "/admin/webinars/new")
        choices = {i.attrs["value"]: i for i in doc.find_all("input", name="presenter_ids")}
        # Only published providers are offered as presenters.
        assert list(choices) == [str(ada.id)]

        empty = await post_form(client, doc, "/admin/webinars/new", title="")
        assert empty.status_code == 400
        wrong = parse(empty.text)
        assert wrong.find("title").text.startswith("Error:")
        assert errors_of(wrong) == [("#title", "Give the webinar a title (at most 200 characters).")]
        assert wrong.find("input", id="title").attrs["aria-invalid"] == "true"
        assert audit_actions(db)[-1] == "admin.login"

        pairs = [
            *replaced(
                form_data(doc.find("form", action="/admin/webinars/new")),
                title="Tennis elbow without surgery",
                description="PRP and other options.",
            ),
            ("presenter_ids", str(ada.id)),
            ("regions", "elbow"),
            ("conditions", "tennis-elbow"),
        ]
        created = await submit(client, "/admin/webinars/new", pairs, follow_redirects=False)
        assert created.status_code == 303, created.text
        slug = "tennis-elbow-without-surgery"
        assert created.headers["location"] == f"/admin/webinars/{slug}/edit?done=created"
        edit = await page(client, created.headers["location"])
        assert "not on the public site until you publish it" in notice(edit)
        assert edit.find("input", id=f"presenter-{ada.id}").attrs.get("checked") == ""
        assert "checked" in edit.find("input", id="region-elbow").attrs
        assert "checked" in edit.find("input", id="condition-tennis-elbow").attrs
        saved = webinar_detail(db, slug)
        assert (saved.title, saved.description, saved.published) == (
            "Tennis elbow without surgery",
            "PRP and other options.",
            False,
        )
        assert (saved.presenter_ids, saved.regions, saved.conditions) == (
            [ada.id],
            ["elbow"],
            ["tennis-elbow"],
        )
        assert (await client.get(f"/api/webinars/{slug}")).status_code == 404

        # Publish from the status panel: back on the same page, which says so.
        publish = edit.find("form", action=f"/admin/webinars/{slug}/publish")
        response = await submit(
            client, f"/admin/webinars/{slug}/publish", form_data(publish), follow_redirects=False
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/admin/webinars/{slug}/edit?done=publish"
        assert "Published" in notice(await page(client, response.headers["location"]))
        assert (await client.get(f"/api/webinars/{slug}")).status_code == 200

        # A date: 6:30 PM in Chicago, three weeks ahead.
        form = await page(client, f"/admin/webinars/{slug}/sessions/new")
        assert (
            form.find("select", id="timezone").find("option", selected="").attrs["value"]
            == "America/New_York"
        )
        starts = later(21)
        fields = {
            "date": starts.date().isoformat(),
            "time": "18:30",
            "timezone": "America/Chicago",
            "duration_minutes": "45",
            "capacity": "30",
            "join_url": JOIN,
        }
        added = await post_form(
            client, form, f"/admin/webinars/{slug}/sessions/new", follow_redirects=False, **fields
        )
        assert added.status_code == 303, added.text
        sid = int(urlsplit(added.headers["location"]).path.rsplit("/", 1)[1])
        assert added.headers["location"] == f"/admin/sessions/{sid}?done=created"
        sess = session_detail(db, sid)
        assert sess.starts_at == starts
        assert sess.starts_at.astimezone(UTC) == starts.astimezone(UTC)
        assert (sess.timezone, sess.duration_minutes, sess.capacity, sess.join_url) == (
            "America/Chicago",
            45,
            30,
            JOIN,
        )
        detail = await page(client, added.headers["location"])
        assert "Session added." in notice(detail)
        assert detail.find("input", id="date").attrs["value"] == starts.date().isoformat()
        assert detail.find("input", id="time").attrs["value"] == "18:30"
        public = (await client.get(f"/api/webinars/{slug}")).json()
        assert [datetime.fromisoformat(s["starts_at"]) for s in public["sessions"]] == [starts]

        # The list shows it: published, the next date, its seats.
        listing = await page(client, "/admin/webinars")
        [row] = listing.find("tbody").find_all("tr")
        cells = {el.attrs["data-label"]: el.text for el in row.iter() if "data-label" in el.attrs}
        assert cells["Public"] == "Published"
        assert cells["Seats on the next date"] == "0 of 30 taken"
        assert cells["Dates to come"] == "1 of 1"
        assert row.find("a", href=f"/admin/sessions/{sid}").text.startswith(starts.strftime("%A, %B"))
    actions = audit_actions(db)
    assert actions[-3:] == ["webinar.create", "webinar.publish", "session.create"]


async def test_webinar_edits_and_their_errors(signed_in: tuple[Client, str], db: Database) -> None:
    client, _ = signed_in
    slug = make_webinar(db)
    url = f"/admin/webinars/{slug}/edit"
    doc = await page(client, url)
    assert (
        doc.find("input", id="title").attrs["value"] == "Stem cell and platelet procedures for knee arthritis"
    )
    too_long = await post_form(client, doc, url, title="x" * 201)
    assert too_long.status_code == 400
    assert errors_of(parse(too_long.text)) == [
        ("#title", "Give the webinar a title (at most 200 characters).")
    ]
    unknown = await submit(
        client, url, [*form_data(doc.find("form", action=url)), ("conditions", "broken-heart")]
    )
    assert unknown.status_code == 400
    [(href, message)] = errors_of(parse(unknown.text))
    assert href == "#conditions"
    assert "broken-heart" in message
    assert "/api/" not in message
    many = [("presenter_ids", str(n)) for n in range(1, 22)]
    crowded = await submit(client, url, [*form_data(doc.find("form", action=url)), *many])
    assert errors_of(parse(crowded.text)) == [("#presenter_ids", "Choose at most 20 presenters.")]
    saved = await post_form(client, doc, url, title="Knee arthritis: your options", follow_redirects=False)
    assert saved.headers["location"] == f"{url}?done=saved"
    assert webinar_detail(db, slug).title == "Knee arthritis: your options"
    assert audit_actions(db)[-1] == "webinar.update"
    # Unpublish from the list: back on the list, which names the webinar.
    listing = await page(client, "/admin/webinars")
    button = listing.find("form", action=f"/admin/webinars/{slug}/unpublish")
    response = await submit(client, button.attrs["action"], form_data(button), follow_redirects=False)
    assert response.headers["location"] == f"/admin/webinars?done=unpublish&slug={slug}"
    assert notice(await page(client, response.headers["location"])).startswith(f"{slug} : Unpublished")
    assert webinar_detail(db, slug).published is False


async def test_a_date_form_says_what_to_fix(signed_in: tuple[Client, str], db: Database) -> None:
    client, _ = signed_in
    slug = make_webinar(db)
    url = f"/admin/webinars/{slug}/sessions/new"
    doc = await page(client, url)
    good = {
        "date": later(10).date().isoformat(),
        "time": "18:30",
        "timezone": "America/Chicago",
        "duration_minutes": "60",
        "capacity": "30",
        "join_url": JOIN,
    }
    spring_forward = next(
        d for d in (date(datetime.now(UTC).year + 1, 3, day) for day in range(8, 15)) if d.weekday() == 6
    )
    cases = [
        ({"date": "31/31/2026"}, [("#date", "Enter the date as YYYY-MM-DD, for example 2026-12-01.")]),
        ({"time": "25:00"}, [("#time", "Enter the start time as HH:MM, for example 18:30 or 6:30 PM.")]),
        (
            {"date": spring_forward.isoformat(), "time": "02:30"},
            [
                (
                    "#time",
                    f"02:30 does not exist on {spring_forward.isoformat()} in America/Chicago: "
                    "the clocks go forward then. Choose another time.",
                )
            ],
        ),
        ({"timezone": "Mars/Olympus"}, [("#timezone", "Choose a time zone from the list.")]),
        ({"date": later(-1).date().isoformat()}, [("#date", "A new session must start in the future.")]),
        ({"capacity": "0"}, [("#capacity", "Capacity must be between 1 and 100,000 seats.")]),
        ({"capacity": "lots"}, [("#capacity", "Enter the number of seats, for example 100.")]),
        (
            {"duration_minutes": "2"},
            [("#duration_minutes", "Duration must be between 5 minutes and 24 hours.")],
        ),
        (
            {"join_url": "meet me in the lobby"},
            [("#join_url", "The join link must be a web address (https://...) under 500 characters.")],
        ),
    ]
    for change, expected in cases:
        response = await post_form(client, doc, url, **{**good, **change})
        assert response.status_code == 400, (change, response.text)
        wrong = parse(response.text)
        assert errors_of(wrong) == expected, change
        # What was typed comes back as typed.
        for name, value in change.items():
            if name != "timezone":
                assert wrong.find("input", id=name).attrs["value"] == value
    assert webinar_detail(db, slug).sessions == []
    # 12-hour times and US dates typed by hand work too.
    typed = later(12, 19, 0)
    response = await post_form(
        client,
        doc,
        url,
        **{**good, "date": typed.strftime("%m/%d/%Y"), "time": "7:00 PM"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    [sess] = webinar_detail(db, slug).sessions
    assert sess.starts_at == typed


# --- moving, resizing and cancelling a session ---------------------------------------------------


async def test_moving_a_session_confirms_who_is_told_then_sends_each_an_updated_invite(
    signed_in: tuple[Client, str], db: Database, mailroom: Mailroom
) -> None:
    client, _ = signed_in
    sid = make_session(
        db, make_webinar(db), capacity=2, starts_in=timedelta(days=6), timezone="America/Chicago"
    )
    await seated(client, sid, "ann@example.org", "bob@example.org", "cleo@example.org")
    first = by_recipient(await mailroom.deliver(3))
    uids = {e: str(invite(first[e])[1]["UID"]) for e in ("ann@example.org", "bob@example.org")}
    base = f"/admin/sessions/{sid}"
    doc = await page(client, base)
    summary = doc.find("section", aria_labelledby="about-title").text
    assert "2 of 2 taken; 1 person on the waitlist" in summary

    new_start = later(9, 17, 0)
    review = await post_form(
        client, doc, f"{base}/move", date=new_start.date().isoformat(), time="17:00", duration_minutes="90"
    )
    assert review.status_code == 200, review.text
    confirm = parse(review.text)
    assert confirm.find("h1").text == "Confirm the change"
    panel = confirm.find("div", class_="confirm-panel").text
    assert "3 people will be told by e-mail." in panel
    assert "2 seat holders: an updated calendar invitation with the new time." in panel
    assert "1 person on the waitlist: an e-mail with the new time." in panel
    assert new_start.strftime("%A, %B") in confirm.find("dl").text
    # Reviewing changes nothing and sends nothing.
    assert session_detail(db, sid).sequence == 0
    assert await mailroom.worker.run_once() == 0
    assert "session.update" not in audit_actions(db)
    assert [a.text for a in confirm.find_all("a", href=base)] == [
        "Back to the session",
        "Go back without saving",
    ]

    done = await post_form(client, confirm, f"{base}/move", follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{base}?done=moved&told=3"
    after = await page(client, done.headers["location"])
    assert notice(after).startswith("Saved. 3 people are being e-mailed the change")
    sess = session_detail(db, sid)
    assert (sess.starts_at, sess.duration_minutes, sess.sequence) == (new_start, 90, 1)

    mail = by_recipient(await mailroom.deliver(3))
    assert set(mail) == {"ann@example.org", "bob@example.org", "cleo@example.org"}
    for email in ("ann@example.org", "bob@example.org"):
        method, event = invite(mail[email])
        assert (method, str(event["UID"]), event["SEQUENCE"]) == ("REQUEST", uids[email], 1)
        assert event["DTSTART"].dt == new_start
        assert event["DTEND"].dt == new_start + timedelta(minutes=90)
        assert str(event["ATTENDEE"]) == f"mailto:{email}"
    assert not has_invite(mail["cleo@example.org"])
    assert JOIN not in mail["cleo@example.org"].as_string()

    # A new join link reaches the seat holders only.
    doc = await page(client, base)
    review = parse((await post_form(client, doc, f"{base}/move", join_url=NEW_JOIN)).text)
    assert "2 people will be told by e-mail." in review.find("div", class_="confirm-panel").text
    assert review.find("dd", class_="admin-url").text == NEW_JOIN
    assert (await post_form(client, review, f"{base}/move", follow_redirects=False)).status_code == 303
    mail = by_recipient(await mailroom.deliver(2))
    assert set(mail) == {"ann@example.org", "bob@example.org"}
    assert all(invite(m)[1]["SEQUENCE"] == 2 and NEW_JOIN in body(m) for m in mail.values())

    # Another display zone, same moment: nobody needs an e-mail.
    doc = await page(client, base)
    in_denver = new_start.astimezone(ZoneInfo("America/Denver"))
    review = parse(
        (
            await post_form(
                client, doc, f"{base}/move", timezone="America/Denver", time=in_denver.strftime("%H:%M")
            )
        ).text
    )
    assert "Nobody will be e-mailed." in review.find("div", class_="confirm-panel").text
    assert (await post_form(client, review, f"{base}/move", follow_redirects=False)).headers[
        "location"
    ] == f"{base}?done=moved&told=0"
    assert session_detail(db, sid).timezone == "America/Denver"
    assert session_detail(db, sid).starts_at == new_start
    assert await mailroom.worker.run_once() == 0
    assert audit_actions(db).count("session.update") == 3


async def test_a_move_that_cannot_be_made_is_explained_beside_its_field(
    signed_in: tuple[Client, str], db: Database, mailroom: Mailroom
) -> None:
    client, _ = signed_in
    sid = make_session(db, make_webinar(db), timezone="America/Chicago")
    base = f"/admin/sessions/{sid}"
    doc = await page(client, base)
    for change, expected in [
        ({}, ("#date", "Nothing to change: enter a new date, time, length, time zone or join link.")),
        (
            {"date": later(-2).date().isoformat()},
            ("#date", "A session can only be moved to a time in the future."),
        ),
        (
            {"duration_minutes": "2000"},
            ("#duration_minutes", "Duration must be between 5 minutes and 24 hours."),
        ),
        (
            {"join_url": "ftp://files.example/x"},
            ("#join_url", "The join link must be a web address (https://...) under 500 characters."),
        ),
    ]:
        response = await post_form(client, doc, f"{base}/move", **change)
        assert response.status_code == 400, (change, response.text)
        assert errors_of(parse(response.text)) == [expected]
    # A hand-made "confirm" skips the review page, not the checks.
    response = await post_form(client, doc, f"{base}/move", confirm="yes", date=later(-2).date().isoformat())
    assert response.status_code == 400
    assert session_detail(db, sid).sequence == 0
    assert await mailroom.worker.run_once() == 0


async def test_cancelling_asks_first_then_tells_everyone(
    signed_in: tuple[Client, str], db: Database, mailroom: Mailroom
) -> None:
    client, _ = signed_in
    sid = make_session(db, make_webinar(db), capacity=2, starts_in=timedelta(days=6))
    await seated(client, sid, "ann@example.org", "bob@example.org", "cleo@example.org")
    first = by_recipient(await mailroom.deliver(3))
    uids = {e: str(invite(first[e])[1]["UID"]) for e in ("ann@example.org", "bob@example.org")}
    base = f"/admin/sessions/{sid}"
    doc = await page(client, base)
    assert doc.find("a", href=f"{base}/cancel").text == "Cancel this session…"

    ask = await page(client, f"{base}/cancel")
    assert ask.find("h1").text == "Cancel this session?"
    panel = ask.find("div", class_="confirm-panel").text
    assert "3 people will be told by e-mail." in panel
    assert "2 seat holders: a cancellation that removes it from their calendar." in panel
    assert "1 person on the waitlist" in panel
    assert [a.text for a in ask.find_all("a", href=base)] == ["Back to the session", "Keep the session"]
    assert session_detail(db, sid).status == "scheduled"

    button = ask.find("form", action=f"{base}/cancel")
    assert button.find("button").text == "Cancel it and tell 3 people"
    done = await submit(client, f"{base}/cancel", form_data(button), follow_redirects=False)
    assert done.headers["location"] == f"{base}?done=cancelled&told=3"
    after = await page(client, done.headers["location"])
    assert notice(after) == "Session cancelled. 3 people are being e-mailed the cancellation."
    assert not after.find_all("form", action=f"{base}/move")
    assert "This session is cancelled" in after.find("main").text

    mail = by_recipient(await mailroom.deliver(3))
    for email in ("ann@example.org", "bob@example.org"):
        method, event = invite(mail[email])
        assert (method, str(event["UID"]), event["SEQUENCE"], str(event["STATUS"])) == (
            "CANCEL",
            uids[email],
            1,
            "CANCELLED",
        )
    assert not has_invite(mail["cleo@example.org"])
    assert "cancelled" in body(mail["cleo@example.org"])

    # Cancelled: the confirmation page goes back to the session, a move is refused in words.
    again = await client.get(f"{base}/cancel", follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, base)
    refused = await post_form(client, doc, f"{base}/move", date=later(12).date().isoformat())
    assert refused.status_code == 409
    assert errors_of(parse(refused.text))[0][1].startswith("This session is cancelled")
    assert await mailroom.worker.run_once() == 0


async def test_more_seats_go_to_the_waitlist_and_fewer_than_taken_is_explained(
    signed_in: tuple[Client, str], db: Database, mailroom: Mailroom
) -> None:
    client, _ = signed_in
    sid = make_session(db, make_webinar(db), capacity=1)
    await seated(client, sid, "ann@example.org", "bob@example.org", "cleo@example.org")
    await mailroom.deliver(3)
    base = f"/admin/sessions/{sid}"
    doc = await page(client, base)
    grown = await post_form(client, doc, f"{base}/capacity", capacity="2", follow_redirects=False)
    assert grown.headers["location"] == f"{base}?done=capacity&told=1"
    assert "1 moved up from the waitlist and is being e-mailed" in notice(
        await page(client, grown.headers["location"])
    )
    mail = by_recipient(await mailroom.deliver(1))
    assert invite(mail["bob@example.org"])[0] == "REQUEST"
    shrunk = await post_form(client, doc, f"{base}/capacity", capacity="1")
    assert shrunk.status_code == 400
    [(href, message)] = errors_of(parse(shrunk.text))
    assert href == "#capacity"
    assert message.startswith("2 people hold seats already: capacity must be at least 2")
    assert session_detail(db, sid).capacity == 2


# --- attendees ----------------------------------------------------------------------------------


async def test_attendees_by_status_with_remove_give_a_seat_and_the_csv(
    signed_in: tuple[Client, str], db: Database, settings: Settings, mailroom: Mailroom
) -> None:
    client, _ = signed_in
    # It starts in a few seconds: once under way, a freed seat is only given by hand.
    sid = make_session(
        db, make_webinar(db), capacity=1, starts_in=timedelta(seconds=6), timezone="America/Chicago"
    )
    await seated(client, sid, "ann@example.org", "bob@example.org", "cleo@example.org")
    await register(client, sid, "+1@example.org", '=HYPERLINK("https://evil.example","x")')
    await mailroom.deliver(4)
    base = f"/admin/sessions/{sid}"
    doc = await page(client, f"{base}/attendees")
    tabs = {a.text: a for a in doc.find("nav", aria_label="Show").find_all("a")}
    assert list(tabs) == ["Everyone (4)", "Confirmed (1)", "Waitlist (3)", "Cancelled (0)"]
    assert tabs["Everyone (4)"].attrs["aria-current"] == "page"
    rows = doc.find("tbody").find_all("tr")
    assert [(r.find("th").text, r.find("td", data_label="Status").text) for r in rows] == [
        ("Ann Doe", "Confirmed"),
        ("Bob Doe", "Waitlist, number 1"),
        ("Cleo Doe", "Waitlist, number 2"),
        ('=HYPERLINK("https://evil.example","x")', "Waitlist, number 3"),
    ]
    waiting = await page(client, f"{base}/attendees?status=waitlisted")
    assert [r.find("th").text for r in waiting.find("tbody").find_all("tr")] == [
        "Bob Doe",
        "Cleo Doe",
        '=HYPERLINK("https://evil.example","x")',
    ]
    assert (await client.get(f"{base}/attendees?status=lost")).status_code == 400
    # Every look at the list is in the audit log.
    assert audit_after(db, "session.attendees.view") == [
        {"status": "all", "rows": 4},
        {"status": "waitlisted", "rows": 3},
    ]

    # Nobody can be given a seat while the session is full.
    bob_row = waiting.find("tbody").find_all("tr")[0]
    give = next(f for f in bob_row.find_all("form") if f.attrs["action"].endswith("/promote"))
    assert give.find("button").text == "Give a seat to Bob Doe"
    full = await submit(client, give.attrs["action"], form_data(give))
    assert full.status_code == 409
    problem = parse(full.text).find(role="alert").text
    assert "This session is full: all 1 seats are taken." in problem
    assert "/api/" not in problem

    # Once it is under way a freed seat stays free, and an admin may hand it to someone.
    starts_at = session_detail(db, sid).starts_at
    await asyncio.sleep(max(0.0, (starts_at - datetime.now(UTC)).total_seconds()) + 0.2)
    with db.session() as session:
        ann = session.exec(select(Registration).where(Registration.email == "ann@example.org")).one()
    ann_token = registration_token(settings.secret_key, ann.invite_uid)
    assert (await client.delete(f"/api/registrations/{ann_token}")).status_code == 200
    assert session_detail(db, sid).seats_taken == 0
    assert invite(by_recipient(await mailroom.deliver(1))["ann@example.org"])[0] == "CANCEL"
    given = await submit(client, give.attrs["action"], form_data(give), follow_redirects=False)
    assert given.headers["location"] == f"{base}/attendees?status=waitlisted&done=promoted"
    after = await page(client, given.headers["location"])
    assert notice(after) == "Given a seat. They are being e-mailed the invitation."
    assert next(r.find("th").text for r in after.find("tbody").find_all("tr")) == "Cleo Doe"
    assert invite(by_recipient(await mailroom.deliver(1))["bob@example.org"])[0] == "REQUEST"

    # Remove a seat holder: they are told (nobody moves up under way).
    everyone = await page(client, f"{base}/attendees?status=confirmed")
    [bob] = everyone.find("tbody").find_all("tr")
    remove = next(f for f in bob.find_all("form") if f.attrs["action"].endswith("/remove"))
    assert remove.find("button").text == "Remove Bob Doe"
    removed = await submit(client, remove.attrs["action"], form_data(remove), follow_redirects=False)
    assert removed.headers["location"] == f"{base}/attendees?status=confirmed&done=removed"
    assert "Removed." in notice(await page(client, removed.headers["location"]))
    again = await submit(client, remove.attrs["action"], form_data(remove))
    assert again.status_code == 409
    assert "already cancelled" in parse(again.text).find(role="alert").text
    assert invite(by_recipient(await mailroom.deliver(1))["bob@example.org"])[0] == "CANCEL"

    response = await client.get(f"{base}/attendees.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith(f'attachment; filename="session-{sid}-')
    assert response.headers["cache-control"] == "no-store"
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines[0][:4] == ["registration_id", "name", "email", "status"]
    assert lines[0][6] == "registered_at (America/Chicago)"
    assert sorted((r[1], r[2], r[3]) for r in lines[1:]) == sorted(
        [
            ("Ann Doe", "ann@example.org", "cancelled"),
            ("Bob Doe", "bob@example.org", "cancelled"),
            ("Cleo Doe", "cleo@example.org", "waitlisted"),
            ('\'=HYPERLINK("https://evil.example","x")', "'+1@example.org", "waitlisted"),
        ]
    )
    assert audit_after(db, "session.attendees.export") == [{"format": "csv", "rows": 4}]
    # The download button on the page leads there.
    assert doc.find("a", href=f"{base}/attendees.csv").text == "Download as CSV"


# --- the outbox ---------------------------------------------------------------------------------


def outbox_rows(doc: Element) -> list[dict[str, Any]]:
    """The outbox table as an admin reads it: number, kind, recipient, state, buttons."""
    rows = []
    for row in doc.find("tbody").find_all("tr"):
        about = row.find("th").find("span", class_="admin-slug").text
        number, kind = about.split(", ")[:2]
        rows.append(
            {
                "id": int(number.removeprefix("Number ")),
                "kind": kind,
                "subject": row.find("th").text.removesuffix(about).strip(),
                "to": row.find("td", data_label="To").text,
                "state": row.find("td", data_label="State").text,
                "times": row.find("td", data_label="Times (UTC)").text,
                "buttons": [b.text for b in row.find_all("button")],
            }
        )
    return rows


async def test_the_outbox_page_shows_each_state_and_sends_a_failed_one_again(
    signed_in: tuple[Client, str], db: Database, smtp_server: MailServer, mailroom: Mailroom
) -> None:
    client, _ = signed_in
    sid = make_session(db, make_webinar(db), capacity=5)
    other = make_session(db, make_webinar(db, "Back pain basics", regions=["lower-spine"], conditions=[]))

    async def send_all() -> None:
        while await mailroom.worker.run_once():
            pass

    await register(client, sid, "ann@example.org", "Ann Lee")
    smtp_server.answer(550, "5.1.1 Mailbox unavailable", at="RCPT")
    await send_all()
    smtp_server.accept()
    await register(client, sid, "bob@example.org", "Bob Roe")
    await send_all()
    await register(client, sid, "cleo@example.org", "Cleo Poe")
    smtp_server.answer(451, "4.3.0 Try again later")
    await send_all()
    smtp_server.accept()
    # Dan's e-mail is in the outbox (written with his registration); the worker has not run.
    await register(client, sid, "dan@example.org", "Dan Fox")

    doc = await page(client, "/admin/outbox")
    rows = outbox_rows(doc)
    # Newest first. Each seat holder's reminder waits in the outbox for its day.
    assert [(r["to"], r["kind"]) for r in rows] == [
        (email, kind)
        for email in ("dan@example.org", "cleo@example.org", "bob@example.org", "ann@example.org")
        for kind in ("reminder", "confirmed")
    ]
    confirmations = {r["to"]: r for r in rows if r["kind"] == "confirmed"}
    assert confirmations["dan@example.org"]["state"].startswith("Queued")
    assert confirmations["cleo@example.org"]["state"].startswith("Retrying")
    assert "451" in confirmations["cleo@example.org"]["state"]
    assert confirmations["bob@example.org"]["state"] == "Sent"
    assert confirmations["ann@example.org"]["state"].startswith("Failed")
    assert "550" in confirmations["ann@example.org"]["state"]
    assert {r["state"] for r in rows if r["kind"] == "reminder"} == {"Queued"}
    assert all("Goes out" in r["times"] for r in rows if r["state"].startswith("Queued"))
    assert "Next try" in confirmations["cleo@example.org"]["times"]
    assert "Sent" in confirmations["bob@example.org"]["times"]
    # Send again: on failed and sent ones only.
    assert [r["buttons"] for r in confirmations.values()] == [
        [],
        [],
        [f"Send again number {confirmations['bob@example.org']['id']} to bob@example.org"],
        [f"Send again number {confirmations['ann@example.org']['id']} to ann@example.org"],
    ]
    assert all(r["buttons"] == [] for r in rows if r["kind"] == "reminder")
    # Subjects stay discreet.
    assert all("knee" not in r["subject"].lower() for r in rows)

    failed = await page(client, "/admin/outbox?status=failed")
    assert [(r["to"], r["kind"]) for r in outbox_rows(failed)] == [("ann@example.org", "confirmed")]
    assert failed.find("select", id="status").find("option", selected="").attrs["value"] == "failed"
    of_session = outbox_rows(await page(client, f"/admin/outbox?session={sid}"))
    assert [r["id"] for r in of_session] == [r["id"] for r in rows]
    assert "No e-mails match." in (await page(client, f"/admin/outbox?session={other}")).find("main").text
    for bad in ("/admin/outbox?status=lost", "/admin/outbox?session=abc"):
        assert (await client.get(bad)).status_code == 400
    assert audit_after(db, "outbox.view")[1] == {"status": "failed", "rows": 1}

    resend = failed.find("tbody").find("form")
    answer = await submit(client, resend.attrs["action"], form_data(resend), follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/outbox?status=failed&done=resent"
    shown = await page(client, answer.headers["location"])
    assert notice(shown).startswith("Queued to be sent again.")
    assert "No e-mails match." in shown.find("main").text
    await send_all()
    delivered = by_recipient(smtp_server.messages[1:])
    assert set(delivered) == {"ann@example.org", "dan@example.org"}
    assert invite(delivered["ann@example.org"])[0] == "REQUEST"
    assert "outbox.resend" in audit_actions(db)

    # A message a later one replaced is not sent again: the page says why.
    with db.session() as session:
        bob = session.exec(select(Registration).where(Registration.email == "bob@example.org")).one()
    token = registration_token(mailroom.settings.secret_key, bob.invite_uid)
    assert (await client.delete(f"/api/registrations/{token}")).status_code == 200
    await send_all()
    everything = await page(client, "/admin/outbox")
    bob_number = f"Number {confirmations['bob@example.org']['id']},"
    bob_first = next(r for r in everything.find("tbody").find_all("tr") if bob_number in r.find("th").text)
    stale = await submit(client, bob_first.find("form").attrs["action"], form_data(bob_first.find("form")))
    assert stale.status_code == 409
    assert "replaced it" in parse(stale.text).find(role="alert").text
    missing = await submit(client, "/admin/outbox/987654/resend", form_data(bob_first.find("form")))
    assert missing.status_code == 404


# --- the pure parts -----------------------------------------------------------------------------


def test_wall_clock_times_become_instants_in_their_zone() -> None:
    start, errors = local_start("2026-07-01", "18:30", "America/Chicago")
    assert (start, errors) == (datetime(2026, 7, 1, 23, 30, tzinfo=UTC), [])
    winter, _ = local_start("12/01/2026", "6:30 PM", "America/Chicago")
    assert winter == datetime(2026, 12, 2, 0, 30, tzinfo=UTC)
    # Fall back: 1:30 happens twice; the first (daylight) one is meant.
    twice, _ = local_start("2026-11-01", "01:30", "America/New_York")
    assert twice is not None
    assert twice.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    gap, errors = local_start("2026-03-08", "02:30", "America/New_York")
    assert gap is None
    assert errors[0][0] == "time"
    assert local_start("", "", "Nowhere/Else") == (
        None,
        [
            ("date", "Enter the date as YYYY-MM-DD, for example 2026-12-01."),
            ("time", "Enter the start time as HH:MM, for example 18:30 or 6:30 PM."),
            ("timezone", "Choose a time zone from the list."),
        ],
    )
    assert [parse_clock(t) for t in ("00:00", "12:00 AM", "12:15 pm", "9:05", "13:00 PM", "7:60")] == [
        time(0, 0),
        time(0, 0),
        time(12, 15),
        time(9, 5),
        None,
        None,
    ]
    assert [parse_day(d) for d in ("2026-02-29", "2028-02-29", "2/3/2027", "tomorrow")] == [
        None,
        date(2028, 2, 29),
        date(2027, 2, 3),
        None,
    ]
    assert (
        short_time(datetime(2026, 7, 1, 23, 5, tzinfo=UTC), "America/Chicago") == "Jul 1, 2026, 6:05 PM CDT"
    )
    assert short_time(None) == ""


def test_who_is_told_follows_what_changes() -> None:
    from booking.admin_service import AdminSessionOut

    now = datetime.now(UTC)
    starts = (now + timedelta(days=3)).replace(second=0, microsecond=0)
    sess = AdminSessionOut(
        id=1,
        webinar_slug="w",
        starts_at=starts.astimezone(CHICAGO),
        ends_at=(starts + timedelta(hours=1)).astimezone(CHICAGO),
        timezone="America/Chicago",
        duration_minutes=60,
        capacity=10,
        seats_taken=4,
        waitlisted=2,
        status="scheduled",
        join_url=JOIN,
        sequence=0,
        created_at=now,
        updated_at=now,
        cancelled_at=None,
    )
    assert people_told(sess, ["starts_at"]) == (4, 2)
    assert people_told(sess, ["duration_minutes", "join_url"]) == (4, 2)
    assert people_told(sess, ["join_url"]) == (4, 0)
    assert people_told(sess, ["timezone"]) == (0, 0)
    unchanged = SessionForm.of(sess)
    assert review_move(sess, unchanged, now)[0] is None
    moved, errors = review_move(sess, SessionForm(**{**_fields(unchanged), "duration_minutes": "75"}), now)
    assert errors == []
    assert moved is not None
    assert (moved.changed, moved.told, moved.rescheduled) == (("duration_minutes",), 6, True)
    # A change of capacity is not the move form's business.
    assert review_move(sess, SessionForm(**{**_fields(unchanged), "capacity": "x"}), now)[0] is None


def _fields(form: SessionForm) -> dict[str, str]:
    return {name: getattr(form, name) for name in SessionForm.__slots__}


def test_presenter_choices_keep_the_chosen_and_search_the_rest(db: Database) -> None:
    people = [add_provider(db, f"Dr. {name}") for name in ("Zed Last", "Amy First", "Bea Second", "Cy Third")]
    add_provider(db, "Dr. Not Published", published=False)
    index: SearchIndex = build_index(db)
    ids = {p.name: p.id or 0 for p in people}
    choices, matching = presenter_choices(index, [ids["Dr. Zed Last"], 999_999], "", limit=4)
    assert [c.name for c in choices] == [
        "Dr. Zed Last, MD",
        "Provider 999999",
        "Dr. Amy First, MD",
        "Dr. Bea Second, MD",
    ]
    assert choices[1] == PresenterChoice(999_999, "Provider 999999", listed=False)
    assert matching == 3
    found, matching = presenter_choices(index, [], "third")
    assert ([c.name for c in found], matching) == (["Dr. Cy Third, MD"], 1)


def test_api_directions_are_left_out_of_page_messages() -> None:
    assert plain("No webinar 'x'. GET /api/admin/webinars lists them all.") == "No webinar 'x'."
    assert (
        plain("To seat more, raise its capacity (PATCH /api/admin/sessions/3); new seats go first.")
        == "To seat more, raise its capacity; new seats go first."
    )
    assert plain("Registration 4 is already cancelled.") == "Registration 4 is already cancelled."
