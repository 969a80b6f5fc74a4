"""What the directory API speaks: msgspec Structs built from index documents."""

from __future__ import annotations

from datetime import date

import msgspec

from directory.geo import haversine_mi
from directory.search import LocationDoc, ProviderDoc, SearchHit
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
    locations: tuple[LocationOut, ...] | list[LocationOut]
    distance_mi: float | None
    # Why this provider is in the results, in words: "tennis elbow -> Lateral epicondylitis (M77.1-)".
    matched: list[str]
    disclaimer: str


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


def condition_out(slug: str) -> ConditionOut:
    c = CONDITION_BY_SLUG[slug]
    return ConditionOut(slug=c.slug, name=c.name, icd10=list(c.icd10), regions=list(c.regions))


def regions_out() -> list[RegionOut]:
    return [
        RegionOut(slug=r.slug, name=r.name, conditions=[condition_out(c.slug) for c in conditions_in(r.slug)])
        for r in REGIONS
    ]


def provider_item(
    base: ProviderItem, hit: SearchHit, matched: list[str], origin: tuple[float, float] | None
) -> ProviderItem:
    """A search hit: the provider's cached item with this search's distances and reasons."""
    if origin is None or hit.distance_mi is None:
        return msgspec.structs.replace(base, matched=matched)
    distance = round(hit.distance_mi, 2)
    if len(base.locations) == 1:
        # The index already measured the one location.
        locations = [msgspec.structs.replace(base.locations[0], distance_mi=distance)]
    else:
        locations = [
            msgspec.structs.replace(loc, distance_mi=round(haversine_mi(*origin, loc.lat, loc.lon), 2))
            for loc in base.locations
        ]
        locations.sort(key=lambda loc: loc.distance_mi or 0.0)
    return msgspec.structs.replace(base, locations=locations, distance_mi=distance, matched=matched)


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
