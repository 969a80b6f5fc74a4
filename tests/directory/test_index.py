"""The search index on its own: the compiled radius scan against a plain haversine, edge cases."""

from __future__ import annotations

import random

import pytest

from directory.geo import haversine_mi
from directory.search import LocationDoc, ProviderDoc, SearchIndex, SearchQuery
from directory.taxonomy import CONDITIONS


def doc(
    pid: int, places: list[tuple[float, float]], conditions: tuple[str, ...] = ("acl-tear",)
) -> ProviderDoc:
    return ProviderDoc(
        id=pid,
        slug=f"p-{pid}",
        name=f"Provider {pid}",
        credentials="MD",
        npi=None,
        bio="",
        photo_url=None,
        languages=("English",),
        procedures=(),
        accepting_new_patients=pid % 2 == 0,
        telehealth=pid % 3 == 0,
        last_reviewed=None,
        conditions=conditions,
        regions=("knee",),
        locations=tuple(
            LocationDoc(
                clinic_name="C",
                address="1 Main St",
                city="X",
                state="AK",
                zip="99546",
                phone="",
                lat=lat,
                lon=lon,
            )
            for lat, lon in places
        ),
        listed=True,
        revision=pid,
    )


def nearest(index: SearchIndex, lat: float, lon: float, radius: float) -> dict[int, float]:
    """Every provider the index finds, walking all pages, with its distance."""
    found: dict[int, float] = {}
    page = 1
    while True:
        result = index.search(SearchQuery(near=(lat, lon), radius_mi=radius, page=page, per_page=100))
        for position, miles in zip(result.positions, result.distances, strict=True):
            found_doc = index.docs[position]
            assert found_doc is not None
            assert miles is not None
            assert found_doc.id not in found
            found[found_doc.id] = miles
        if page * 100 >= result.total:
            assert len(found) == result.total
            return found
        page += 1


def brute_force(docs: list[ProviderDoc], lat: float, lon: float, radius: float) -> dict[int, float]:
    found = {}
    for d in docs:
        miles = min(haversine_mi(lat, lon, loc.lat, loc.lon) for loc in d.locations)
        if miles <= radius:
            found[d.id] = miles
    return found


def test_a_radius_across_the_antimeridian_finds_both_sides() -> None:
    # The Aleutians straddle 180 degrees: Adak is at -176.6, Attu at 172.9.
    docs = [doc(1, [(52.0, 179.8)]), doc(2, [(52.0, -179.8)]), doc(3, [(52.0, 170.0)])]
    index = SearchIndex(docs)
    assert set(nearest(index, 52.0, 179.95, 50)) == {1, 2}
    assert set(nearest(index, 52.0, -179.95, 50)) == {1, 2}


POINTS = [(40.7, -74.0), (39.7, -105.0), (47.6, -122.3), (29.8, -95.4)]


@pytest.mark.parametrize("radius", [2, 25, 120, 500])
def test_the_scan_agrees_with_a_haversine_over_every_provider(radius: float) -> None:
    rng = random.Random(radius)
    # Spread over the country, plus crowds around the search points (one and thirty miles out).
    places = [lambda: (rng.uniform(25, 49), rng.uniform(-124, -67))] * 6 + [
        lambda spread=spread, lat=lat, lon=lon: (
            lat + rng.uniform(-spread, spread),
            lon + rng.uniform(-spread, spread),
        )
        for lat, lon in POINTS
        for spread in (0.02, 0.5)
    ]
    docs = [
        doc(
            i, [rng.choice(places)() for _ in range(rng.choice((1, 1, 2, 3)))], (rng.choice(CONDITIONS).slug,)
        )
        for i in range(1, 2001)
    ]
    # Half the providers arrive after the first build: they sit in the unsorted delta store.
    index = SearchIndex(docs[:1000])
    index.apply(docs[1000:])
    for lat, lon in [(40.7, -74.0), (39.7, -105.0), (47.6, -122.3), (29.8, -95.4)]:
        found = nearest(index, lat, lon, radius)
        expected = brute_force(docs, lat, lon, radius)
        # A provider right on the edge may fall either side of it by rounding.
        edge = {pid for pid, miles in expected.items() if abs(miles - radius) < 1e-6}
        assert expected, "the sample should put someone in every radius"
        assert set(found) ^ set(expected) <= edge
        for pid, miles in found.items():
            assert miles == pytest.approx(expected.get(pid, radius), abs=0.01)
        assert list(found.values()) == sorted(found.values())


def test_an_unlisted_provider_leaves_the_scan_and_a_relisted_one_returns() -> None:
    docs = [doc(1, [(40.7, -74.0)]), doc(2, [(40.71, -74.01), (41.0, -73.9)])]
    index = SearchIndex(docs)
    assert set(nearest(index, 40.7, -74.0, 10)) == {1, 2}
    index.apply([ProviderDoc(**{**{f: getattr(docs[1], f) for f in docs[1].__slots__}, "listed": False})])
    assert set(nearest(index, 40.7, -74.0, 10)) == {1}
    index.apply([docs[1]])
    index.compact()
    assert set(nearest(index, 40.7, -74.0, 10)) == {1, 2}
