"""Attendees' journeys in a real browser (Debian's Chromium via Playwright) against the real server.

The server is the app as deployed (`litestar db upgrade`, `litestar seed demo`, `litestar run` on a
temporary SQLite file) with its outbox worker sending to a real SMTP server on loopback
(tests/mailserver.py), so an invite is checked where an attendee would find it: in the mail.
Browser, tab, axe-core and layout checks are test_browser.py's, at the same widths.

Without /usr/bin/chromium or axe-core these tests skip; with REQUIRE_BROWSER=1 (CI) they fail.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest

from booking.service import SessionInput, WebinarInput, add_session, create_webinar
from core.db import Database
from scripts.demo_server import CHROMIUM
from tests.mailserver import MailServer, Received
from tests.server import litestar, running_server
from tests.web import test_browser
from tests.web.test_browser import (
    AXE,
    DESKTOP,
    PHONE,
    VIEWPORTS,
    Tab,
    _unavailable,
    axe_violations,
    overflows_horizontally,
    small_targets,
)

if TYPE_CHECKING:
    # Annotations only: test_browser (imported above) skips the module when Playwright is missing.
    from playwright.sync_api import Browser, Page

JOIN = "https://meet.example/j/small-group?pwd=hush"
MAIL_SECONDS = 30.0
# The manage link in a mail (the calendar file's link is /api/registrations/<token>/invite.ics).
MANAGE_LINK = re.compile(r"https?://[^/\s]+(/registrations/[A-Za-z0-9_-]{40,})(?=\s|$)", re.MULTILINE)

# test_browser's fixtures (one Chromium; tabs that note foreign requests and console errors), here
# run against this module's `site`.
browser = test_browser.browser
open_tab = test_browser.open_tab


# --- The site, its mail server, and its database -------------------------------------------------


@pytest.fixture(scope="module")
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The server's own database: tests add small sessions to it while the server runs."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('webinar-site') / 'orthodex.db'}")
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def site(site_db: Database, mail: MailServer) -> Iterator[str]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    if not AXE.exists():
        _unavailable(f"{AXE} is missing: npm install --prefix tests/js")
    # BASE_URL stays the default: the server's port is chosen when it starts, so the tests follow
    # the path of each link in the mail on the server they talk to.
    env = {
        "DATABASE_URL": site_db.url,
        "SMTP_HOST": mail.host,
        "SMTP_PORT": str(mail.port),
        "NETWORK_NAME": "Orthodex Clinic Network",
    }
    litestar("db", "upgrade", env=env)
    litestar("seed", "demo", env=env)
    with running_server(env) as base_url:
        yield base_url


def small_session(db: Database, title: str, capacity: int = 1) -> tuple[str, int]:
    """A webinar of its own with one date of `capacity` seats, through the booking service."""
    slug = create_webinar(
        db, WebinarInput(title=title, regions=["hand-wrist"], conditions=["carpal-tunnel-syndrome"])
    )
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=4)
    return slug, add_session(db, slug, SessionInput(starts_at, "America/Denver", capacity, JOIN, 45))


def api_register(site: str, session_id: int, email: str, name: str = "Lee Park") -> dict[str, Any]:
    response = httpx.post(
        f"{site}/api/sessions/{session_id}/registrations", json={"name": name, "email": email}, timeout=10
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


# --- Mail ---------------------------------------------------------------------------------------


def calendar_part(message: EmailMessage) -> tuple[str, icalendar.Calendar] | None:
    """(the Content-Type's method, the parsed calendar) of the iMIP part, if there is one."""
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            return str(part.get_param("method")), icalendar.Calendar.from_ical(data)
    return None


def wait_for_mail(mail: MailServer, to: str, wanted: Callable[[EmailMessage], bool]) -> Received:
    deadline = time.monotonic() + MAIL_SECONDS
    while time.monotonic() < deadline:
        for received in mail.messages:
            if to in received.rcpt_tos and wanted(received.message):
                return received
        time.sleep(0.1)
    got = [(r.rcpt_tos, str(r.message["Subject"])) for r in mail.messages]
    raise AssertionError(f"no such mail to {to} within {MAIL_SECONDS:.0f}s; the server got {got}")


def with_method(method: str) -> Callable[[EmailMessage], bool]:
    def wanted(message: EmailMessage) -> bool:
        found = calendar_part(message)
        return found is not None and found[1]["METHOD"] == method

    return wanted


def only_event(calendar: icalendar.Calendar) -> Any:
    [event] = calendar.walk("VEVENT")
    return event


def manage_path_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = MANAGE_LINK.search(body.get_content())
    assert found, "no manage link in the mail"
    return found.group(1)


# --- Pages as a visitor sees them -----------------------------------------------------------------


def register_in_form(page: Page, session_id: int, name: str, email: str, *, consent: bool = False) -> None:
    page.locator(f"label[for=session-{session_id}]").click()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Your e-mail address").fill(email)
    if consent:
        page.get_by_text("Yes, e-mail me about future free webinars").click()
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(re.compile(r"/registrations/[A-Za-z0-9_-]+/confirmation$"))


def first_open_session(page: Page) -> int:
    return int(page.locator("input[name=session]").first.get_attribute("value") or "0")


def h1(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text()


def referers_to(page: Page) -> list[str]:
    """Every Referer header the page's requests carry from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.headers.get("referer", "")))
    return seen


# --- The journeys the issue describes -------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_attendee_registers_gets_the_invite_then_cancels_and_gets_the_cancellation(
    open_tab: Callable[..., Tab], mail: MailServer, viewport: dict[str, int]
) -> None:
    email = f"pat.{viewport['width']}@example.com"
    tab = open_tab(viewport)
    page = tab.page
    referers = referers_to(page)
    tab.go("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Webinars").click()
    page.wait_for_url(re.compile(r"/webinars$"))
    assert h1(page) == "Free webinars"
    assert axe_violations(page) == []
    card = page.locator("li.webinar-card").first
    title = card.locator("h3").inner_text()
    card.get_by_role("link", name=f"See all dates and register for {title}").click()
    page.wait_for_url(re.compile(r"/webinars/[a-z0-9-]+$"))
    assert h1(page) == title
    assert axe_violations(page) == []
    session_id = first_open_session(page)
    when = page.locator(f"label[for=session-{session_id}] .when__local").inner_text()

    register_in_form(page, session_id, "Pat Doe", email, consent=True)
    assert h1(page) == "You are registered"
    assert email in page.locator(".status").inner_text()
    assert when in page.locator("dl.summary").inner_text()
    assert page.get_by_role("link", name="Join the webinar").is_visible()
    assert axe_violations(page) == []

    # The invitation, as the attendee's mail program gets it.
    invite = wait_for_mail(mail, email, with_method("REQUEST")).message
    found = calendar_part(invite)
    assert found is not None
    header_method, calendar = found
    assert header_method == "REQUEST"
    event = only_event(calendar)
    attendees = event.get("ATTENDEE")
    assert not isinstance(attendees, list), "exactly one ATTENDEE"
    assert str(attendees).lower() == f"mailto:{email}"
    assert event["STATUS"] == "CONFIRMED"
    uid, sequence = str(event["UID"]), int(event["SEQUENCE"])

    # The private link in the mail opens the manage page.
    manage = manage_path_in(invite)
    tab.go(manage)
    assert h1(page) == "Your webinar registration"
    assert "Seat confirmed" in page.locator(".status").inner_text()
    google = page.get_by_role("link", name="Add to Google Calendar").get_attribute("href") or ""
    assert google.startswith("https://calendar.google.com/calendar/render?")
    assert axe_violations(page) == []
    page.get_by_role("link", name="Cancel my registration").click()
    page.wait_for_url(re.compile(r"/cancel$"))
    assert h1(page) == "Cancel your registration?"
    assert axe_violations(page) == []
    page.get_by_role("button", name="Yes, cancel my registration").click()
    page.wait_for_url(re.compile(r"\?cancelled=true$"))
    assert "Your registration is cancelled." in page.get_by_role("status").inner_text()
    assert "Status: Cancelled" in page.locator(".status").inner_text()
    assert page.get_by_role("link", name="Join the webinar").count() == 0
    assert axe_violations(page) == []

    cancellation = wait_for_mail(mail, email, with_method("CANCEL")).message
    found = calendar_part(cancellation)
    assert found is not None
    assert found[0] == "CANCEL"
    cancelled = only_event(found[1])
    # RFC 5546 3.2.5: the same UID, a higher SEQUENCE, STATUS:CANCELLED.
    assert str(cancelled["UID"]) == uid
    assert int(cancelled["SEQUENCE"]) > sequence
    assert cancelled["STATUS"] == "CANCELLED"
    # The private pages told no one where they were, not even this site.
    token = manage.rsplit("/", 1)[1]
    assert [r for r in referers if token in r] == []
    assert tab.problems() == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_full_session_puts_the_next_person_on_the_waitlist_and_a_cancellation_moves_them_up(
    open_tab: Callable[..., Tab], site_db: Database, mail: MailServer, viewport: dict[str, int]
) -> None:
    width = viewport["width"]
    slug, session_id = small_session(site_db, f"Small group on carpal tunnel ({width})")
    first, second = f"first.{width}@example.com", f"second.{width}@example.com"

    tab = open_tab(viewport)
    tab.go(f"/webinars/{slug}")
    label = tab.page.locator(f"label[for=session-{session_id}]")
    assert label.locator(".seats").inner_text() == "1 seat left"
    # The only date is chosen already; choosing it again changes nothing.
    register_in_form(tab.page, session_id, "First Person", first)
    assert h1(tab.page) == "You are registered"
    first_manage = tab.page.get_by_role("link", name="Manage my registration").get_attribute("href") or ""

    other = open_tab(viewport)
    page = other.page
    other.go(f"/webinars/{slug}")
    assert page.locator(f"label[for=session-{session_id}] .seats").inner_text() == (
        "Full: you can join the waitlist"
    )
    register_in_form(page, session_id, "Second Person", second)
    assert h1(page) == "You are on the waitlist"
    assert "You are number 1 on the waitlist." in page.locator(".status").inner_text()
    assert page.get_by_role("link", name="Join the webinar").count() == 0
    assert axe_violations(page) == []
    waitlisted = wait_for_mail(mail, second, lambda m: "waitlist" in str(m["Subject"]).lower())
    assert calendar_part(waitlisted.message) is None, "no invitation without a seat"
    second_manage = manage_path_in(waitlisted.message)

    # The first person cancels from the manage page; the seat goes to the second.
    tab.go(first_manage)
    tab.page.get_by_role("link", name="Cancel my registration").click()
    tab.page.get_by_role("button", name="Yes, cancel my registration").click()
    tab.page.wait_for_url(re.compile(r"\?cancelled=true$"))
    promoted = wait_for_mail(mail, second, with_method("REQUEST")).message
    found = calendar_part(promoted)
    assert found is not None
    assert str(only_event(found[1])["ATTENDEE"]).lower() == f"mailto:{second}"
    other.go(second_manage)
    assert "Seat confirmed" in page.locator(".status").inner_text()
    assert page.get_by_role("link", name="Join the webinar").get_attribute("href") == JOIN
    assert tab.problems() == other.problems() == []


# --- Every webinar page, both widths ---------------------------------------------------------------


def webinar_pages(site: str, db: Database, tag: str) -> dict[str, str]:
    """A path for every kind of webinar page, with real registrations behind the private ones."""
    webinars = httpx.get(f"{site}/api/webinars", timeout=10).json()
    slug, session_id = small_session(db, f"Hand and wrist pain ({tag})")
    seat = api_register(site, session_id, f"seat.{tag}@example.com")
    waiting = api_register(site, session_id, f"waiting.{tag}@example.com")
    gone = api_register(site, session_id, f"gone.{tag}@example.com")
    assert httpx.delete(f"{site}/api/registrations/{gone['token']}", timeout=10).status_code == 200
    return {
        "list": "/webinars",
        "list, by region": "/webinars?region=knee",
        "list, nothing found": "/webinars?condition=plantar-fasciitis",
        "webinar": f"/webinars/{webinars[0]['slug']}",
        "webinar, full": f"/webinars/{slug}",
        "already registered": f"/webinars/{slug}/already-registered",
        "confirmation": f"/registrations/{seat['token']}/confirmation",
        "confirmation, waitlisted": f"/registrations/{waiting['token']}/confirmation",
        "manage": f"/registrations/{seat['token']}",
        "manage, waitlisted": f"/registrations/{waiting['token']}",
        "manage, cancelled": f"/registrations/{gone['token']}?cancelled=true",
        "cancel step": f"/registrations/{seat['token']}/cancel",
        "wrong link": "/registrations/not-a-real-token",
        "unknown webinar": "/webinars/no-such-webinar",
    }


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_webinar_page_passes_axe_with_big_targets_and_no_sideways_scrolling(
    open_tab: Callable[..., Tab], site: str, site_db: Database, viewport: dict[str, int]
) -> None:
    tab = open_tab(viewport)
    page = tab.page
    pages = webinar_pages(site, site_db, f"axe{viewport['width']}")
    failures: dict[str, Any] = {}

    def check(label: str) -> None:
        problems = {
            "axe": axe_violations(page),
            "small targets": small_targets(page),
            "sideways scrolling": overflows_horizontally(page),
        }
        problems = {k: v for k, v in problems.items() if v}
        if problems:
            failures[label] = problems

    for label, path in pages.items():
        tab.go(path)
        check(label)
    # The form with every error showing.
    tab.go(pages["webinar"])
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").is_visible()
    check("webinar, errors")
    assert failures == {}
    assert tab.problems() == []


def test_webinar_pages_reflow_at_320_px_without_sideways_scrolling(
    open_tab: Callable[..., Tab], site: str, site_db: Database
) -> None:
    # WCAG 1.4.10: 320 CSS px is 1280 px zoomed to 400%.
    tab = open_tab({"width": 320, "height": 640})
    wide = []
    for path in webinar_pages(site, site_db, "reflow").values():
        tab.go(path)
        if overflows_horizontally(tab.page):
            wide.append(path)
    assert wide == []


# --- The form: errors, no JavaScript, the visitor's time zone ----------------------------------------


def test_errors_are_announced_and_lead_to_their_fields(open_tab: Callable[..., Tab], site: str) -> None:
    tab = open_tab(PHONE)
    page = tab.page
    tab.go("/webinars")
    page.locator("li.webinar-card .card__name a").first.click()
    page.wait_for_url(re.compile(r"/webinars/[a-z0-9-]+$"))
    page.get_by_label("Your name").fill("Pat Doe")
    page.get_by_label("Your e-mail address").fill("pat.doe@example")
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    # site.js moves focus to the summary, so a screen reader reads it first.
    assert page.evaluate("document.activeElement.hasAttribute('data-error-summary')")
    alert = page.get_by_role("alert")
    assert "Choose the date you want to attend." in alert.inner_text()
    assert "not an e-mail address" in alert.inner_text()
    email = page.get_by_role("textbox", name="Your e-mail address")
    assert email.get_attribute("aria-invalid") == "true"
    assert email.input_value() == "pat.doe@example"
    assert page.get_by_label("Your name").input_value() == "Pat Doe"
    alert.get_by_role("link", name=re.compile("not an e-mail address")).click()
    assert page.evaluate("document.activeElement.id") == "email"
    alert.get_by_role("link", name="Choose the date you want to attend.").click()
    assert page.evaluate("document.activeElement.name") == "session"
    assert axe_violations(page) == []
    assert tab.problems() == []


def test_registering_works_with_javascript_off(
    open_tab: Callable[..., Tab], site_db: Database, mail: MailServer
) -> None:
    slug, session_id = small_session(site_db, "Hand pain without JavaScript", capacity=5)
    tab = open_tab(PHONE, javascript=False)
    page = tab.page
    tab.go(f"/webinars/{slug}")
    # Without the script there is no "Your time" line, only the session's zone and UTC.
    assert page.locator("[data-your-time]").first.is_hidden()
    assert "(Denver time)" in page.locator(".when__local").first.inner_text()
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").is_visible()
    register_in_form(page, session_id, "No Script", "no.script@example.com")
    assert h1(page) == "You are registered"
    page.get_by_role("link", name="Manage my registration").click()
    page.get_by_role("link", name="Cancel my registration").click()
    page.get_by_role("button", name="Yes, cancel my registration").click()
    page.wait_for_url(re.compile(r"\?cancelled=true$"))
    assert "Status: Cancelled" in page.locator(".status").inner_text()
    assert tab.problems() == []


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Denver"])
def test_each_date_shows_in_the_visitors_own_time_zone(
    browser: Browser, site: str, site_db: Database, zone: str
) -> None:
    slug, session_id = small_session(site_db, f"Wrist talk for {zone}", capacity=5)
    context = browser.new_context(viewport=DESKTOP, timezone_id=zone)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.goto(f"{site}/webinars/{slug}")
        yours = page.locator(f"label[for=session-{session_id}] [data-your-time]")
        yours.wait_for()
        if zone == "America/Denver":
            # The session's own zone: said once, not repeated.
            assert yours.inner_text() == "That is your time zone too."
            return
        start = datetime.fromisoformat(yours.locator("time").get_attribute("datetime") or "")
        local = start.astimezone(ZoneInfo(zone))
        text = yours.inner_text()
        assert text.startswith(f"Your time: {local:%A}, {local:%B} {local.day}, {local.year}")
        assert f"{local.hour % 12 or 12}:{local.minute:02d}" in text
        assert text.endswith("(Tokyo time)")
    finally:
        context.close()
