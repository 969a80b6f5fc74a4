"""The directory's pages over HTTP, through the real app: what a browser with JavaScript off gets."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from core.db import Database
from directory.pages import PRESENTER_WEBINARS, SearchForm, WebinarTeaser, provider_json_ld
from directory.schemas import provider_detail
from directory.search import SearchIndex
from directory.service import build_index
from directory.taxonomy import REGIONS
from tests.factories import add_provider
from tests.web.html_doc import Element, parse
from web.filters import long_date, miles_away, plural, tel_href, why_text
from web.pages import STATIC_DIR
from web.security import CONTENT_SECURITY_POLICY

Client = AsyncTestClient[Litestar]
NETWORK = "Test Clinic Network"  # tests/conftest.py settings

PROVIDERS: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("Alice Elbowman", ("10001",), {"conditions": ["tennis-elbow", "golfers-elbow"], "telehealth": True}),
    (
        "Bob Brooklyn",
        ("11201",),
        {"conditions": ["tennis-elbow", "knee-osteoarthritis"], "languages": ["English", "Spanish"]},
    ),
    (
        "Carla Jersey",
        ("07302", "10016"),
        {"conditions": ["knee-osteoarthritis", "meniscus-tear"], "accepting_new_patients": False},
    ),
    ("Dan Yonkers", ("10701",), {"conditions": ["tennis-elbow", "sciatica"]}),
    ("Gina Denver", ("80202",), {"conditions": ["tennis-elbow"]}),
    ("Hank Hidden", ("10001",), {"conditions": ["tennis-elbow"], "published": False}),
]


@pytest.fixture
async def site(db: Database, app: Litestar) -> AsyncIterator[Client]:
    for name, zips, extra in PROVIDERS:
        add_provider(db, name, zips, bio=f"{name} sees patients in New York.", **extra)
    async with AsyncTestClient(app=app) as client:
        yield client


async def page(client: Client, url: str, status: int = 200) -> Element:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def card_names(doc: Element) -> list[str]:
    return [card.find("h3").text for card in doc.find_all("li", class_="card")]


# --- Home -------------------------------------------------------------------------------------


async def test_home_asks_what_hurts_with_the_body_regions_and_a_zip(site: Client) -> None:
    doc = await page(site, "/")
    form = doc.find("form", action="/providers")
    assert form.attrs["method"] == "get"
    labels = {label.attrs["for"]: label.text for label in form.find_all("label")}
    assert labels == {"condition": "What hurts?", "near": "Your ZIP code"}
    assert form.find("input", id="condition").attrs["name"] == "condition"
    assert form.find("input", id="near").attrs["autocomplete"] == "postal-code"
    regions = [(b.attrs["value"], b.text) for b in form.find_all("button", name="region")]
    assert regions == [(r.slug, r.name) for r in REGIONS]
    # Enter in a text box submits with the form's first button: the search, not a body region.
    assert form.find_all("button")[0].text == "Find doctors"
    assert NETWORK in doc.find("header").text


async def test_a_region_button_searches_that_region_without_javascript(site: Client) -> None:
    # What the browser sends when "Elbow" is pressed with a ZIP typed in.
    doc = await page(site, "/providers?condition=&near=10001&region=elbow")
    assert doc.find("h1").text == "Doctors who treat the elbow near 10001"
    assert card_names(doc) == ["Alice Elbowman, MD", "Bob Brooklyn, MD", "Dan Yonkers, MD"]


# --- Results ----------------------------------------------------------------------------------


async def test_results_are_the_json_api_results_with_distance_why_and_disclaimer(site: Client) -> None:
    query = "condition=tenis+elbow&near=10001&radius=100"
    doc = await page(site, f"/providers?{query}")
    api = (await site.get(f"/api/providers?{query}&per_page=10")).json()
    assert card_names(doc) == [f"{item['name']}, MD" for item in api["items"]]
    assert card_names(doc)[0] == "Alice Elbowman, MD"
    assert "Gina Denver, MD" not in card_names(doc)
    assert "Hank Hidden, MD" not in card_names(doc)
    assert doc.find("h2", id="results-count").text == f"{api['total']} doctors found"
    assert doc.find("h1").text == "Doctors for \u201ctenis elbow\u201d near 10001"
    assert "tennis elbow: Lateral epicondylitis (M77.1-)" in doc.find(class_="interpreted").text
    cards = doc.find_all("li", class_="card")
    for card, item in zip(cards, api["items"], strict=True):
        assert card.find(class_="card__distance").text == miles_away(item["distance_mi"])
        assert card.find("p", class_="disclaimer").text == f"Please note: {item['disclaimer']}"
        assert NETWORK in item["disclaimer"]
        why = card.find(class_="why").text
        assert "Lateral epicondylitis" in why
        call = card.find("a", class_="button--call")
        assert call.attrs["href"] == tel_href(item["locations"][0]["phone"])
        assert call.attrs["href"].startswith("tel:+1")


async def test_filters_narrow_the_results_like_the_api(site: Client) -> None:
    base = "/providers?condition=tennis+elbow&near=10001&radius=100"
    assert "Carla Jersey, MD" in card_names(
        await page(site, "/providers?condition=knee+arthritis&near=10001")
    )
    accepting = card_names(await page(site, "/providers?condition=knee+arthritis&near=10001&accepting=true"))
    assert accepting == ["Bob Brooklyn, MD"]
    assert card_names(await page(site, f"{base}&telehealth=true")) == ["Alice Elbowman, MD"]
    spanish = await page(site, f"{base}&language=spanish")
    assert card_names(spanish) == ["Bob Brooklyn, MD"]
    # The choices stay as the patient set them, and the filter panel stays open to show them.
    assert spanish.find("option", value="spanish").attrs.get("selected") == ""
    assert "open" in spanish.find("details", class_="more-filters").attrs
    near = card_names(await page(site, "/providers?condition=tennis+elbow&near=10001&radius=10"))
    assert near == ["Alice Elbowman, MD", "Bob Brooklyn, MD"]


async def test_paging_shows_an_honest_total_and_walks_every_provider_once(
    db: Database, app: Litestar
) -> None:
    names = [f"Doctor {chr(65 + i)}{chr(65 + i)}" for i in range(13)]
    for name in names:
        add_provider(db, name, ("10001",))
    async with AsyncTestClient(app=app) as client:
        first = await page(client, "/providers?condition=tennis+elbow&near=10001")
        assert first.find("h2", id="results-count").text == "13 doctors found"
        assert "Showing 1 to 10 of 13, nearest first." in first.find(class_="results__range").text
        nav = first.find("nav", class_="pagination")
        assert "Page 1 of 2" in nav.text
        assert not nav.find_all("a", rel="prev")
        next_url = nav.find("a", rel="next").attrs["href"]
        assert parse_qs(urlsplit(next_url).query) == {
            "condition": ["tennis elbow"],
            "near": ["10001"],
            "page": ["2"],
        }
        second = await page(client, next_url)
        assert "Showing 11 to 13 of 13" in second.find(class_="results__range").text
        assert second.find("nav", class_="pagination").find("a", rel="prev").attrs["href"] == (
            "/providers?condition=tennis+elbow&near=10001"
        )
        seen = card_names(first) + card_names(second)
        assert sorted(seen) == sorted(f"{n}, MD" for n in names)
        beyond = await page(client, "/providers?condition=tennis+elbow&near=10001&page=9")
        assert card_names(beyond) == []
        assert "no more results after page 2" in beyond.find(class_="empty").text


async def test_empty_state_offers_a_wider_search_that_finds_someone(site: Client) -> None:
    # Denver's only provider is ~100 miles from Colorado Springs.
    doc = await page(site, "/providers?condition=tennis+elbow&near=80903&radius=25")
    assert doc.find("h2", id="results-count").text == "0 doctors found"
    empty = doc.find(class_="empty")
    assert "No one matches within 25 miles" in empty.text
    widen = empty.find("a", class_="button--primary")
    assert widen.text == "Search up to 100 miles away"
    wider = await page(site, widen.attrs["href"])
    assert card_names(wider) == ["Gina Denver, MD"]


async def test_words_we_do_not_recognise_get_plain_advice(site: Client) -> None:
    doc = await page(site, "/providers?condition=qwxzv&near=10001")
    assert "We did not recognise \u201cqwxzv\u201d as a condition" in doc.find(class_="empty").text
    assert doc.find(class_="empty").find("a", href="/").text == "Start a new search"


async def test_a_bad_zip_is_announced_next_to_the_field_and_keeps_what_was_typed(site: Client) -> None:
    response = await site.get("/providers?condition=tennis+elbow&near=1234")
    assert response.status_code == 400
    doc = parse(response.text)
    assert doc.find("title").text.startswith("Error: ")
    summary = doc.find(class_="error-summary")
    assert summary.attrs["role"] == "alert"
    assert summary.find("a").attrs["href"] == "#near"
    assert "five digits" in summary.text
    field = doc.find("input", id="near")
    assert field.attrs["aria-invalid"] == "true"
    assert "near-error" in field.attrs["aria-describedby"].split()
    assert "five digits" in doc.find(id="near-error").text
    assert field.attrs["value"] == "1234"
    assert doc.find("input", id="condition").attrs["value"] == "tennis elbow"


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/providers?region=tummy", 400, "body area"),
        ("/providers?radius=9999", 400, "radius"),
        ("/providers/nobody-by-this-name", 404, "not in the directory"),
        ("/providers/hank-hidden", 404, "not in the directory"),
    ],
)
async def test_page_errors_are_pages_in_plain_words(site: Client, url: str, status: int, words: str) -> None:
    doc = await page(site, url, status)
    assert words in doc.find("main").text
    assert doc.find("main").find("a", href="/").text == "Start a new search"


# --- Profile ----------------------------------------------------------------------------------


async def test_profile_has_tap_to_call_locations_conditions_and_the_disclaimer(site: Client) -> None:
    doc = await page(site, "/providers/carla-jersey")
    assert doc.find("h1").text == "Carla Jersey, MD"
    assert doc.find(class_="badge--no").text == "Not taking new patients"
    locations = doc.find_all("li", class_="location")
    assert [loc.find("h3").text for loc in locations] == ["Clinic 07302", "Clinic 10016"]
    for loc in locations:
        call = loc.find("a", class_="button--call")
        assert call.attrs["href"] == "tel:+12125550100"
        assert call.text == "Call (212) 555-0100"
    conditions = doc.find("section", **{"aria-labelledby": "conditions-title"})
    assert [h.text for h in conditions.find_all("h3")] == ["Knee"]
    assert [li.text for li in conditions.find_all("li")] == ["Knee meniscus tear", "Knee osteoarthritis"]
    disclaimer = doc.find("p", class_="disclaimer").text
    assert disclaimer.startswith("Please note: Providers listed in this directory are for informational")
    assert f"not a recommendation from {NETWORK}" in disclaimer
    # No webinars hook is installed, so no empty webinar section.
    assert not doc.find_all(id="webinars-title")


async def test_profile_json_ld_is_a_schema_org_physician(site: Client, app: Litestar) -> None:
    response = await site.get("/providers/carla-jersey")
    scripts = parse(response.text).find_all("script", type="application/ld+json")
    assert len(scripts) == 1
    data = json.loads(scripts[0].text)
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "Physician"
    assert data["name"] == "Carla Jersey, MD"
    assert data["url"] == f"{app.state.settings.base_url}/providers/carla-jersey"
    assert data["medicalSpecialty"] == "https://schema.org/Musculoskeletal"
    assert data["isAcceptingNewPatients"] is False
    assert [a["postalCode"] for a in data["address"]] == ["07302", "10016"]
    assert {a["@type"] for a in data["address"]} == {"PostalAddress"}
    assert all(a["addressCountry"] == "US" and a["addressRegion"] in {"NJ", "NY"} for a in data["address"])
    assert data["telephone"] == ["(212) 555-0100"]
    accepting = json.loads(
        parse((await site.get("/providers/alice-elbowman")).text)
        .find("script", type="application/ld+json")
        .text
    )
    assert accepting["isAcceptingNewPatients"] is True


async def test_json_ld_cannot_end_its_script_element(db: Database, app: Litestar) -> None:
    bio = 'Knees.</script><script>alert("x")</script><!--'
    add_provider(db, "Eve Sneaky", ("10001",), bio=bio)
    async with AsyncTestClient(app=app) as client:
        html = (await client.get("/providers/eve-sneaky")).text
    assert "<script>alert" not in html
    doc = parse(html)
    assert json.loads(doc.find("script", type="application/ld+json").text)["description"] == bio
    assert bio in doc.find("p", class_="lead").text


async def test_provider_json_ld_without_npi_or_bio_leaves_them_out(db: Database) -> None:
    add_provider(db, "Plain Doctor", ("10001",), npi=None, bio="", procedures=["Prolotherapy"])
    index: SearchIndex = build_index(db)
    doc = index.get("plain-doctor")
    assert doc is not None
    data = provider_json_ld(provider_detail(doc, "disclaimer"), "https://example.test/providers/plain-doctor")
    assert "usNPI" not in data
    assert "description" not in data
    assert data["availableService"] == [{"@type": "MedicalProcedure", "name": "Prolotherapy"}]


async def test_webinars_hook_lists_what_the_provider_presents(site: Client, app: Litestar) -> None:
    asked: list[str] = []

    def presenter_webinars(slug: str) -> Sequence[WebinarTeaser]:
        asked.append(slug)
        return [WebinarTeaser("Knee arthritis without surgery", "/webinars/knee", "Tuesday, March 3 at 6 PM")]

    app.state[PRESENTER_WEBINARS] = presenter_webinars
    doc = await page(site, "/providers/carla-jersey")
    assert asked == ["carla-jersey"]
    section = doc.find("section", **{"aria-labelledby": "webinars-title"})
    assert section.find("h2").text == "Free webinars with Carla Jersey"
    link = section.find("a", href="/webinars/knee")
    assert link.text == "Knee arthritis without surgery Tuesday, March 3 at 6 PM"


# --- Every page: headers, caching, nothing from anywhere else -----------------------------------

PAGES = [
    "/",
    "/providers?condition=tenis+elbow&near=10001",
    "/providers?condition=tennis+elbow&near=80903&radius=25",
    "/providers?near=1234",
    "/providers/alice-elbowman",
    "/providers/nobody",
]


@pytest.mark.parametrize(
    "url", [*PAGES, "/api/providers?near=10001", "/api/providers?near=1", "/static/site.css", "/no/such/path"]
)
async def test_security_headers_on_every_response(site: Client, url: str) -> None:
    response = await site.get(url)
    csp = response.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


async def test_public_pages_may_be_revalidated_everything_else_is_no_store(site: Client) -> None:
    for url in ["/", "/providers?near=10001", "/providers/alice-elbowman"]:
        assert (await site.get(url)).headers["cache-control"] == "no-cache, private"
    # Anything that did not say how it may be cached is not kept: errors, JSON, later pages.
    for url in ["/providers/nobody", "/api/providers/alice-elbowman", "/no/such/path"]:
        assert (await site.get(url)).headers["cache-control"] == "no-store"


async def test_static_files_are_fingerprinted_and_cached(site: Client) -> None:
    doc = await page(site, "/")
    stylesheet = doc.find("link", rel="stylesheet").attrs["href"]
    path, _, version = stylesheet.partition("?v=")
    assert path == "/static/site.css"
    assert version == hashlib.sha256((STATIC_DIR / "site.css").read_bytes()).hexdigest()[:12]
    response = await site.get(stylesheet)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "immutable" in response.headers["cache-control"]
    script = doc.find("script").attrs["src"]
    assert script.startswith("/static/site.js?v=")
    assert "javascript" in (await site.get(script)).headers["content-type"]


@pytest.mark.parametrize("url", PAGES)
async def test_no_third_party_urls_inline_script_or_inline_style(site: Client, url: str) -> None:
    html = (await site.get(url)).text
    doc = parse(html)
    for el in doc.iter():
        for name, value in el.attrs.items():
            assert not name.startswith("on"), f"inline handler {name} on <{el.tag}>"
            assert name != "style", f"inline style on <{el.tag}>"
            if name in {"src", "href", "action", "srcset", "poster", "data", "formaction", "data-suggest"}:
                assert value.startswith(("/", "#", "tel:")), f"<{el.tag} {name}={value!r}>"
                assert not value.startswith("//"), f"protocol-relative URL {value!r}"
    assert not doc.find_all("style")
    assert not doc.find_all("iframe")
    for script in doc.find_all("script"):
        assert "src" in script.attrs or script.attrs.get("type") == "application/ld+json"
    # The only absolute URLs are data (JSON-LD: schema.org names, our own address), never fetched.
    for found in re.findall(r"https?://[^\s\"'<>]+", html):
        assert found.startswith(("https://schema.org", "http://testserver.local/")), found


def test_static_files_reference_nothing_outside_the_site() -> None:
    css = (STATIC_DIR / "site.css").read_text()
    assert "@import" not in css
    assert not re.findall(r"url\(", css)
    js = (STATIC_DIR / "site.js").read_text()
    assert "http://" not in js
    assert "https://" not in js
    assert "eval(" not in js
    assert "innerHTML" not in js


# --- Pure parts ---------------------------------------------------------------------------------


def test_search_form_url_keeps_only_what_was_chosen() -> None:
    form = SearchForm(condition=" tennis elbow ", near="10001", accepting=True, language="spanish")
    assert form.url() == "/providers?condition=tennis+elbow&near=10001&accepting=true&language=spanish"
    assert form.url(page=3, radius=100) == (
        "/providers?condition=tennis+elbow&near=10001&radius=100&accepting=true&language=spanish&page=3"
    )
    assert SearchForm().url() == "/providers"
    assert SearchForm(region="knee", telehealth=True).filtered
    assert not SearchForm(region="knee").filtered


@pytest.mark.parametrize(
    ("distance", "text"),
    [
        (None, ""),
        (0.01, "less than 0.1 miles away"),
        (0.96, "1 mile away"),
        (1.04, "1 mile away"),
        (3.24, "3.2 miles away"),
        (9.96, "10 miles away"),
        (12.6, "13 miles away"),
    ],
)
def test_miles_away(distance: float | None, text: str) -> None:
    assert miles_away(distance) == text


@pytest.mark.parametrize(
    ("phone", "href"),
    [
        ("(212) 555-0100", "tel:+12125550100"),
        ("212.555.0100", "tel:+12125550100"),
        ("+1 212 555 0100", "tel:+12125550100"),
        ("", ""),
    ],
)
def test_tel_href_is_e164(phone: str, href: str) -> None:
    assert tel_href(phone) == href


def test_small_text_filters() -> None:
    assert (
        why_text("tennis elbow -> Lateral epicondylitis (M77.1-)")
        == "tennis elbow: Lateral epicondylitis (M77.1-)"
    )
    assert long_date(date(2026, 3, 1)) == "March 1, 2026"
    assert long_date(None) == ""
    assert plural(1, "doctor", "doctors") == "1 doctor"
    assert plural(0, "doctor", "doctors") == "0 doctors"
