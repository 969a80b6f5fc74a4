"""The admin's webinar work in a real browser (Debian's Chromium via Playwright) against the real
server: add a date, move it (through the confirmation step), read the attendee list; and every
webinar admin page checked with axe-core, for 44 px targets and for sideways scrolling.

The server, its demo data and its admin account are test_admin_browser.py's (`litestar db
upgrade`, `litestar seed demo`, `litestar admin create`, `litestar run`); people register through
the public API, as the webinar page's form would. Browser, tab and layout checks are
test_browser.py's, at the same widths.

Without /usr/bin/chromium or axe-core these tests skip; with REQUIRE_BROWSER=1 (CI) they fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.web import test_admin_browser, test_browser
from tests.web.test_admin_browser import layout_problems, sign_in
from tests.web.test_browser import PHONE, VIEWPORTS, Tab, overflows_horizontally

if TYPE_CHECKING:
    # Annotations only: test_browser (imported above) skips the module when Playwright is missing.
    from playwright.sync_api import Page

JOIN = "https://meet.example/j/browser-room?pwd=hush"
CHICAGO = ZoneInfo("America/Chicago")

# The admin site (demo data and an admin account) and the browser, from the other browser tests.
site = test_admin_browser.site
browser = test_browser.browser
open_tab = test_browser.open_tab


def day_ahead(days: int) -> str:
    return (datetime.now(CHICAGO).date() + timedelta(days=days)).isoformat()


def h1(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text()


def register(site: str, session_id: int, name: str, email: str) -> str:
    response = httpx.post(
        f"{site}/api/sessions/{session_id}/registrations", json={"name": name, "email": email}, timeout=10
    )
    assert response.status_code == 201, response.text
    status: str = response.json()["status"]
    return status


def add_a_date(page: Page, days: int, seats: str = "2") -> int:
    """From a webinar's edit page: add a date at 6:30 PM Chicago time; returns the session id."""
    page.get_by_role("link", name="Add a date", exact=True).click()
    page.wait_for_url(re.compile(r"/sessions/new$"))
    assert h1(page) == "Add a date"
    page.get_by_label("Date").fill(day_ahead(days))
    page.get_by_label("Start time").fill("18:30")
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_label("Length in minutes").fill("45")
    page.get_by_label("Join link").fill(JOIN)
    page.get_by_label("Seats").fill(seats)
    page.get_by_role("button", name="Add this date").click()
    page.wait_for_url(re.compile(r"/admin/sessions/\d+\?done=created$"))
    return int(page.url.rsplit("/", 1)[1].split("?")[0])


# --- The journey the issue describes ------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_admin_adds_a_date_moves_it_after_confirming_and_sees_the_attendees(
    open_tab: Callable[..., Tab], site: str, viewport: dict[str, int]
) -> None:
    tab = open_tab(viewport)
    page = tab.page
    label = "phone" if viewport is PHONE else "desktop"
    sign_in(tab, "/admin/webinars")
    page.wait_for_url(re.compile(r"/admin/webinars$"))
    assert h1(page) == "Webinars"
    assert layout_problems(page) == {}

    first = page.locator("tbody tr").first
    title = first.locator("th a").inner_text()
    first.locator("th a").click()
    page.wait_for_url(re.compile(r"/admin/webinars/[a-z0-9-]+/edit$"))
    assert h1(page) == f"Edit \u201c{title}\u201d"
    sid = add_a_date(page, 40 if viewport is PHONE else 41)
    assert "Session added." in page.get_by_role("status").inner_text()
    assert "0 of 2 taken" in page.locator("main").inner_text()
    assert layout_problems(page) == {}

    people = [("Ann Lee", "ann"), ("Bob Roe", "bob"), ("Cleo Poe", "cleo")]
    statuses = [register(site, sid, name, f"{user}.{label}@example.com") for name, user in people]
    assert statuses == ["confirmed", "confirmed", "waitlisted"]

    # Move it a day later at 5 PM: the confirmation says who will be told, then it is saved.
    page.reload()
    page.get_by_label("Date").fill(day_ahead(42 if viewport is PHONE else 43))
    page.get_by_label("Start time").fill("17:00")
    page.get_by_role("button", name="Review the change").click()
    page.wait_for_url(re.compile(rf"/admin/sessions/{sid}/move$"))
    assert h1(page) == "Confirm the change"
    panel = page.locator(".confirm-panel").inner_text()
    assert "3 people will be told by e-mail." in panel
    assert "2 seat holders: an updated calendar invitation with the new time." in panel
    assert "5:00 PM" in page.locator("dl.summary").inner_text()
    assert layout_problems(page) == {}
    page.get_by_role("button", name="Save and tell 3 people").click()
    page.wait_for_url(re.compile(rf"/admin/sessions/{sid}\?done=moved&told=3$"))
    assert page.get_by_role("status").inner_text().startswith("Saved. 3 people are being e-mailed")
    assert page.get_by_label("Start time").input_value() == "17:00"
    public = httpx.get(f"{site}/api/webinars", timeout=10).json()
    [moved] = [s for w in public for s in w["sessions"] if s["id"] == sid]
    assert datetime.fromisoformat(moved["starts_at"]).strftime("%H:%M") == "17:00"

    # The attendee list: everyone, then the waitlist only.
    page.get_by_role("link", name="See attendees").click()
    page.wait_for_url(re.compile(rf"/admin/sessions/{sid}/attendees$"))
    assert h1(page) == "Attendees"
    rows = page.locator("tbody tr")
    assert [rows.nth(i).locator("th").inner_text() for i in range(rows.count())] == [n for n, _ in people]
    assert "Waitlist, number 1" in rows.nth(2).inner_text()
    assert layout_problems(page) == {}
    page.get_by_role("link", name=re.compile(r"^Waitlist")).click()
    page.wait_for_url(re.compile(r"\?status=waitlisted$"))
    assert page.locator("tbody tr").count() == 1
    assert page.get_by_role("link", name=re.compile(r"^Waitlist")).get_attribute("aria-current") == "page"
    assert tab.problems() == []


