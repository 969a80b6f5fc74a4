"""`GET /api/providers` and friends, through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import select

from core.db import Database
from directory.geo import lookup_zip
from directory.models import Provider
from directory.service import mark_changed
from tests.factories import add_provider

Client = AsyncTestClient[Litestar]

# Clinics around Manhattan at known distances, plus one far away (Denver) and one unpublished.
NYC = "10001"
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
    ("Dan Yonkers", ("10701",), {"conditions": ["tennis-elbow", "sciatica"], "regions": ["hip"]}),
    ("Eve Newark", ("07102",), {"conditions": ["sciatica", "lumbar-disc-herniation"]}),
    ("Frank Stamford", ("06901",), {"conditions": ["tennis-elbow"], "telehealth": True}),
    ("Gina Denver", ("80202",), {"conditions": ["tennis-elbow"]}),
    ("Hank Hidden", ("10001",), {"conditions": ["tennis-elbow"], "published": False}),
]


@pytest.fixture
async def seeded(db: Database, app: Litestar) -> AsyncIterator[AsyncTestClientWithDb]:
    for name, zips, extra in PROVIDERS:
        add_provider(db, name, zips, **extra)
    async with AsyncTestClient(app=app) as client:
        yield AsyncTestClientWithDb(client, db)


class AsyncTestClientWithDb:
    def __init__(self, client: Client, db: Database) -> None:
        self.client, self.db = client, db

    async def get(self, url: str, **params: Any) -> Any:
        response = await self.client.get(url, params=params)
        assert response.status_code == 200, response.text
        return response.json()


async def test_near_sorted_within_radius_and_distances_match_haversine(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", condition="tennis-elbow", near=NYC, radius=30)
    names = [item["name"] for item in body["items"]]
    assert "Gina Denver" not in names
    assert "Hank Hidden" not in names
    assert names[0] == "Alice Elbowman"
    origin = lookup_zip(NYC)
    distances = [item["distance_mi"] for item in body["items"]]
    assert distances == sorted(distances)
    for item in body["items"]:
        assert item["distance_mi"] <= 30
        reference = min(
            haversine_reference(origin.lat, origin.lon, loc["lat"], loc["lon"]) for loc in item["locations"]
        )
        assert abs(item["distance_mi"] - reference) <= 0.1
    assert body["total"] == len(body["items"]) == 3
    assert sorted(names) == ["Alice Elbowman", "Bob Brooklyn", "Dan Yonkers"]  # Stamford is 33 mi away


def haversine_reference(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """An independent haversine (mean Earth radius 3958.8 mi) to check the index against."""
    from math import asin, cos, radians, sin, sqrt

    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * 3958.8 * asin(sqrt(a))


async def test_nearest_location_of_a_multi_clinic_provider_counts(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", condition="knee arthritis", near="10016", radius=5)
    (carla,) = [i for i in body["items"] if i["name"] == "Carla Jersey"]
    assert carla["locations"][0]["zip"] == "10016"
    assert carla["distance_mi"] < 1


async def test_free_text_condition_says_why(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", condition="tenis elbow", near=NYC)
    assert body["interpreted_as"] == ["tennis elbow -> Lateral epicondylitis (M77.1-)"]
    for item in body["items"]:
        assert "tennis elbow -> Lateral epicondylitis (M77.1-)" in item["matched"]
        assert any(reason.endswith(f"from ZIP {NYC}") for reason in item["matched"])


async def test_disclaimer_on_every_provider_in_every_response(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", per_page=100)
    assert "Test Clinic Network" in body["disclaimer"]
    assert body["items"]
    for item in body["items"]:
        assert item["disclaimer"] == body["disclaimer"]
        detail = await seeded.get(f"/api/providers/{item['slug']}")
        assert detail["disclaimer"] == body["disclaimer"]
        assert "informational purposes only" in detail["disclaimer"]


async def test_unpublished_never_shown(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", per_page=100)
    assert "Hank Hidden" not in [i["name"] for i in body["items"]]
    response = await seeded.client.get("/api/providers/hank-hidden")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"near": NYC, "radius": 40},
        {"near": NYC, "radius": 40, "telehealth": "true"},
        {"accepting": "true"},
        {"language": "spanish"},
        {"condition": "tennis-elbow"},
        {"region": "knee"},
        {"condition": "sciatica", "near": "07102", "radius": 25},
    ],
)
async def test_facet_counts_equal_filtered_totals(
    seeded: AsyncTestClientWithDb, filters: dict[str, Any]
) -> None:
    body = await seeded.get("/api/providers", **filters)
    assert body["facets"]["condition"]
    assert body["facets"]["region"]
    for slug, count in body["facets"]["condition"].items():
        narrowed = await seeded.get("/api/providers", **{**filters, "condition": slug})
        assert narrowed["total"] == count, (slug, filters)
    for slug, count in body["facets"]["region"].items():
        narrowed = await seeded.get("/api/providers", **{**filters, "region": slug})
        assert narrowed["total"] == count, (slug, filters)


async def test_region_includes_regions_of_conditions_and_named_regions(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", region="hip")
    assert [i["name"] for i in body["items"]] == ["Dan Yonkers"]
    body = await seeded.get("/api/providers", region="elbow", per_page=100)
    assert body["total"] == 5


@pytest.mark.parametrize("per_page", [1, 2, 3])
async def test_paging_walk_yields_each_match_once(seeded: AsyncTestClientWithDb, per_page: int) -> None:
    for filters in ({}, {"near": NYC, "radius": 500}):
        first = await seeded.get("/api/providers", per_page=per_page, **filters)
        seen: list[str] = []
        page = 1
        while True:
            body = await seeded.get("/api/providers", per_page=per_page, page=page, **filters)
            assert body["total"] == first["total"]
            if not body["items"]:
                break
            seen += [i["slug"] for i in body["items"]]
            page += 1
        assert len(seen) == len(set(seen)) == first["total"] == (6 if filters else 7)


async def test_filters(seeded: AsyncTestClientWithDb) -> None:
    def names(body: dict[str, Any]) -> list[str]:
        return sorted(i["name"] for i in body["items"])

    assert names(await seeded.get("/api/providers", telehealth="true")) == [
        "Alice Elbowman",
        "Frank Stamford",
    ]
    assert "Carla Jersey" not in names(await seeded.get("/api/providers", accepting="true"))
    assert names(await seeded.get("/api/providers", language="Spanish")) == ["Bob Brooklyn"]
    assert names(await seeded.get("/api/providers", q="brook")) == ["Bob Brooklyn"]


async def test_nothing_matches_gives_suggestions_not_errors(seeded: AsyncTestClientWithDb) -> None:
    body = await seeded.get("/api/providers", condition="tennis-elbow", near="80120", radius=5)
    assert body["total"] == 0
    assert body["items"] == []
    wider = body["suggestions"]["radius"]
    assert wider == 25
    assert (await seeded.get("/api/providers", condition="tennis-elbow", near="80120", radius=wider))[
        "total"
    ] == 1
    body = await seeded.get("/api/providers", condition="sciatica", near="80202", radius=10)
    assert body["suggestions"]["radius"] is None
    assert "500 miles" in body["suggestions"]["message"]
    body = await seeded.get("/api/providers", condition="zzzz qqqq")
    assert body["total"] == 0
    assert "did not recognise" in body["suggestions"]["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"near": "1234"}, "near"),
        ({"near": "00000"}, "near"),
        ({"near": "abcde"}, "near"),
        ({"near": NYC, "radius": 0}, "radius"),
        ({"near": NYC, "radius": 501}, "radius"),
        ({"near": NYC, "radius": "far"}, "radius"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": 0}, "per_page"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"accepting": "maybe"}, "accepting"),
        ({"region": "brain"}, "region"),
        ({"condition": "x" * 201}, "condition"),
    ],
)
async def test_bad_input_gets_400_that_names_the_field(
    seeded: AsyncTestClientWithDb, params: dict[str, Any], field: str
) -> None:
    response = await seeded.client.get("/api/providers", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400
    assert body["detail"]
    assert field in response.text


async def test_regions_and_conditions_endpoints(seeded: AsyncTestClientWithDb) -> None:
    regions = await seeded.get("/api/regions")
    assert [r["slug"] for r in regions] == [
        "shoulder",
        "cervical-spine",
        "lower-spine",
        "knee",
        "hand-wrist",
        "elbow",
        "hip",
        "foot-ankle",
    ]
    knee = next(r for r in regions if r["slug"] == "knee")
    assert {
        "slug": "acl-tear",
        "name": "Knee ACL tear",
        "icd10": ["S83.51-", "M23.61-"],
        "regions": ["knee"],
    } in knee["conditions"]
    found = await seeded.get("/api/conditions", q="pinched nerve in my neck")
    assert found["items"][0]["slug"] == "cervical-pinched-nerve"
    assert found["items"][0]["why"].startswith("pinched nerve neck -> ")


async def test_changes_reach_search_within_a_second(seeded: AsyncTestClientWithDb) -> None:
    add_provider(seeded.db, "Iris Newcomer", (NYC,), conditions=["tennis-elbow"])
    assert await _eventually_listed(seeded, "Iris Newcomer")
    with seeded.db.write() as session:
        provider = session.exec(select(Provider).where(Provider.name == "Alice Elbowman")).one()
        provider.published = False
        mark_changed(session, provider)
    assert await _eventually_listed(seeded, "Alice Elbowman", listed=False)


async def _eventually_listed(seeded: AsyncTestClientWithDb, name: str, listed: bool = True) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while loop.time() < deadline:
        body = await seeded.get("/api/providers", per_page=100)
        if (name in [i["name"] for i in body["items"]]) == listed:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "params",
    [
        {"condition": "tenis elbow", "near": NYC, "radius": 40},
        {"near": "10016", "radius": 5},
        {"region": "knee", "q": "a", "per_page": 2, "page": 2},
        {"condition": "arthritis"},
        {"condition": "zzzz qqqq"},
        {"condition": "tennis-elbow", "near": "80120", "radius": 5},
    ],
)
async def test_api_json_equals_the_pages_structs(
    seeded: AsyncTestClientWithDb, params: dict[str, Any]
) -> None:
    """The API's pre-encoded fast path says exactly what the Struct path the pages use says."""
    import msgspec

    from directory.service import ProviderSearch, search_providers

    app = seeded.client.app
    page = search_providers(app.state.directory.index, ProviderSearch(**params), app.state.disclaimer)
    assert await seeded.get("/api/providers", **params) == msgspec.json.decode(msgspec.json.encode(page))
