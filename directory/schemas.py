"""What the directory API speaks: msgspec Structs built from index documents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from math import acos
from typing import NamedTuple

import msgspec

from directory.geo import EARTH_RADIUS_MI
from directory.search import LocationDoc, ProviderDoc, SearchHit, unit_vector
from directory.taxonomy import CONDITION_BY_SLUG, REGION_BY_SLUG, REGIONS, conditions_in

DISCLAIMER = (
    "Providers listed in this directory are for informational purposes only and are not a "
    "recommendation from {network} for a specific provider or a guarantee of the outcome of any "
    "treatment you receive."
)


def disclaimer_for(network_name: str) -> str:
    return DISCLAIMER.format(network=network_name)


class ConditionOut(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    icd10: list[str]
    regions: list[str]


class RegionOut(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    conditions: list[ConditionOut]


class ConditionMatchOut(ConditionOut, kw_only=True):
    score: float
    why: str


class ConditionSearch(msgspec.Struct, kw_only=True):
    query: str
    items: list[ConditionMatchOut]


LocationOut = LocationDoc


class ProviderItem(msgspec.Struct, kw_only=True):
    slug: str
    url: str
    name: str
    credentials: str
    photo_url: str | None
    accepting_new_patients: bool
    telehealth: bool
    languages: tuple[str, ...]
    procedures: tuple[str, ...]
    regions: tuple[str, ...]
    conditions: tuple[str, ...]
    disclaimer: str
    # The per-search fields come last: `EncodedItem` pre-encodes everything before them.
    locations: tuple[LocationOut, ...] | list[LocationOut]
    distance_mi: float | None
    # Why this provider is in the results, in words: "tennis elbow -> Lateral epicondylitis (M77.1-)".
    matched: list[str]


class ProviderDetail(ProviderItem, kw_only=True):
    npi: str | None
    bio: str
    last_reviewed: date | None
    conditions_treated: list[ConditionOut]


class Facets(msgspec.Struct, kw_only=True):
    region: dict[str, int]
    condition: dict[str, int]


class Suggestions(msgspec.Struct, kw_only=True):
    # A radius that would find someone, when the one asked for found no one.
    radius: int | None = None
    conditions: list[ConditionOut] = msgspec.field(default_factory=list)
    message: str = ""


class ProviderPage(msgspec.Struct, kw_only=True):
    items: list[ProviderItem]
    total: int
    page: int
    per_page: int
    facets: Facets
    disclaimer: str
    # The conditions a free-text `condition` was read as, with why.
    interpreted_as: list[str] = msgspec.field(default_factory=list)
    suggestions: Suggestions | None = None


class ProviderPageJSON(msgspec.Struct, kw_only=True):
    """`ProviderPage` with its items already encoded; the same JSON, field for field."""

    # The items, already a JSON list.
    items: msgspec.Raw
    total: int
    page: int
    per_page: int
    facets: Facets
    disclaimer: str
    interpreted_as: list[str] = msgspec.field(default_factory=list)
    suggestions: Suggestions | None = None


def condition_out(slug: str) -> ConditionOut:
    c = CONDITION_BY_SLUG[slug]
    return ConditionOut(slug=c.slug, name=c.name, icd10=list(c.icd10), regions=list(c.regions))


def regions_out() -> list[RegionOut]:
    return [
        RegionOut(slug=r.slug, name=r.name, conditions=[condition_out(c.slug) for c in conditions_in(r.slug)])
        for r in REGIONS
    ]


Vector = tuple[float, float, float]


def location_distances(
    locations: Sequence[Vector], nearest: float | None, origin: Vector | None
) -> list[tuple[float | None, int]]:
    """(miles from the search's ZIP or None, index into the locations), nearest first.

    `locations` are unit vectors and `nearest` is the index's distance to the closest of them.
    """
    if origin is None or nearest is None:
        return [(None, i) for i in range(len(locations))]
    if len(locations) == 1:
        # The index already measured the one location.
        return [(round(nearest, 2), 0)]
    # Measured as the index measures (SearchIndex.search), inlined: this runs for every
    # multi-clinic item of every search. Sorting positions by distance is stable: ties keep order.
    ox, oy, oz = origin
    miles = [round(EARTH_RADIUS_MI * acos(min(1.0, x * ox + y * oy + z * oz)), 2) for x, y, z in locations]
    return [(miles[i], i) for i in sorted(range(len(miles)), key=miles.__getitem__)]


def provider_item(hit: SearchHit, disclaimer: str, matched: list[str], origin: Vector | None) -> ProviderItem:
    """A search hit as a Struct (for pages), with this search's distances and reasons."""
    all_locations = hit.doc.locations
    vectors = [unit_vector(loc.lat, loc.lon) for loc in all_locations]
    locations = [
        all_locations[i]
        if distance is None
        else msgspec.structs.replace(all_locations[i], distance_mi=distance)
        for distance, i in location_distances(vectors, hit.distance_mi, origin)
    ]
    distance = None if hit.distance_mi is None else round(hit.distance_mi, 2)
    return msgspec.structs.replace(
        base_item(hit.doc, disclaimer), locations=locations, distance_mi=distance, matched=matched
    )


_ENCODER = msgspec.json.Encoder()
_LOCATIONS_KEY = b',"locations":'


class EncodedItem(NamedTuple):
    """A provider's search item as JSON, cut where the per-search fields go.

    Built once per provider when the index loads it. A search then joins a few byte strings per
    item instead of building and encoding a dozen objects scattered through memory, which at
    100,000 providers is what a search otherwise spends most of its time on (cache misses).
    """

    head: bytes
    # Each location's JSON up to its distance value: b'{...,"distance_mi":'.
    location_heads: tuple[bytes, ...]
    # Each location as a unit vector, to measure from a search's ZIP without touching the document.
    location_vectors: tuple[Vector, ...]
    # For a provider with one clinic (most of them): everything up to that clinic's distance.
    one_clinic_head: bytes | None


def encode_item(doc: ProviderDoc, disclaimer: str) -> EncodedItem:
    body = _ENCODER.encode(base_item(doc, disclaimer))
    head = body[: body.index(_LOCATIONS_KEY)]
    location_heads = tuple(_ENCODER.encode(loc)[: -len(b"null}")] for loc in doc.locations)
    vectors = tuple(unit_vector(loc.lat, loc.lon) for loc in doc.locations)
    one_clinic = head + _LOCATIONS_KEY + b"[" + location_heads[0] if len(location_heads) == 1 else None
    return EncodedItem(head, location_heads, vectors, one_clinic)


def item_json(encoded: EncodedItem, nearest: float | None, matched: bytes, origin: Vector | None) -> bytes:
    """The same JSON `provider_item` would encode to, from the pre-encoded parts.

    `matched` is the item's reasons, already encoded as a JSON list.
    """
    # repr() of a float is JSON for every finite value, and a distance is finite.
    distance = b"null" if nearest is None else b"%a" % round(nearest, 2)
    if encoded.one_clinic_head is not None:
        # The index already measured the one clinic.
        return b'%s%s}],"distance_mi":%s,"matched":%s}' % (
            encoded.one_clinic_head,
            distance,
            distance,
            matched,
        )
    heads = encoded.location_heads
    locations = b",".join(
        b"%s%s}" % (heads[i], b"null" if d is None else b"%a" % d)
        for d, i in location_distances(encoded.location_vectors, nearest, origin)
    )
    return b'%s%s[%s],"distance_mi":%s,"matched":%s}' % (
        encoded.head,
        _LOCATIONS_KEY,
        locations,
        distance,
        matched,
    )


def base_item(doc: ProviderDoc, disclaimer: str) -> ProviderItem:
    """The parts of a provider's search item that do not depend on the search."""
    return ProviderItem(
        slug=doc.slug,
        url=f"/api/providers/{doc.slug}",
        name=doc.name,
        credentials=doc.credentials,
        photo_url=doc.photo_url,
        accepting_new_patients=doc.accepting_new_patients,
        telehealth=doc.telehealth,
        # Shared with the index document, not copied: neither side mutates them.
        languages=doc.languages,
        procedures=doc.procedures,
        regions=doc.regions,
        conditions=doc.conditions,
        locations=doc.locations,
        distance_mi=None,
        matched=[],
        disclaimer=disclaimer,
    )


def provider_detail(doc: ProviderDoc, disclaimer: str) -> ProviderDetail:
    return ProviderDetail(
        slug=doc.slug,
        url=f"/api/providers/{doc.slug}",
        name=doc.name,
        credentials=doc.credentials,
        photo_url=doc.photo_url,
        accepting_new_patients=doc.accepting_new_patients,
        telehealth=doc.telehealth,
        languages=doc.languages,
        procedures=doc.procedures,
        regions=doc.regions,
        conditions=doc.conditions,
        locations=doc.locations,
        distance_mi=None,
        matched=[],
        disclaimer=disclaimer,
        npi=doc.npi,
        bio=doc.bio,
        last_reviewed=doc.last_reviewed,
        conditions_treated=[condition_out(s) for s in doc.conditions if s in CONDITION_BY_SLUG],
    )


def region_name(slug: str) -> str:
    return REGION_BY_SLUG[slug].name