def test_webinar_admin_pages_work_without_javascript(open_tab: Callable[..., Tab], site: str) -> None:
    tab = open_tab(PHONE, javascript=False)
    page = tab.page
    sign_in(tab, "/admin/webinars")
    page.wait_for_url(re.compile(r"/admin/webinars$"))
    page.locator("tbody th a").nth(1).click()
    sid = add_a_date(page, 50, seats="5")
    register(site, sid, "Dee Fox", "dee.nojs@example.com")
    page.get_by_role("link", name="Cancel this session…").click()
    page.wait_for_url(re.compile(rf"/admin/sessions/{sid}/cancel$"))
    assert "1 person will be told by e-mail." in page.locator(".confirm-panel").inner_text()
    page.get_by_role("button", name="Cancel it and tell 1 person").click()
    page.wait_for_url(re.compile(rf"/admin/sessions/{sid}\?done=cancelled&told=1$"))
    assert "Session cancelled." in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="Review the change").count() == 0
    assert tab.problems() == []


# --- Every webinar admin page, both widths, and 320 px ------------------------------------------


def visit_every_page(tab: Tab, site: str, check: Callable[[str], None]) -> None:
    """Every webinar admin page in its states, calling `check(label)` on each."""
    page = tab.page
    for label, path in [
        ("webinars", "/admin/webinars"),
        ("new webinar", "/admin/webinars/new"),
        ("outbox", "/admin/outbox"),
        ("outbox, filtered", "/admin/outbox?status=failed"),
        ("unknown session", "/admin/sessions/987654"),
    ]:
        tab.go(path)
        check(label)
    tab.go("/admin/webinars/new")
    page.get_by_role("button", name="Add webinar").click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    check("new webinar, with errors")
    tab.go("/admin/webinars")
    page.locator("tbody th a").first.click()
    page.wait_for_load_state()
    check("edit webinar")
    page.get_by_role("link", name="Add a date", exact=True).click()
    page.wait_for_load_state()
    check("new date")
    page.get_by_role("button", name="Add this date").click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    check("new date, with errors")
    page.locator(".breadcrumb a").first.click()
    page.wait_for_load_state()
    manage = page.get_by_role("link", name=re.compile(r"^Manage")).first
    manage.click()
    page.wait_for_url(re.compile(r"/admin/sessions/\d+$"))
    sid = int(page.url.rsplit("/", 1)[1])
    check("session")
    width = page.viewport_size["width"] if page.viewport_size else 0
    register(site, sid, "Eve Axe", f"eve.{width}@example.com")
    page.get_by_label("Start time").fill("16:45")
    page.get_by_role("button", name="Review the change").click()
    page.wait_for_load_state()
    check("move confirmation")
    tab.go(f"/admin/sessions/{sid}/cancel")
    check("cancel confirmation")
    tab.go(f"/admin/sessions/{sid}/attendees")
    check("attendees")
    tab.go(f"/admin/outbox?session={sid}")
    check("outbox of a session")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_webinar_admin_page_passes_axe_with_big_targets_and_no_sideways_scrolling(
    open_tab: Callable[..., Tab], site: str, viewport: dict[str, int]
) -> None:
    tab = open_tab(viewport)
    page = tab.page
    sign_in(tab, "/admin/webinars")
    failures: dict[str, Any] = {}

    def check(label: str) -> None:
        found = layout_problems(page)
        if float(page.evaluate("getComputedStyle(document.body).fontSize")[:-2]) < 18:
            found["body text under 18px"] = True
        if found:
            failures[label] = found

    visit_every_page(tab, site, check)
    assert failures == {}
    assert tab.problems() == []


def test_webinar_admin_pages_reflow_at_320_px(open_tab: Callable[..., Tab], site: str) -> None:
    # WCAG 1.4.10: 320 CSS px is 1280 px zoomed to 400%.
    tab = open_tab({"width": 320, "height": 640})
    sign_in(tab, "/admin/webinars")
    wide: list[str] = []
    visit_every_page(
        tab, site, lambda label: wide.append(label) if overflows_horizontally(tab.page) else None
    )
    assert wide == []
