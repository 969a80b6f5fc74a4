"""The admin pages over HTTP, through the real app, as a browser without JavaScript uses them:
sign in and out, the provider list and form, status buttons, CSV import and export."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from httpx import Response
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlmodel import col, func, select

from accounts.guards import ANONYMOUS, SESSION_COOKIE
from accounts.models import AdminSession, AuditEntry
from accounts.pages import BAD_LOGIN, safe_next
from accounts.service import MAX_FAILURES_PER_ACCOUNT
from core.db import Database
from directory.models import Provider
from tests.factories import add_provider
from tests.web.html_doc import Element, parse

Client = AsyncTestClient[Litestar]


# --- helpers ------------------------------------------------------------------------------------


def form_data(form: Element) -> list[tuple[str, str]]:
    """What a browser would submit for this form as it stands (text, hidden, checked boxes, ...)."""
    data: list[tuple[str, str]] = []
    for el in form.iter():
        name = el.attrs.get("name")
        if not name:
            continue
        if el.tag == "input":
            kind = el.attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in el.attrs:
                    data.append((name, el.attrs.get("value", "on")))
            elif kind not in ("file", "submit", "button"):
                data.append((name, el.attrs.get("value", "")))
        elif el.tag == "textarea":
            data.append((name, "".join(c for c in el.children if isinstance(c, str))))
        elif el.tag == "select":
            chosen = [o for o in el.find_all("option") if "selected" in o.attrs] or el.find_all("option")[:1]
            data.append((name, chosen[0].attrs.get("value", chosen[0].text) if chosen else ""))
    return data


def replaced(data: list[tuple[str, str]], **changes: str | None) -> list[tuple[str, str]]:
    """`data` with fields set (None drops a field: an unticked checkbox)."""
    kept = [(k, v) for k, v in data if k not in changes]
    return kept + [(k, v) for k, v in changes.items() if v is not None]


async def submit(client: Client, url: str, pairs: list[tuple[str, str]], **kwargs: Any) -> Response:
    """POST a form's fields (repeated names, such as ticked conditions, included) urlencoded."""
    return await client.post(
        url,
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        **kwargs,
    )


async def page(client: Client, url: str, status: int = 200) -> Element:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


async def sign_in(client: Client, account: tuple[str, str], next_path: str = "") -> str:
    """Sign in through the form; returns the CSRF token the pages put in their forms."""
    email, password = account
    response = await client.post(
        "/admin/login", data={"email": email, "password": password, "next": next_path}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    doc = await page(client, "/admin")
    return doc.find("input", name="_csrf").attrs["value"]


def provider_row(db: Database, slug: str) -> Provider:
    with db.session() as session:
        found = session.exec(select(Provider).where(Provider.slug == slug)).one()
        session.expunge(found)
        return found


def audit_actions(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))).all())


async def public_names(client: Client) -> list[str]:
    response = await client.get("/api/providers", params={"per_page": 100})
    assert response.status_code == 200
    return [item["name"] for item in response.json()["items"]]


async def within_a_second(client: Client, check: Callable[[Client], Awaitable[bool]]) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while loop.time() < deadline:
        if await check(client):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def signed_in(client: Client, admin_account: tuple[str, str]) -> tuple[Client, str]:
    """(client with the admin's session cookie, the CSRF token for forms)."""
    return client, await sign_in(client, admin_account)


# --- signing in and out -------------------------------------------------------------------------


