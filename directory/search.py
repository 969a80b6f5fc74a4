"""The in-memory search index each worker keeps of the published directory.

Search must answer in well under a millisecond at 100,000 providers, so it runs on numpy arrays
instead of SQL: locations sit in quarter-degree cells, a query reads only the cells its radius
touches, and each provider's conditions, regions and flags are bits of one word to filter and count
(facets) in compiled loops (`kernels.py`). The index is
a cache of the database with bounded staleness: `DirectoryRefresher` (in `service.py`) applies rows
whose revision is newer than the index's, so an edit made on any worker shows on every worker within
a refresh period.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from directory import kernels
from directory.geo import EARTH_RADIUS_MI
from directory.taxonomy import CONDITIONS, REGION_BY_SLUG, REGIONS

CELL_DEG = 0.25
CONDITION_REGIONS = {c.slug: c.regions for c in CONDITIONS}
CONDITION_SLUGS = [c.slug for c in CONDITIONS]
REGION_SLUGS = [r.slug for r in REGIONS]

# What search filters and counts on, packed into one 64-bit word per provider: a bit per
# condition, then a bit per region, then accepting and telehealth. Eight bytes instead of ~200
# per provider is what keeps a search's reads in cache at 100,000 providers.
CONDITION_BIT = {slug: 1 << i for i, slug in enumerate(CONDITION_SLUGS)}
REGION_SHIFT = len(CONDITION_SLUGS)
REGION_BIT = {slug: 1 << (REGION_SHIFT + i) for i, slug in enumerate(REGION_SLUGS)}
ACCEPTING_BIT = 1 << (REGION_SHIFT + len(REGION_SLUGS))
TELEHEALTH_BIT = ACCEPTING_BIT << 1
FACET_BITS = REGION_SHIFT + len(REGION_SLUGS)
assert TELEHEALTH_BIT < 1 << 64, "the taxonomy outgrew one 64-bit word per provider"

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
FlagArray = npt.NDArray[np.uint64]


class LocationDoc(msgspec.Struct, frozen=True, kw_only=True):
    """A clinic location; also what the API shows (`distance_mi` filled in per search)."""

    clinic_name: str
    address: str
    city: str
    state: str
    zip: str
    phone: str
    lat: float
    lon: float
    distance_mi: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderDoc:
    """What the index and the public API know of one provider."""

    id: int
    slug: str
    name: str
    credentials: str
    npi: str | None
    bio: str
    photo_url: str | None
    languages: tuple[str, ...]
    procedures: tuple[str, ...]
    accepting_new_patients: bool
    telehealth: bool
    last_reviewed: date | None
    conditions: tuple[str, ...]
    # Regions treated: the ones named on the listing plus those of its conditions.
    regions: tuple[str, ...]
    locations: tuple[LocationDoc, ...]
    listed: bool
    revision: int


@dataclass(frozen=True, slots=True)
class SearchQuery:
    conditions: tuple[str, ...] = ()
    region: str | None = None
    text: str | None = None
    near: tuple[float, float] | None = None
    radius_mi: float = 50.0
    accepting: bool | None = None
    telehealth: bool | None = None
    language: str | None = None
    page: int = 1
    per_page: int = 20


@dataclass(slots=True)
class SearchHit:
    position: int
    doc: ProviderDoc
    distance_mi: float | None


@dataclass(slots=True)
class SearchResult:
    """One page of matches as index positions (nearest or alphabetical first), with the facets."""

    total: int
    positions: list[int] = field(default_factory=list)
    # Miles to each position's nearest location; None without `near`.
    distances: list[float | None] = field(default_factory=list)
    region_counts: dict[str, int] = field(default_factory=dict)
    condition_counts: dict[str, int] = field(default_factory=dict)


def _grow(array: npt.NDArray[np.generic], capacity: int) -> npt.NDArray[np.generic]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def _flags(doc: ProviderDoc) -> int:
    flags = 0
    for slug in doc.conditions:
        flags |= CONDITION_BIT.get(slug, 0)
    for slug in doc.regions:
        flags |= REGION_BIT.get(slug, 0)
    if doc.accepting_new_patients:
        flags |= ACCEPTING_BIT
    if doc.telehealth:
        flags |= TELEHEALTH_BIT
    return flags


def _cell_key(lat: float, lon: float) -> int:
    # The scan kernel finds cells by the same keys.
    key: int = kernels.cell_key(lat, lon, CELL_DEG)
    return key


def _place_key(doc: ProviderDoc) -> int:
    if not doc.locations:
        return 0
    first = doc.locations[0]
    return _cell_key(first.lat, first.lon)


class SearchIndex:
    """Providers by position; positions are never reused while the index lives.

    Locations live in two stores. The main store is sorted by cell (`CELL_DEG`), so the cells of a
    latitude row that a radius touches are one contiguous slice (no gather). Locations added since
    the last compaction sit in a small unsorted delta store that every near query scans whole;
    when it grows past a share of the main store, both are merged and sorted again. Each location
    carries a copy of its provider's flag word, so a near query filters and counts facets from the
    slices it already reads instead of gathering rows scattered over the whole directory.
    """

    def __init__(
        self,
        docs: Iterable[ProviderDoc] = (),
        revision: int = 0,
        derive: Callable[[ProviderDoc], Any] | None = None,
    ) -> None:
        self.revision = revision
        self._derive = derive
        self.docs: list[ProviderDoc | None] = []
        self.lower_names: list[str] = []
        self.position: dict[int, int] = {}
        self.by_slug: dict[str, int] = {}
        cap = 1024
        self.listed: BoolArray = np.zeros(cap, dtype=bool)
        self.flags: FlagArray = np.zeros(cap, dtype=np.uint64)
        self.language: dict[str, BoolArray] = {}
        self.provider_ids: IntArray = np.zeros(cap, dtype=np.int64)
        # Per-position scratch for the radius scan; all -1 between queries.
        self._slot: IntArray = np.full(cap, -1, dtype=np.int64)
        # Main location store, sorted by cell key; ids 0..len-1.
        self.main_xyz: FloatArray = np.zeros((0, 3))
        self.main_provider: IntArray = np.zeros(0, dtype=np.int64)
        self.main_flags: FlagArray = np.zeros(0, dtype=np.uint64)
        self.main_alive: BoolArray = np.zeros(0, dtype=bool)
        self.main_key: IntArray = np.zeros(0, dtype=np.int64)
        # Delta store, unsorted; ids len(main)..; Python lists until the next query needs arrays.
        self._delta: list[tuple[tuple[float, float, float], int, int, int]] = []
        self._delta_alive: list[bool] = []
        self._delta_arrays: tuple[FloatArray, BoolArray, IntArray, FlagArray] | None = None
        self.provider_locs: dict[int, list[int]] = {}
        self._name_order: IntArray | None = None
        # What callers derive from a document (its API item), by position: made by `derive` when a
        # document arrives, so a search only copies it; None while the position is not listed.
        self.derived: list[Any] = []
        # Neighbours get neighbouring positions: a radius query then reads per-position data
        # (scratch, ids, documents, items) from a few cache lines instead of all over memory.
        self.apply(sorted(docs, key=_place_key))
        self.compact()

    def __len__(self) -> int:
        return int(self.listed[: len(self.docs)].sum())

    # --- keeping the index current -------------------------------------------------------

    def apply(self, docs: Iterable[ProviderDoc]) -> None:
        """Add, replace or remove (when no longer listed) each provider."""
        for doc in docs:
            self._apply_one(doc)
            self.revision = max(self.revision, doc.revision)
        self._name_order = None
        if len(self._delta) > max(2000, len(self.main_key) // 20):
            self.compact()

    def _apply_one(self, doc: ProviderDoc) -> None:
        pos = self.position.get(doc.id)
        if pos is None:
            if not doc.listed:
                return
            pos = len(self.docs)
            self._ensure_capacity(pos + 1)
            self.docs.append(doc)
            self.lower_names.append("")
            self.derived.append(None)
            self.position[doc.id] = pos
        else:
            old = self.docs[pos]
            if old is not None:
                self.by_slug.pop(old.slug, None)
            self._clear_row(pos)
        self.provider_ids[pos] = doc.id
        if not doc.listed:
            self.docs[pos] = None
            self.lower_names[pos] = ""
            return
        self.docs[pos] = doc
        self.lower_names[pos] = doc.name.lower()
        if self._derive is not None:
            self.derived[pos] = self._derive(doc)
        self.by_slug[doc.slug] = pos
        self.listed[pos] = True
        flags = _flags(doc)
        self.flags[pos] = flags
        for language in doc.languages:
            key = language.strip().lower()
            if key not in self.language:
                self.language[key] = np.zeros(len(self.listed), dtype=bool)
            self.language[key][pos] = True
        ids = []
        for location in doc.locations:
            ids.append(len(self.main_key) + len(self._delta))
            self._delta.append(
                (
                    unit_vector(location.lat, location.lon),
                    pos,
                    _cell_key(location.lat, location.lon),
                    flags,
                )
            )
            self._delta_alive.append(True)
        self._delta_arrays = None
        self.provider_locs[pos] = ids

    def _clear_row(self, pos: int) -> None:
        self.listed[pos] = False
        self.flags[pos] = 0
        self.derived[pos] = None
        for column in self.language.values():
            column[pos] = False
        main_size = len(self.main_key)
        for loc in self.provider_locs.pop(pos, []):
            if loc < main_size:
                self.main_alive[loc] = False
            else:
                self._delta_alive[loc - main_size] = False
                self._delta_arrays = None

    def compact(self) -> None:
        """Merge the delta store into the main store, dropping dead locations, sorted by cell."""
        alive = self.main_alive
        delta = [d for d, ok in zip(self._delta, self._delta_alive, strict=True) if ok]
        xyz = np.concatenate([self.main_xyz[alive], np.array([d[0] for d in delta]).reshape(-1, 3)])
        provider = np.concatenate(
            [self.main_provider[alive], np.array([d[1] for d in delta], dtype=np.int64)]
        )
        key = np.concatenate([self.main_key[alive], np.array([d[2] for d in delta], dtype=np.int64)])
        flags = np.concatenate([self.main_flags[alive], np.array([d[3] for d in delta], dtype=np.uint64)])
        order = np.argsort(key, kind="stable")
        self.main_xyz = np.ascontiguousarray(xyz[order])
        self.main_provider, self.main_key, self.main_flags = provider[order], key[order], flags[order]
        self.main_alive = np.ones(len(order), dtype=bool)
        self._delta, self._delta_alive, self._delta_arrays = [], [], None
        self.provider_locs = {}
        for loc, pos in enumerate(self.main_provider.tolist()):
            self.provider_locs.setdefault(pos, []).append(loc)

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= len(self.listed):
            return
        cap = max(needed, 2 * len(self.listed))
        self.listed = _grow(self.listed, cap)  # type: ignore[assignment]
        self.flags = _grow(self.flags, cap)  # type: ignore[assignment]
        self.provider_ids = _grow(self.provider_ids, cap)  # type: ignore[assignment]
        self.language = {k: _grow(v, cap) for k, v in self.language.items()}  # type: ignore[misc]
        self._slot = np.full(cap, -1, dtype=np.int64)

    # --- reading -------------------------------------------------------------------------

    def get(self, slug: str) -> ProviderDoc | None:
        pos = self.by_slug.get(slug)
        return None if pos is None else self.docs[pos]

    def known_languages(self) -> list[str]:
        return sorted(k for k, column in self.language.items() if column.any())

    def _delta_store(self) -> tuple[FloatArray, BoolArray, IntArray, FlagArray]:
        if self._delta_arrays is None:
            self._delta_arrays = (
                np.array([d[0] for d in self._delta], dtype=np.float64).reshape(-1, 3),
                np.array(self._delta_alive, dtype=bool),
                np.array([d[1] for d in self._delta], dtype=np.int64),
                np.array([d[3] for d in self._delta], dtype=np.uint64),
            )
        return self._delta_arrays

    def _within(self, lat: float, lon: float, radius_mi: float) -> tuple[IntArray, FloatArray, FlagArray]:
        """Providers with a location within the radius, each one's nearest cosine and flags."""
        dlat = math.degrees(radius_mi / EARTH_RADIUS_MI)
        coslat = max(math.cos(math.radians(min(89.0, abs(lat) + dlat))), 1e-6)
        dlon = min(180.0, dlat / coslat)
        found: tuple[IntArray, FloatArray, FlagArray] = kernels.within(
            self.main_key,
            (self.main_xyz, self.main_alive, self.main_provider, self.main_flags),
            self._delta_store(),
            (lat, lon, dlat, dlon, CELL_DEG),
            np.array(unit_vector(lat, lon)),
            math.cos(radius_mi / EARTH_RADIUS_MI),
            self._slot,
        )
        return found

    def search(self, query: SearchQuery) -> SearchResult:
        n = len(self.docs)
        cosine: FloatArray | None = None
        # Both sources hold listed providers only (an unlisted one's locations are dead).
        if query.near is not None:
            positions, cosine, flags = self._within(*query.near, query.radius_mi)
        else:
            positions = np.flatnonzero(self.listed[:n])
            flags = self.flags[positions]
        want_set = want_value = 0
        if query.accepting is not None:
            want_set |= ACCEPTING_BIT
            want_value |= ACCEPTING_BIT if query.accepting else 0
        if query.telehealth is not None:
            want_set |= TELEHEALTH_BIT
            want_value |= TELEHEALTH_BIT if query.telehealth else 0
        keep = np.ones(0, dtype=bool)  # empty: no language or name filter
        if query.language:
            column = self.language.get(query.language.strip().lower())
            keep = column[positions] if column is not None else np.zeros(len(positions), dtype=bool)
        if query.text:
            needle = query.text.strip().lower()
            names = self.lower_names
            named = np.fromiter((needle in names[p] for p in positions), dtype=bool, count=len(positions))
            keep = keep & named if len(keep) else named
        chosen = 0  # any of these conditions; the slugs are the taxonomy's (KeyError otherwise)
        for slug in query.conditions:
            chosen |= CONDITION_BIT[slug]
        region = REGION_BIT[query.region] if query.region else 0
        for_conditions, for_regions, selected = kernels.select(
            flags,
            keep,
            np.uint64(want_set),
            np.uint64(want_value),
            np.uint64(chosen),
            np.uint64(region),
            REGION_SHIFT,
            FACET_BITS,
        )
        start = (query.page - 1) * query.per_page
        distances: list[float | None]
        if cosine is not None:
            # Nearest first; ties break by provider id, so paging is stable.
            total, page, page_cosines = kernels.nearest_page(
                positions, cosine, selected, self.provider_ids, start, query.per_page
            )
            # Arc length, as schemas.location_distances measures each clinic.
            distances = [EARTH_RADIUS_MI * math.acos(min(1.0, c)) for c in page_cosines.tolist()]
        else:
            matched = positions[selected]
            total = len(matched)
            page = matched[
                np.argsort(self._name_rank()[matched], kind="stable")[start : start + query.per_page]
            ]
            distances = [None] * len(page)
        return SearchResult(
            total=total,
            positions=page.tolist(),
            distances=distances,
            region_counts={s: c for s, c in zip(REGION_SLUGS, for_regions.tolist(), strict=True) if c},
            condition_counts={
                s: c for s, c in zip(CONDITION_SLUGS, for_conditions.tolist(), strict=True) if c
            },
        )

    def hits(self, result: SearchResult) -> list[SearchHit]:
        """A result's page as documents, for callers that render from them."""
        docs = self.docs
        return [
            SearchHit(pos, doc, d)
            for pos, d in zip(result.positions, result.distances, strict=True)
            if (doc := docs[pos]) is not None
        ]

    def _name_rank(self) -> IntArray:
        """Each position's place in alphabetical order by name, then id."""
        if self._name_order is None:
            keys = [(doc.name.lower(), doc.id) if doc is not None else ("\uffff", 0) for doc in self.docs]
            order = sorted(range(len(keys)), key=keys.__getitem__)
            rank = np.zeros(len(self.listed), dtype=np.int64)
            rank[np.array(order, dtype=np.int64)] = np.arange(len(order))
            self._name_order = rank
        return self._name_order


def regions_for(condition_slugs: Iterable[str], region_slugs: Iterable[str]) -> tuple[str, ...]:
    regions = {s for s in region_slugs if s in REGION_BY_SLUG}
    for slug in condition_slugs:
        regions.update(CONDITION_REGIONS.get(slug, ()))
    return tuple(r.slug for r in REGIONS if r.slug in regions)
