"""Regenerate docs/screenshots/*.png: each main page at a phone and a desktop width.

    .venv/bin/python -m scripts.screenshots

Runs the real app on a fresh demo database (scripts/demo_server.py) and photographs it with
Debian's Chromium; the demo seed is deterministic, so unchanged pages give the same pictures.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

from accounts.service import create_admin
from core.db import Database
from scripts.demo_server import CHROMIUM, CHROMIUM_ARGS, ROOT, demo_server

OUT = ROOT / "docs" / "screenshots"
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
RESULTS = "/providers?condition=tenis+elbow&near=10016&radius=250"
# The visitor's own zone, for the "Your time" line of webinar dates (web/static/booking.js).
VISITOR_ZONE = "America/Chicago"
# The demo server's admin, for the admin pages (a throwaway database on loopback).
ADMIN_EMAIL = "admin@orthodex.example"
ADMIN_PASSWORD = "demo admin passphrase"  # noqa: S105
# Full pages, but a long results list is cut to what a reader of the README needs.
MAX_HEIGHT = 2600


def shoot(page: Page, path: Path) -> None:
    height = min(MAX_HEIGHT, int(page.evaluate("document.documentElement.scrollHeight")))
    width = int(page.evaluate("window.innerWidth"))
    page.screenshot(path=path, full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    print(f"wrote {path.relative_to(ROOT)}")


def shoot_webinars(page: Page, base_url: str, label: str) -> None:
    """The webinar list, one webinar with its registration form, and a registrant's manage page."""
    page.goto(base_url + "/webinars")
    shoot(page, OUT / f"webinars-{label}.png")
    page.locator("li.webinar-card .card__name a").first.click()
    page.wait_for_load_state()
    shoot(page, OUT / f"webinar-{label}.png")
    page.locator("input[name=session]").first.check()
    page.get_by_label("Your name").fill("Maria Lopez")
    page.get_by_label("Your e-mail address").fill(f"maria.lopez.{label}@example.com")
    page.get_by_role("button", name="Register").click()
    page.get_by_role("link", name="Manage my registration").click()
    page.wait_for_load_state()
    shoot(page, OUT / f"manage-{label}.png")


def add_admin(workdir: Path) -> None:
    db = Database(f"sqlite:///{workdir / 'orthodex.db'}")
    try:
        create_admin(db, ADMIN_EMAIL, ADMIN_PASSWORD)
    finally:
        db.dispose()


def shoot_admin(page: Page, base_url: str, label: str) -> None:
    """The admin's provider list and a provider's edit form (signing in first)."""
    page.goto(base_url + "/admin/providers")
    page.get_by_label("E-mail address").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base_url + "/admin/providers")
    shoot(page, OUT / f"admin-providers-{label}.png")
    page.locator("tbody th a").first.click()
    page.wait_for_load_state()
    shoot(page, OUT / f"admin-edit-{label}.png")


# Registrants for the admin's attendee list (fictional; example.com addresses).
ATTENDEES = (
    ("Ruth Alvarez", "ruth.alvarez@example.com"),
    ("James O'Neil", "james.oneil@example.com"),
    ("Linh Tran", "linh.tran@example.com"),
    ("Walter Brooks", "walter.brooks@example.com"),
    ("Grace Kim", "grace.kim@example.com"),
)


def add_attendees(base_url: str) -> int:
    """Fill the first webinar's first date (where Maria registered) to a waitlist; its session id.

    Runs after the public pages are photographed, so their seat counts stay as seeded.
    """
    with httpx.Client(base_url=base_url, timeout=10) as client:
        session_id: int = client.get("/api/webinars").json()[0]["sessions"][0]["id"]
        login = client.post("/api/admin/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        taken = client.get(
            f"/api/admin/sessions/{session_id}", headers={"X-CSRF-Token": login.json()["csrf_token"]}
        ).json()["seats_taken"]
        client.patch(
            f"/api/admin/sessions/{session_id}",
            json={"capacity": taken + len(ATTENDEES) - 2},
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        ).raise_for_status()
        for name, email in ATTENDEES:
            client.post(
                f"/api/sessions/{session_id}/registrations", json={"name": name, "email": email}
            ).raise_for_status()
    return session_id


def shoot_attendees(browser: Browser, base_url: str, session_id: int) -> None:
    """The admin's attendee list of a session (confirmed, then the waitlist), at each width."""
    for label, viewport in WIDTHS.items():
        phone = label == "phone"
        context = browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            device_scale_factor=1,
            is_mobile=phone,
            has_touch=phone,
        )
        page = context.new_page()
        page.goto(f"{base_url}/admin/sessions/{session_id}/attendees")
        page.get_by_label("E-mail address").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base_url}/admin/sessions/{session_id}/attendees")
        shoot(page, OUT / f"admin-attendees-{label}.png")
        context.close()


def main() -> None:
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as workdir,
        demo_server(Path(workdir)) as base_url,
        sync_playwright() as playwright,
    ):
        add_admin(Path(workdir))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for label, viewport in WIDTHS.items():
                phone = label == "phone"
                context = browser.new_context(
                    viewport=viewport,  # type: ignore[arg-type]
                    device_scale_factor=1,
                    is_mobile=phone,
                    has_touch=phone,
                    timezone_id=VISITOR_ZONE,
                )
                page = context.new_page()
                page.goto(base_url + "/")
                # Show the suggestions a patient sees while typing.
                page.get_by_label("What hurts?").press_sequentially("tenis elbow", delay=30)
                page.get_by_role("listbox", name="Suggestions").wait_for()
                shoot(page, OUT / f"home-{label}.png")
                page.goto(base_url + RESULTS)
                shoot(page, OUT / f"results-{label}.png")
                page.locator("li.card .card__name a").first.click()
                page.wait_for_load_state()
                shoot(page, OUT / f"profile-{label}.png")
                shoot_webinars(page, base_url, label)
                shoot_admin(page, base_url, label)
                context.close()
            shoot_attendees(browser, base_url, add_attendees(base_url))
        finally:
            browser.close()


if __name__ == "__main__":
    main()