async def test_login_form_sets_a_hardened_session_cookie_and_goes_on(
    client: Client, admin_account: tuple[str, str]
) -> None:
    doc = await page(client, "/admin/login?next=/admin/providers")
    form = doc.find("form", action="/admin/login")
    assert form.attrs["method"] == "post"
    assert {label.attrs["for"]: label.text for label in form.find_all("label")} == {
        "email": "E-mail address",
        "password": "Password",
    }
    assert form.find("input", id="password").attrs["autocomplete"] == "current-password"
    assert form.find("input", name="next").attrs["value"] == "/admin/providers"

    email, password = admin_account
    response = await client.post(
        "/admin/login",
        data={"email": email.upper(), "password": password, "next": "/admin/providers"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/providers"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    # Plain http (tests/conftest.py's BASE_URL) has no Secure flag; https turns it on (accounts tests).
    assert "secure" not in flags
    doc = await page(client, "/admin/providers")
    assert doc.find("h1").text == "Providers"
    # The header now offers the admin menu and a sign-out button instead of the patient menu.
    assert doc.find("nav", aria_label="Admin").find("button").text == "Sign out"
    # Signed in, the sign-in page goes straight on.
    again = await client.get("/admin/login?next=/admin/providers/new", follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, "/admin/providers/new")


@pytest.mark.parametrize("email", ["admin@clinic.example", "nobody@clinic.example"])
async def test_wrong_password_or_unknown_email_get_the_same_generic_message(
    client: Client, admin_account: tuple[str, str], email: str
) -> None:
    response = await client.post(
        "/admin/login", data={"email": email, "password": "not the password"}, follow_redirects=False
    )
    assert response.status_code == 400
    assert "set-cookie" not in response.headers
    doc = parse(response.text)
    summary = doc.find(role="alert")
    assert summary.find("a").text == BAD_LOGIN
    assert summary.find("a").attrs["href"] == "#email"
    # The e-mail comes back as typed so it can be corrected; the password never does.
    assert doc.find("input", id="email").attrs["value"] == email
    assert doc.find("input", id="password").attrs["value"] == ""
    assert doc.find("input", id="email").attrs["aria-invalid"] == "true"
    assert doc.find("title").text.startswith("Error:")


async def test_empty_fields_are_named(client: Client, admin_account: tuple[str, str]) -> None:
    response = await client.post("/admin/login", data={"email": " ", "password": ""})
    assert response.status_code == 400
    links = [(a.attrs["href"], a.text) for a in parse(response.text).find(role="alert").find_all("a")]
    assert links == [("#email", "Enter your e-mail address."), ("#password", "Enter your password.")]


async def test_too_many_failures_say_wait_with_429(client: Client, admin_account: tuple[str, str]) -> None:
    email, password = admin_account
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        response = await client.post("/admin/login", data={"email": email, "password": "wrong password"})
        assert response.status_code == 400
    response = await client.post("/admin/login", data={"email": email, "password": password})
    assert response.status_code == 429
    assert 60 < int(response.headers["retry-after"]) <= 15 * 60
    message = parse(response.text).find(role="alert").find("a").text
    assert message.startswith("Too many failed sign-ins.")
    assert "minutes" in message
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("next_path", "lands_on"),
    [
        ("/admin/providers?q=ada&status=all", "/admin/providers?q=ada&status=all"),
        ("/admin/providers/new", "/admin/providers/new"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/\\evil.example", "/admin"),
        ("/providers", "/admin"),
        ("javascript:alert(1)", "/admin"),
        ("/admin\\@evil.example", "/admin"),
        ("/administrator", "/admin"),
        ("", "/admin"),
    ],
)
async def test_next_only_goes_to_admin_pages_on_this_site(
    client: Client, admin_account: tuple[str, str], next_path: str, lands_on: str
) -> None:
    assert safe_next(next_path) == lands_on
    email, password = admin_account
    response = await client.post(
        "/admin/login", data={"email": email, "password": password, "next": next_path}, follow_redirects=False
    )
    assert (response.status_code, response.headers["location"]) == (303, lands_on)


async def test_a_login_posted_from_another_site_is_refused(
    client: Client, admin_account: tuple[str, str]
) -> None:
    email, password = admin_account
    response = await client.post(
        "/admin/login",
        data={"email": email, "password": password},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    same_site = await client.post(
        "/admin/login",
        data={"email": email, "password": password},
        headers={"Origin": "http://testserver.local"},
        follow_redirects=False,
    )
    assert same_site.status_code == 303


async def test_sign_out_ends_the_session_on_the_server(signed_in: tuple[Client, str], db: Database) -> None:
    client, csrf = signed_in
    old_cookie = client.cookies.get(SESSION_COOKIE)
    assert old_cookie
    refused = await client.post("/admin/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    response = await client.post("/admin/logout", data={"_csrf": csrf}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?signed_out=true")
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"] or "max-age=0" in (
        response.headers["set-cookie"].lower()
    )
    with db.session() as session:
        assert session.exec(select(AdminSession)).all() == []
    doc = await page(client, "/admin/login?signed_out=true")
    assert doc.find(role="status").text == "You are signed out."
    # The old cookie opens nothing any more.
    client.cookies.set(SESSION_COOKIE, old_cookie, domain="testserver.local")
    again = await client.get("/admin/providers", follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, "/admin/login?next=%2Fadmin%2Fproviders")
    assert audit_actions(db)[-2:] == ["admin.login", "admin.logout"]


# --- the guard on every admin page --------------------------------------------------------------


SAMPLE_PATH = {
    "slug": "ada-lovelace",
    "action": "publish",
    "session_id": "1",
    "registration_id": "1",
    "message_id": "1",
}


def admin_pages(app: Litestar) -> list[tuple[str, str, bool]]:
    """(method, concrete URL, open to anonymous) for every route under /admin."""
    found: list[tuple[str, str, bool]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not (
            route.path == "/admin" or route.path.startswith("/admin/")
        ):
            continue
        url = route.path_format.format(**{name: SAMPLE_PATH.get(name, "x") for name in route.path_parameters})
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append((str(method), url, bool(handler.opt.get(ANONYMOUS))))
    return found


async def test_every_admin_page_sends_strangers_to_the_sign_in_page(
    app: Litestar, client: Client, db: Database
) -> None:
    add_provider(db, "Ada Lovelace", published=False)
    pages = admin_pages(app)
    urls = {(m, u) for m, u, _ in pages}
    for expected in [
        ("GET", "/admin"),
        ("GET", "/admin/providers"),
        ("GET", "/admin/providers/new"),
        ("POST", "/admin/providers/new"),
        ("GET", "/admin/providers/ada-lovelace/edit"),
        ("POST", "/admin/providers/ada-lovelace/edit"),
        ("POST", "/admin/providers/ada-lovelace/publish"),
        ("GET", "/admin/providers/import"),
        ("POST", "/admin/providers/import"),
        ("POST", "/admin/providers/import/apply"),
        ("GET", "/admin/providers/export.csv"),
        ("POST", "/admin/logout"),
    ]:
        assert expected in urls
    assert {(m, u) for m, u, anonymous in pages if anonymous} == {
        ("GET", "/admin/login"),
        ("POST", "/admin/login"),
    }
    for forged in (None, "forged-token"):
        client.cookies.clear()
        if forged:
            client.cookies.set(SESSION_COOKIE, forged, domain="testserver.local")
        for method, url, anonymous in pages:
            if anonymous:
                continue
            response = await client.request(method, url, data={"_csrf": "x"}, follow_redirects=False)
            assert response.status_code == 303, (method, url, response.status_code)
            target = urlsplit(response.headers["location"])
            assert target.path == "/admin/login"
            expected_next = url if method == "GET" and url != "/admin" else None
            assert parse_qs(target.query).get("next") == ([expected_next] if expected_next else None)
            assert "provider" not in response.text.lower()
    # Nothing happened on the way.
    assert provider_row(db, "ada-lovelace").published is False
    assert audit_actions(db) == []


async def test_changes_without_the_csrf_field_are_refused(
    app: Litestar, signed_in: tuple[Client, str], db: Database
) -> None:
    client, _ = signed_in
    add_provider(db, "Ada Lovelace", published=False)
    before = audit_actions(db)
    unsafe = [(m, u) for m, u, anonymous in admin_pages(app) if m == "POST" and not anonymous]
    assert len(unsafe) >= 6
    for method, url in unsafe:
        for data in ({}, {"_csrf": "forged"}):
            response = await client.request(
                method, url, data={**data, "name": "Changed"}, follow_redirects=False
            )
            assert response.status_code == 403, (method, url, response.text)
            doc = parse(response.text)
            assert doc.find("h1").text == "This form is out of date"
    assert provider_row(db, "ada-lovelace").published is False
    assert provider_row(db, "ada-lovelace").name == "Ada Lovelace"
    assert audit_actions(db) == before


async def test_every_admin_page_is_no_store(signed_in: tuple[Client, str], db: Database) -> None:
    client, _ = signed_in
    add_provider(db, "Ada Lovelace")
    for url in [
        "/admin",
        "/admin/login",
        "/admin/providers",
        "/admin/providers?q=ada&status=all",
        "/admin/providers/new",
        "/admin/providers/ada-lovelace/edit",
        "/admin/providers/import",
        "/admin/providers/export.csv",
        "/admin/providers/nobody/edit",
    ]:
        response = await client.get(url, follow_redirects=False)
        assert response.status_code in (200, 303, 404), url
        assert response.headers["cache-control"] == "no-store", url
        assert "default-src 'self'" in response.headers["content-security-policy"]


# --- providers: list, status, form ----------------------------------------------------------------


async def test_the_list_shows_state_and_review_and_filters(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, _ = signed_in
    add_provider(db, "Ada Lovelace", npi="1234567893")
    add_provider(db, "Bob Hidden", published=False)
    doc = await page(client, "/admin/providers")
    rows = {
        row.find("th").find("a").text: [cell.text for cell in row.find_all("td")]
        for row in doc.find("tbody").find_all("tr")
    }
    assert rows["Ada Lovelace, MD"][:3] == ["1234567893", "Published", "Never"]
    assert rows["Bob Hidden, MD"][1] == "Not published"
    assert doc.find("h2", id="count").text == "2 providers"
    # Each row's buttons are small POST forms with the CSRF token and a way back here.
    publish = doc.find("form", action="/admin/providers/bob-hidden/publish")
    assert publish.attrs["method"] == "post"
    assert publish.find("input", name="_csrf").attrs["value"]
    assert publish.find("button").text == "Publish Bob Hidden"

    doc = await page(client, "/admin/providers?status=unpublished")
    assert [a.text for a in doc.find("tbody").find_all("a") if a.attrs["href"].endswith("/edit")][:1] == [
        "Bob Hidden, MD"
    ]
    doc = await page(client, "/admin/providers?q=1234567893")
    assert doc.find("h2", id="count").text == "1 provider"
    doc = await page(client, "/admin/providers?q=nobody")
    assert doc.find("h2", id="count").text == "0 providers"
    await page(client, "/admin/providers?status=bogus", status=400)


async def test_status_buttons_publish_review_delete_and_restore(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, csrf = signed_in
    add_provider(db, "Bob Hidden", published=False)
    back = "/admin/providers?q=bob&status=active&page=1"

    async def press(action: str, back_to: str = back) -> str:
        response = await client.post(
            f"/admin/providers/bob-hidden/{action}",
            data={"_csrf": csrf, "back": back_to},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        return str(response.headers["location"])

    location = await press("publish")
    assert location == "/admin/providers?q=bob&status=active&page=1&done=publish&slug=bob-hidden"
    doc = await page(client, location)
    assert doc.find(role="status").text == "bob-hidden : Published: the provider is in public search."

    async def listed(c: Client) -> bool:
        return "Bob Hidden" in await public_names(c)

    async def unlisted(c: Client) -> bool:
        return "Bob Hidden" not in await public_names(c)

    assert await within_a_second(client, listed)
    await press("review")
    assert provider_row(db, "bob-hidden").last_reviewed == datetime.now(UTC).date()
    # A "back" to another site goes to the dashboard instead.
    assert (await press("unpublish", "https://evil.example/")).startswith("/admin?")
    assert await within_a_second(client, unlisted)
    doc = await page(client, await press("delete"))
    # The notice offers an undo.
    assert doc.find(role="status").find("form").attrs["action"] == "/admin/providers/bob-hidden/restore"
    assert provider_row(db, "bob-hidden").deleted_at is not None
    await press("restore")
    assert provider_row(db, "bob-hidden").deleted_at is None
    assert audit_actions(db)[-5:] == [
        "provider.publish",
        "provider.review",
        "provider.unpublish",
        "provider.delete",
        "provider.restore",
    ]
    response = await client.post("/admin/providers/bob-hidden/explode", data={"_csrf": csrf})
    assert response.status_code == 404
    response = await client.post("/admin/providers/nobody/publish", data={"_csrf": csrf})
    assert response.status_code == 404
    assert "No provider" in parse(response.text).find("p", class_="lead").text


async def test_an_edit_reaches_public_search_within_a_second(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, _ = signed_in
    add_provider(db, "Ada Lovelace", conditions=["tennis-elbow"], procedures=["PRP", "BMC"])
    doc = await page(client, "/admin/providers/ada-lovelace/edit")
    form = doc.find("form", id="provider-form")
    data = form_data(form)
    # The form shows the listing as stored.
    fields = dict(data)
    assert fields["name"] == "Ada Lovelace"
    assert fields["procedures"] == "PRP\nBMC"
    assert fields["loc-0-zip"] == "10001"
    assert ("conditions", "tennis-elbow") in data
    assert fields["accepting_new_patients"] == "true"
    # Conditions are checkboxes grouped by body region.
    legends = [fs.find("legend").text for fs in form.find_all("fieldset", class_="condition-group")]
    assert legends[:2] == ["Shoulder", "Neck (cervical spine)"]
    elbow = next(
        fs for fs in form.find_all("fieldset", class_="condition-group") if fs.find("legend").text == "Elbow"
    )
    assert "Lateral epicondylitis" in elbow.text

    changed = replaced(
        data,
        name="Ada King",
        accepting_new_patients=None,
        languages="English, Spanish",
        **{"loc-0-phone": "(646) 555-0199"},
    )
    changed.append(("conditions", "knee-osteoarthritis"))
    response = await submit(client, form.attrs["action"], changed, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/admin/providers/ada-lovelace/edit?done=saved",
    )

    async def renamed(c: Client) -> bool:
        found = await c.get("/api/providers", params={"condition": "knee-osteoarthritis"})
        items = found.json()["items"]
        return [(i["name"], i["accepting_new_patients"]) for i in items] == [("Ada King", False)]

    assert await within_a_second(client, renamed)
    doc = await page(client, "/admin/providers/ada-lovelace/edit?done=saved")
    assert doc.find(role="status").text == "Saved. Public search shows the change within a second."
    saved = dict(form_data(doc.find("form", id="provider-form")))
    assert (saved["name"], saved["languages"], saved["loc-0-phone"]) == (
        "Ada King",
        "English, Spanish",
        "(646) 555-0199",
    )
    assert "accepting_new_patients" not in saved
    with db.session() as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "provider.update")).one()
    assert entry.actor_email == "admin@clinic.example"
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["name"], entry.after["name"]) == ("Ada Lovelace", "Ada King")


async def test_form_errors_are_shown_beside_their_fields(signed_in: tuple[Client, str], db: Database) -> None:
    client, _ = signed_in
    add_provider(db, "Ada Lovelace", zips=("10001", "60611"))
    doc = await page(client, "/admin/providers/ada-lovelace/edit")
    form = doc.find("form", id="provider-form")
    bad = replaced(
        form_data(form),
        name="  ",
        npi="1234567890",
        **{"loc-1-zip": "99999", "loc-2-clinic_name": "New place"},
    )
    response = await submit(client, form.attrs["action"], bad)
    assert response.status_code == 400
    doc = parse(response.text)
    assert doc.find("title").text.startswith("Error:")
    summary = {a.attrs["href"]: a.text for a in doc.find(role="alert").find_all("a")}
    assert summary == {
        "#name": "A provider needs a name.",
        "#npi": "NPI '1234567890' is not valid: it must be 10 digits with a correct check digit.",
        "#loc-1-zip": summary["#loc-1-zip"],
        "#loc-2-zip": summary["#loc-2-zip"],
    }
    assert "99999" in summary["#loc-1-zip"]
    for field_id, message in summary.items():
        control = doc.find("input", id=field_id[1:])
        assert control.attrs["aria-invalid"] == "true"
        error_id = f"{field_id[1:]}-error"
        assert error_id in control.attrs["aria-describedby"].split()
        assert doc.find("p", id=error_id).text == f"Error: {message}"
    # Everything comes back as typed, nothing was saved, nothing audited.
    fields = dict(form_data(doc.find("form", id="provider-form")))
    assert (fields["npi"], fields["loc-1-zip"], fields["loc-2-clinic_name"]) == (
        "1234567890",
        "99999",
        "New place",
    )
    assert provider_row(db, "ada-lovelace").npi is None
    assert "provider.update" not in audit_actions(db)


async def test_too_long_text_is_an_inline_error_not_a_crash(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, _ = signed_in
    add_provider(db, "Ada Lovelace")
    form = (await page(client, "/admin/providers/ada-lovelace/edit")).find("form", id="provider-form")
    for changes, field_id, words in [
        ({"credentials": "M" * 61}, "credentials", "at most 60 characters"),
        ({"photo_url": "ftp://x.example/a.png"}, "photo_url", "https://"),
        ({"loc-0-state": "NYC"}, "loc-0-state", "at most 2 characters"),
    ]:
        response = await submit(client, form.attrs["action"], replaced(form_data(form), **changes))
        assert response.status_code == 400, changes
        link = parse(response.text).find(role="alert").find("a")
        assert link.attrs["href"] == f"#{field_id}"
        assert words in link.text


async def test_add_a_provider_then_remove_a_location(signed_in: tuple[Client, str], db: Database) -> None:
    client, _ = signed_in
    doc = await page(client, "/admin/providers/new")
    form = doc.find("form", id="provider-form")
    assert form.attrs["action"] == "/admin/providers/new"
    # An empty form with one location to fill in.
    empty = form_data(form)
    missing = await submit(client, form.attrs["action"], replaced(empty, name="Dr. Maria Gonzalez"))
    assert missing.status_code == 400
    assert {a.attrs["href"] for a in parse(missing.text).find(role="alert").find_all("a")} == {
        "#loc-0-clinic_name"
    }

    data = replaced(
        empty,
        name="Dr. Maria Gonzalez",
        credentials="MD",
        npi="1234567893",
        **{
            "loc-0-clinic_name": "Midtown Regenerative",
            "loc-0-address": "5 W 31st St",
            "loc-0-zip": "10001",
        },
    )
    data.append(("conditions", "tennis-elbow"))
    response = await submit(client, form.attrs["action"], data, follow_redirects=False)
    assert response.status_code == 303
    assert (
        response.headers["location"]
        == "/admin/providers/dr-maria-gonzalez/edit?done=created&slug=dr-maria-gonzalez"
    )
    created = provider_row(db, "dr-maria-gonzalez")
    assert (created.published, created.npi) == (False, "1234567893")
    doc = await page(client, response.headers["location"])
    assert "not in public search until you publish it" in doc.find(role="status").text
    form = doc.find("form", id="provider-form")
    # City and state came from the ZIP; a second, empty location group is offered.
    fields = dict(form_data(form))
    assert (fields["loc-0-city"], fields["loc-0-state"], fields["loc-1-clinic_name"]) == (
        "New York",
        "NY",
        "",
    )

    two = replaced(
        form_data(form), **{"loc-1-clinic_name": "Chicago", "loc-1-address": "1 Lake", "loc-1-zip": "60611"}
    )
    assert (await submit(client, form.attrs["action"], two, follow_redirects=False)).status_code == 303
    form = (await page(client, "/admin/providers/dr-maria-gonzalez/edit")).find("form", id="provider-form")
    drop_first = [*form_data(form), ("loc-0-remove", "true")]
    assert (await submit(client, form.attrs["action"], drop_first, follow_redirects=False)).status_code == 303
    fields = dict(
        form_data(
            (await page(client, "/admin/providers/dr-maria-gonzalez/edit")).find("form", id="provider-form")
        )
    )
    assert (fields["loc-0-clinic_name"], fields["loc-1-clinic_name"]) == ("Chicago", "")
    assert audit_actions(db)[-3:] == ["provider.create", "provider.update", "provider.update"]


async def test_a_deleted_provider_offers_restore_not_the_form(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, csrf = signed_in
    add_provider(db, "Ada Lovelace")
    await client.post("/admin/providers/ada-lovelace/delete", data={"_csrf": csrf})
    doc = await page(client, "/admin/providers/ada-lovelace/edit")
    assert doc.find_all("form", id="provider-form") == []
    assert doc.find("form", action="/admin/providers/ada-lovelace/restore")
    response = await client.post("/admin/providers/ada-lovelace/edit", data={"_csrf": csrf, "name": "X"})
    assert response.status_code == 400
    assert "restore it first" in parse(response.text).find(role="alert").text
    await page(client, "/admin/providers/nobody/edit", status=404)


async def test_dashboard_lists_latest_changes(signed_in: tuple[Client, str], db: Database) -> None:
    client, csrf = signed_in
    add_provider(db, "Ada Lovelace")
    await client.post("/admin/providers/ada-lovelace/review", data={"_csrf": csrf})
    doc = await page(client, "/admin")
    rows = [[td.text for td in tr.find_all("td")] for tr in doc.find("tbody").find_all("tr")]
    assert rows[0][1:] == ["admin@clinic.example", "provider.review", "provider ada-lovelace"]
    assert rows[1][2] == "admin.login"


# --- CSV import and export ----------------------------------------------------------------------


def sheet(*rows: dict[str, str]) -> bytes:
    """A CSV with the columns the rows use, in the order they first appear."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def count_providers(db: Database) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).select_from(Provider)).one())


async def upload(client: Client, csrf: str, raw: bytes, status: int = 200) -> Element:
    response = await client.post(
        "/admin/providers/import", data={"_csrf": csrf}, files={"file": ("providers.csv", raw, "text/csv")}
    )
    assert response.status_code == status, response.text
    return parse(response.text)


def report_rows(doc: Element) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_all() if cell.tag in ("td", "th")]
        for row in doc.find("tbody").find_all("tr")
    ]


async def test_csv_dry_run_writes_nothing_and_apply_writes_every_row(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, csrf = signed_in
    add_provider(db, "Ada Lovelace", conditions=["tennis-elbow"])
    raw = sheet(
        {
            "slug": "ada-lovelace",
            "name": "Ada King",
            "conditions": "tennis-elbow",
            "clinic_name": "Clinic 10001",
            "address": "1 Main St",
            "zip": "10001",
        },
        {
            "name": "Bo Knee",
            "npi": "1234567893",
            "conditions": "Knee osteoarthritis",
            "published": "yes",
            "clinic_name": "Loop",
            "address": "1 State St",
            "zip": "60611",
        },
        {
            "name": "Cy Hip",
            "conditions": "hip-arthritis",
            "clinic_name": "Back Bay",
            "address": "1 Main",
            "zip": "2116",
        },
    )
    doc = await upload(client, csrf, raw)
    assert doc.find("h1").text == "Check the import"
    assert (
        "Dry run, nothing written: 2 would be added, 1 updated, 0 unchanged." in doc.find(role="status").text
    )
    rows = report_rows(doc)
    assert [r[:3] for r in rows] == [
        ["2", "Ada King ada-lovelace", "Update"],
        ["3", "Bo Knee", "Add"],
        ["4", "Cy Hip", "Add"],
    ]
    assert rows[0][3] == "Changes: name"
    assert count_providers(db) == 1
    assert provider_row(db, "ada-lovelace").name == "Ada Lovelace"
    assert audit_actions(db) == ["admin.create", "admin.login"]

    apply = doc.find("form", action="/admin/providers/import/apply")
    assert apply.attrs["enctype"] == "multipart/form-data"
    data = dict(form_data(apply))
    assert base64.b64decode(data["content"]) == raw
    assert apply.find("button").text == "Apply: add 2, update 1"
    response = await client.post(apply.attrs["action"], files={k: (None, v) for k, v in data.items()})
    assert response.status_code == 200, response.text
    doc = parse(response.text)
    assert doc.find("h1").text == "Providers imported"
    assert "Imported: 2 added, 1 updated, 0 unchanged." in doc.find(role="status").text
    assert doc.find_all("form", action="/admin/providers/import/apply") == []
    assert count_providers(db) == 3
    assert provider_row(db, "ada-lovelace").name == "Ada King"
    assert provider_row(db, "bo-knee").published is True
    assert provider_row(db, "cy-hip").published is False
    assert audit_actions(db).count("provider.import") == 3

    async def bo_is_public(c: Client) -> bool:
        return "Bo Knee" in await public_names(c)

    assert await within_a_second(client, bo_is_public)


async def test_csv_rows_with_errors_are_reported_and_cannot_be_applied(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, csrf = signed_in
    raw = sheet(
        {"name": "Good One", "clinic_name": "A", "address": "1 Main", "zip": "10001"},
        {"name": "Bad Zip", "clinic_name": "B", "address": "2 Main", "zip": "00000"},
    )
    doc = await upload(client, csrf, raw)
    assert "1 of 2 rows have errors; nothing was written." in doc.find(role="status").text
    rows = report_rows(doc)
    assert rows[1][2] == "Error"
    assert rows[1][3] == "zip : ZIP code 00000 is not a US ZIP code we know."
    assert doc.find_all("form", action="/admin/providers/import/apply") == []
    assert count_providers(db) == 0


async def test_apply_is_all_or_nothing_when_the_data_changed_since_the_dry_run(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, csrf = signed_in
    raw = sheet(
        {"name": "First", "clinic_name": "A", "address": "1 Main", "zip": "10001"},
        {
            "slug": "second",
            "name": "Second",
            "npi": "1234567893",
            "clinic_name": "B",
            "address": "2 Main",
            "zip": "10001",
        },
    )
    apply = (await upload(client, csrf, raw)).find("form", action="/admin/providers/import/apply")
    # Meanwhile someone lists the NPI for another provider (by slug, so the row cannot match it).
    add_provider(db, "Someone Else", npi="1234567893")
    data = dict(form_data(apply))
    response = await client.post(apply.attrs["action"], files={k: (None, v) for k, v in data.items()})
    assert response.status_code == 400
    doc = parse(response.text)
    assert "nothing was written" in doc.find(role="status").text
    assert report_rows(doc)[1][3].startswith("npi : NPI 1234567893 is already listed")
    assert count_providers(db) == 1


@pytest.mark.parametrize(
    ("files", "words"),
    [
        (None, "Choose a CSV file to upload."),
        ({"file": ("x.csv", b"name,specialty\nAda,knees\n", "text/csv")}, "Unknown column(s): specialty"),
        ({"file": ("x.csv", b"name\n", "text/csv")}, "no providers"),
    ],
)
async def test_a_file_that_cannot_be_read_is_an_error_on_the_upload_field(
    signed_in: tuple[Client, str], files: dict[str, tuple[str, bytes, str]] | None, words: str
) -> None:
    client, csrf = signed_in
    response = await client.post(
        "/admin/providers/import", data={"_csrf": csrf}, files=files or {"file": ("", b"", "text/csv")}
    )
    assert response.status_code == 400
    doc = parse(response.text)
    link = doc.find(role="alert").find("a")
    assert (link.attrs["href"], words in link.text) == ("#file", True)
    assert doc.find("input", id="file").attrs["aria-invalid"] == "true"


async def test_a_tampered_apply_is_refused_without_writing(
    signed_in: tuple[Client, str], db: Database
) -> None:
    client, csrf = signed_in
    response = await client.post(
        "/admin/providers/import/apply", files={"_csrf": (None, csrf), "content": (None, "not base64!")}
    )
    assert response.status_code == 400
    assert "upload it again" in parse(response.text).find(role="alert").text
    assert count_providers(db) == 0


async def test_export_is_the_same_csv_as_the_api(signed_in: tuple[Client, str], db: Database) -> None:
    client, csrf = signed_in
    add_provider(db, "Ada Lovelace", npi="1234567893")
    add_provider(db, "Bob Hidden", published=False)
    response = await client.get("/admin/providers/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="providers-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["name"], r["npi"], r["published"]) for r in rows] == [
        ("Ada Lovelace", "1234567893", "yes"),
        ("Bob Hidden", "", "no"),
    ]
    api = await client.get("/api/admin/providers/export.csv", headers={"X-CSRF-Token": csrf})
    assert api.content == response.content
