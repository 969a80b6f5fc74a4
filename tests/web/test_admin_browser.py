"""Admins' journeys in a real browser (Debian's Chromium via Playwright) against the real server.

The server is the app as deployed (`litestar db upgrade`, `litestar seed demo`, `litestar run` on a
temporary SQLite file); the admin account is made the way an operator makes one, with
`litestar admin create EMAIL` typing the password twice. Browser, tab, axe-core and layout checks
are test_browser.py's, at the same widths.

Without /usr/bin/chromium or axe-core these tests skip; with REQUIRE_BROWSER=1 (CI) they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from scripts.demo_server import CHROMIUM, ROOT, demo_server
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
    from playwright.sync_api import Page

EMAIL = "office@clinic.example"
PASSWORD = "a long clinic passphrase"

# test_browser's fixtures (one Chromium; tabs that note foreign requests and console errors), here
# run against this module's `site`.
browser = test_browser.browser
open_tab = test_browser.open_tab


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    if not AXE.exists():
        _unavailable(f"{AXE} is missing: npm install --prefix tests/js")
    workdir = tmp_path_factory.mktemp("admin-site")
    with demo_server(workdir) as base_url:
        create_admin_with_the_cli(workdir / "orthodex.db")
        yield base_url


def create_admin_with_the_cli(database: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    done = subprocess.run(
        [sys.executable, "-m", "litestar", "--app", "app:create_app", "admin", "create", EMAIL],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        # No terminal: the hidden password prompt reads the piped stdin.
        start_new_session=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def sign_in(tab: Tab, start: str = "/admin") -> None:
    page = tab.page
    tab.go(start)
    page.wait_for_url(re.compile(r"/admin/login"))
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/admin/login" not in url)


def layout_problems(page: Page) -> dict[str, Any]:
    problems = {
        "axe": axe_violations(page),
        "small targets": small_targets(page),
        "sideways scrolling": overflows_horizontally(page),
    }
    return {k: v for k, v in problems.items() if v}


# --- The journey the issue describes ------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_admin_signs_in_edits_a_provider_and_public_search_shows_it_within_a_second(
    open_tab: Callable[..., Tab], viewport: dict[str, int]
) -> None:
    tab = open_tab(viewport)
    page = tab.page
    tab.go("/admin/providers")
    # Signed out, the admin pages lead to the sign-in form, and back after it.
    page.wait_for_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fproviders$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in to manage the site"
    assert layout_problems(page) == {}
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().endswith("E-mail or password is not correct.")
    assert page.evaluate("document.activeElement.hasAttribute('data-error-summary')")
    assert layout_problems(page) == {}
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/providers$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Providers"
    assert layout_problems(page) == {}

    # A published provider's edit page.
    row = page.locator("tbody tr").filter(has=page.locator(".badge--yes", has_text="Published")).first
    row.locator("th a").click()
    page.wait_for_url(re.compile(r"/admin/providers/[a-z0-9-]+/edit$"))
    slug = page.url.rsplit("/", 2)[-2]
    assert layout_problems(page) == {}
    zip_code = page.get_by_label("ZIP code").first.input_value()
    condition = page.locator("input[name=conditions]:checked").first.get_attribute("value")
    new_name = f"Dr. Renamed Onthe {'Phone' if viewport is PHONE else 'Desktop'}"
    page.get_by_label("Name", exact=True).fill(new_name)
    accepting = page.get_by_label("Accepting new patients")
    was_accepting = accepting.is_checked()
    accepting.set_checked(not was_accepting)
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(r"\?done=saved$"))
    saved_at = time.monotonic()
    assert "Saved." in page.get_by_role("status").inner_text()

    # Public search for what this provider treats, near their clinic.
    search = f"/providers?condition={condition}&near={zip_code}&radius=10"
    badge = "Taking new patients" if not was_accepting else "Not taking new patients"
    seen_after = None
    while time.monotonic() - saved_at < 5:
        tab.go(search)
        card = page.locator("li.card").filter(has=page.locator(f'a[href="/providers/{slug}"]')).first
        if card.count() and new_name in card.locator(".card__name").inner_text():
            seen_after = time.monotonic() - saved_at
            assert badge in card.locator(".badges").inner_text()
            break
        time.sleep(0.05)
    assert seen_after is not None, "public search did not show the edit within 5 s"
    assert seen_after <= 1.0, f"public search showed the edit after {seen_after:.2f} s"
    assert tab.problems() == []


# --- Every admin page, both widths --------------------------------------------------------------

CSV = (
    "name,npi,conditions,published,clinic_name,address,zip\n"
    "Dr. Imported Person,,Tennis elbow,no,Loop Clinic,1 State St,60611\n"
    "Dr. Bad Zip,,knee-osteoarthritis,no,Nowhere,1 Main,00000\n"
)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_admin_page_passes_axe_with_big_targets_and_no_sideways_scrolling(
    open_tab: Callable[..., Tab], viewport: dict[str, int], tmp_path: Path
) -> None:
    tab = open_tab(viewport)
    page = tab.page
    sign_in(tab)
    failures: dict[str, Any] = {}

    def check(label: str) -> None:
        found = layout_problems(page)
        if float(page.evaluate("getComputedStyle(document.body).fontSize")[:-2]) < 18:
            found["body text under 18px"] = True
        if found:
            failures[label] = found

    check("dashboard")
    for label, path in [
        ("providers", "/admin/providers"),
        ("providers, searched", "/admin/providers?q=zzz&status=all"),
        ("new provider", "/admin/providers/new"),
        ("import", "/admin/providers/import"),
        ("unknown provider", "/admin/providers/nobody-by-this-name/edit"),
    ]:
        tab.go(path)
        check(label)
    tab.go("/admin/providers/new")
    page.get_by_role("button", name="Add provider").click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    check("new provider, with errors")
    tab.go("/admin/providers")
    page.locator("tbody th a").first.click()
    page.wait_for_load_state()
    check("edit provider")
    tab.go("/admin/providers/import")
    sheet = tmp_path / "providers.csv"
    sheet.write_text(CSV)
    page.get_by_label("CSV file").set_input_files(str(sheet))
    page.get_by_role("button", name="Check the file").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == "Check the import"
    check("import dry run with errors")
    tab.go("/admin/login")  # signed in: straight on to the dashboard
    assert page.url.endswith("/admin")
    assert failures == {}
    assert tab.problems() == []


def test_csv_import_dry_run_then_apply(open_tab: Callable[..., Tab], tmp_path: Path) -> None:
    tab = open_tab(DESKTOP)
    page = tab.page
    sign_in(tab, "/admin/providers/import")
    page.wait_for_url(re.compile(r"/admin/providers/import$"))
    sheet = tmp_path / "providers.csv"
    sheet.write_text(CSV.splitlines()[0] + "\n" + CSV.splitlines()[1] + "\n")
    page.get_by_label("CSV file").set_input_files(str(sheet))
    page.get_by_role("button", name="Check the file").click()
    page.wait_for_load_state()
    assert "Dry run, nothing written: 1 would be added" in page.get_by_role("status").inner_text()
    rows = page.locator("tbody tr")
    assert rows.count() == 1
    assert "Add" in rows.first.inner_text()
    page.get_by_role("button", name="Apply: add 1, update 0").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == "Providers imported"
    assert "Imported: 1 added" in page.get_by_role("status").inner_text()
    tab.go("/admin/providers?q=imported+person")
    assert page.locator("tbody tr").count() == 1
    assert "Not published" in page.locator("tbody tr").first.inner_text()
    assert tab.problems() == []


def test_admin_pages_work_without_javascript(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab(PHONE, javascript=False)
    page = tab.page
    sign_in(tab, "/admin/providers?status=published")
    page.wait_for_url(re.compile(r"/admin/providers\?status=published$"))
    first = page.locator("tbody tr").first
    name = first.locator("th a").inner_text()
    first.get_by_role("button", name=re.compile(r"^Unpublish ")).click()
    page.wait_for_url(re.compile(r"done=unpublish"))
    assert "no longer in public search" in page.get_by_role("status").inner_text()
    # Back on the same filtered list, which no longer has the provider.
    assert name not in page.locator("tbody").inner_text()
    tab.go("/admin/providers?status=unpublished&q=" + name.split(",")[0].replace(" ", "+"))
    page.locator("tbody tr").first.get_by_role("button", name=re.compile(r"^Publish ")).click()
    page.wait_for_url(re.compile(r"done=publish"))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/admin/login\?signed_out=true$"))
    assert page.get_by_role("status").inner_text() == "You are signed out."
    tab.go("/admin")
    page.wait_for_url(re.compile(r"/admin/login$"))
    assert tab.problems() == []
