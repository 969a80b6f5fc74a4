"""The in-memory search index each worker keeps of the published directory.

Search must answer in well under a millisecond at 100,000 providers, so it runs on numpy arrays
instead of SQL: locations sit in one-degree cells, a query reads only the cells its radius touches,
and per-provider flags, conditions and regions are columns to mask and sum (facets). The index is
a cache of the database with bounded staleness: `DirectoryRefresher` (in `service.py`) applies rows
whose revision is newer than the index's, so an edit made on any worker shows on every worker within
a refresh period.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from directory.geo import EARTH_RADIUS_MI
from directory.taxonomy import CONDITIONS, REGION_BY_SLUG, REGIONS

CELL_DEG = 1.0
CONDITION_COLUMN = {c.slug: i for i, c in enumerate(CONDITIONS)}
REGION_COLUMN = {r.slug: i for i, r in enumerate(REGIONS)}
CONDITION_REGIONS = {c.slug: c.regions for c in CONDITIONS}

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LocationDoc:
    clinic_name: str
    address: str
    city: str
    state: str
    zip: str
    lat: float
    lon: float
    phone: str


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
    doc: ProviderDoc
    distance_mi: float | None
    # Index into doc.locations of the nearest location (0 without `near`).
    nearest_location: int = 0


@dataclass(slots=True)
class SearchResult:
    total: int
    hits: list[SearchHit]
    region_counts: dict[str, int] = field(default_factory=dict)
    condition_counts: dict[str, int] = field(default_factory=dict)


def _grow(array: npt.NDArray[np.generic], capacity: int) -> npt.NDArray[np.generic]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return (math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG))


class SearchIndex:
    """Providers by position; positions are never reused while the index lives."""

    def __init__(self, docs: Iterable[ProviderDoc] = (), revision: int = 0) -> None:
        self.revision = revision
        self.docs: list[ProviderDoc | None] = []
        self.lower_names: list[str] = []
        self.position: dict[int, int] = {}
        self.by_slug: dict[str, int] = {}
        cap = 1024
        self.listed: BoolArray = np.zeros(cap, dtype=bool)
        self.accepting: BoolArray = np.zeros(cap, dtype=bool)
        self.telehealth: BoolArray = np.zeros(cap, dtype=bool)
        self.condition_matrix: npt.NDArray[np.uint8] = np.zeros((cap, len(CONDITIONS)), np.uint8)
        self.region_matrix: npt.NDArray[np.uint8] = np.zeros((cap, len(REGIONS)), np.uint8)
        self.language: dict[str, BoolArray] = {}
        self.provider_ids: IntArray = np.zeros(cap, dtype=np.int64)
        # Locations, stored flat; a location dies when its provider changes and is never reused.
        loc_cap = 2048
        self.loc_lat: FloatArray = np.zeros(loc_cap)
        self.loc_lon: FloatArray = np.zeros(loc_cap)
        self.loc_cos_lat: FloatArray = np.zeros(loc_cap)
        self.loc_provider: IntArray = np.zeros(loc_cap, dtype=np.int64)
        self.loc_ordinal: IntArray = np.zeros(loc_cap, dtype=np.int64)
        self.loc_alive: BoolArray = np.zeros(loc_cap, dtype=bool)
        self.loc_count = 0
        self.provider_locs: dict[int, list[int]] = {}
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._cell_arrays: dict[tuple[int, int], IntArray] = {}
        self._name_order: IntArray | None = None
        self.apply(docs)

    def __len__(self) -> int:
        return int(self.listed[: len(self.docs)].sum())

    # --- keeping the index current -------------------------------------------------------

    def apply(self, docs: Iterable[ProviderDoc]) -> None:
        """Add, replace or remove (when no longer listed) each provider."""
        for doc in docs:
            self._apply_one(doc)
            self.revision = max(self.revision, doc.revision)
        self._name_order = None

    def _apply_one(self, doc: ProviderDoc) -> None:
        pos = self.position.get(doc.id)
        if pos is None:
            if not doc.listed:
                return
            pos = len(self.docs)
            self._ensure_capacity(pos + 1)
            self.docs.append(doc)
            self.lower_names.append("")
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
        self.by_slug[doc.slug] = pos
        self.listed[pos] = True
        self.accepting[pos] = doc.accepting_new_patients
        self.telehealth[pos] = doc.telehealth
        for slug in doc.conditions:
            if slug in CONDITION_COLUMN:
                self.condition_matrix[pos, CONDITION_COLUMN[slug]] = 1
        for slug in doc.regions:
            if slug in REGION_COLUMN:
                self.region_matrix[pos, REGION_COLUMN[slug]] = 1
        for language in doc.languages:
            key = language.strip().lower()
            if key not in self.language:
                self.language[key] = np.zeros(len(self.listed), dtype=bool)
            self.language[key][pos] = True
        self._add_locations(pos, doc.locations)

    def _clear_row(self, pos: int) -> None:
        self.listed[pos] = self.accepting[pos] = self.telehealth[pos] = False
        self.condition_matrix[pos] = 0
        self.region_matrix[pos] = 0
        for column in self.language.values():
            column[pos] = False
        for loc in self.provider_locs.pop(pos, []):
            self.loc_alive[loc] = False

    def _add_locations(self, pos: int, locations: Sequence[LocationDoc]) -> None:
        start = self.loc_count
        self._ensure_loc_capacity(start + len(locations))
        ids = []
        for ordinal, location in enumerate(locations):
            loc = start + ordinal
            self.loc_lat[loc] = math.radians(location.lat)
            self.loc_lon[loc] = math.radians(location.lon)
            self.loc_cos_lat[loc] = math.cos(self.loc_lat[loc])
            self.loc_provider[loc] = pos
            self.loc_ordinal[loc] = ordinal
            self.loc_alive[loc] = True
            cell = _cell(location.lat, location.lon)
            self._cells.setdefault(cell, []).append(loc)
            self._cell_arrays.pop(cell, None)
            ids.append(loc)
        self.loc_count += len(locations)
        self.provider_locs[pos] = ids

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= len(self.listed):
            return
        cap = max(needed, 2 * len(self.listed))
        self.listed = _grow(self.listed, cap)  # type: ignore[assignment]
        self.accepting = _grow(self.accepting, cap)  # type: ignore[assignment]
        self.telehealth = _grow(self.telehealth, cap)  # type: ignore[assignment]
        self.condition_matrix = _grow(self.condition_matrix, cap)  # type: ignore[assignment]
        self.region_matrix = _grow(self.region_matrix, cap)  # type: ignore[assignment]
        self.provider_ids = _grow(self.provider_ids, cap)  # type: ignore[assignment]
        self.language = {k: _grow(v, cap) for k, v in self.language.items()}  # type: ignore[misc]

    def _ensure_loc_capacity(self, needed: int) -> None:
        if needed <= len(self.loc_lat):
            return
        cap = max(needed, 2 * len(self.loc_lat))
        self.loc_lat = _grow(self.loc_lat, cap)  # type: ignore[assignment]
        self.loc_lon = _grow(self.loc_lon, cap)  # type: ignore[assignment]
        self.loc_cos_lat = _grow(self.loc_cos_lat, cap)  # type: ignore[assignment]
        self.loc_provider = _grow(self.loc_provider, cap)  # type: ignore[assignment]
        self.loc_ordinal = _grow(self.loc_ordinal, cap)  # type: ignore[assignment]
        self.loc_alive = _grow(self.loc_alive, cap)  # type: ignore[assignment]

    # --- reading -------------------------------------------------------------------------

    def get(self, slug: str) -> ProviderDoc | None:
        pos = self.by_slug.get(slug)
        return None if pos is None else self.docs[pos]

    def known_languages(self) -> list[str]:
        return sorted(k for k, column in self.language.items() if column.any())

    def _cell_array(self, cell: tuple[int, int]) -> IntArray | None:
        array = self._cell_arrays.get(cell)
        if array is None:
            members = self._cells.get(cell)
            if not members:
                return None
            array = np.fromiter(members, dtype=np.int64, count=len(members))
            self._cell_arrays[cell] = array
        return array

    def _within(self, lat: float, lon: float, radius_mi: float) -> tuple[IntArray, FloatArray, IntArray]:
        """Providers with a location within the radius: positions, distances, nearest ordinal."""
        dlat = math.degrees(radius_mi / EARTH_RADIUS_MI)
        coslat = max(math.cos(math.radians(min(89.0, abs(lat) + dlat))), 1e-6)
        dlon = min(180.0, dlat / coslat)
        lat_cells = range(math.floor((lat - dlat) / CELL_DEG), math.floor((lat + dlat) / CELL_DEG) + 1)
        lon_lo, lon_hi = math.floor((lon - dlon) / CELL_DEG), math.floor((lon + dlon) / CELL_DEG)
        chunks = []
        for i in lat_cells:
            for j in range(lon_lo, lon_hi + 1):
                # Longitude wraps at the antimeridian (Alaska's Aleutians, Guam).
                wrapped = ((j * CELL_DEG + 180.0) % 360.0 - 180.0) / CELL_DEG
                array = self._cell_array((i, math.floor(wrapped)))
                if array is not None:
                    chunks.append(array)
        empty = np.zeros(0, dtype=np.int64)
        if not chunks:
            return empty, np.zeros(0), empty
        locs = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        locs = locs[self.loc_alive[locs]]
        lat0, lon0 = math.radians(lat), math.radians(lon)
        half_dlat = (self.loc_lat[locs] - lat0) * 0.5
        half_dlon = (self.loc_lon[locs] - lon0) * 0.5
        a = np.sin(half_dlat) ** 2 + math.cos(lat0) * self.loc_cos_lat[locs] * np.sin(half_dlon) ** 2
        distance = 2 * EARTH_RADIUS_MI * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        inside = distance <= radius_mi
        locs, distance = locs[inside], distance[inside]
        providers = self.loc_provider[locs]
        # Nearest location per provider: sort by (provider, distance), keep each provider's first.
        order = np.lexsort((distance, providers))
        providers, distance, locs = providers[order], distance[order], locs[order]
        first = np.ones(len(providers), dtype=bool)
        first[1:] = providers[1:] != providers[:-1]
        return providers[first], distance[first], self.loc_ordinal[locs[first]]

    def search(self, query: SearchQuery) -> SearchResult:
        n = len(self.docs)
        distance: FloatArray | None = None
        nearest: IntArray | None = None
        if query.near is not None:
            positions, distance, nearest = self._within(*query.near, query.radius_mi)
        else:
            positions = np.flatnonzero(self.listed[:n])
        base = self.listed[positions]
        if query.accepting is not None:
            base &= self.accepting[positions] == query.accepting
        if query.telehealth is not None:
            base &= self.telehealth[positions] == query.telehealth
        if query.language:
            column = self.language.get(query.language.strip().lower())
            base &= column[positions] if column is not None else False
        if query.text:
            needle = query.text.strip().lower()
            names = self.lower_names
            base &= np.fromiter((needle in names[p] for p in positions), dtype=bool, count=len(positions))
        condition_mask: BoolArray = np.ones(len(positions), dtype=bool)
        if query.conditions:
            columns = [CONDITION_COLUMN[s] for s in query.conditions if s in CONDITION_COLUMN]
            condition_mask = np.asarray(self.condition_matrix[positions][:, columns].any(axis=1), dtype=bool)
        region_mask: BoolArray = np.ones(len(positions), dtype=bool)
        if query.region:
            region_mask = self.region_matrix[positions, REGION_COLUMN[query.region]].astype(bool)
        # Facets count what choosing that value instead would return, other filters kept.
        condition_counts = self.condition_matrix[positions[base & region_mask]].sum(axis=0)
        region_counts = self.region_matrix[positions[base & condition_mask]].sum(axis=0)
        selected = base & condition_mask & region_mask
        matched = positions[selected]
        total = len(matched)
        dist: FloatArray | None = None
        near_ord: IntArray | None = None
        if distance is not None and nearest is not None:
            dist, near_ord = distance[selected], nearest[selected]
            # Ties on distance break by provider id, so paging is stable.
            order = np.lexsort((self.provider_ids[matched], dist))
        else:
            order = np.argsort(self._name_rank()[matched], kind="stable")
        start = (query.page - 1) * query.per_page
        page_order = order[start : start + query.per_page]
        hits = []
        for k in page_order:
            doc = self.docs[matched[k]]
            assert doc is not None
            hits.append(
                SearchHit(
                    doc,
                    None if dist is None else float(dist[k]),
                    0 if near_ord is None else int(near_ord[k]),
                )
            )
        return SearchResult(
            total=total,
            hits=hits,
            region_counts={r.slug: int(c) for r, c in zip(REGIONS, region_counts, strict=True) if c},
            condition_counts={s.slug: int(c) for s, c in zip(CONDITIONS, condition_counts, strict=True) if c},
        )

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
