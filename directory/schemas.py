"""What the directory API speaks: msgspec Structs built from index documents."""

from __future__ import annotations

from datetime import date

import msgspec

from directory.geo import haversine_mi
from directory.search import ProviderDoc, SearchHit
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


class LocationOut(msgspec.Struct, kw_only=True):
    clinic_name: str
    address: str
    city: str
    state: str
    zip: str
    phone: str
    lat: float
    lon: float
    distance_mi: float | None = None


class ProviderItem(msgspec.Struct, kw_only=True):
    slug: str
    url: str
    name: str
    credentials: str
    photo_url: str | None
    accepting_new_patients: bool
    telehealth: bool
    languages: list[str]
    procedures: list[str]
    regions: list[str]
    conditions: list[str]
    locations: list[LocationOut]
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


def _locations(doc: ProviderDoc, origin: tuple[float, float] | None) -> list[LocationOut]:
    out = [
        LocationOut(
            clinic_name=loc.clinic_name,
            address=loc.address,
            city=loc.city,
            state=loc.state,
            zip=loc.zip,
            phone=loc.phone,
            lat=loc.lat,
            lon=loc.lon,
            distance_mi=None if origin is None else round(haversine_mi(*origin, loc.lat, loc.lon), 2),
        )
        for loc in doc.locations
    ]
    if origin is not None:
        out.sort(key=lambda loc: loc.distance_mi or 0.0)
    return out


def provider_item(
    hit: SearchHit, disclaimer: str, matched: list[str], origin: tuple[float, float] | None
) -> ProviderItem:
    doc = hit.doc
    return ProviderItem(
        slug=doc.slug,
        url=f"/api/providers/{doc.slug}",
        name=doc.name,
        credentials=doc.credentials,
        photo_url=doc.photo_url,
        accepting_new_patients=doc.accepting_new_patients,
        telehealth=doc.telehealth,
        languages=list(doc.languages),
        procedures=list(doc.procedures),
        regions=list(doc.regions),
        conditions=list(doc.conditions),
        locations=_locations(doc, origin),
        distance_mi=None if hit.distance_mi is None else round(hit.distance_mi, 2),
        matched=matched,
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
        languages=list(doc.languages),
        procedures=list(doc.procedures),
        regions=list(doc.regions),
        conditions=list(doc.conditions),
        locations=_locations(doc, None),
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
