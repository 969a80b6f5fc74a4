"""Directory services: saving providers, and keeping each worker's search index current."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from typing import Any

import anyio.to_thread
import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload
from sqlmodel import Session

from core.db import Database
from directory import kernels
from directory.geo import lookup_zip
from directory.matching import ConditionMatch, match_conditions, resolve_condition
from directory.models import DirectoryState, Location, Provider, ProviderCondition, ProviderRegion, utcnow
from directory.schemas import (
    Facets,
    ProviderPage,
    ProviderPageJSON,
    Suggestions,
    condition_out,
    encode_item,
    item_json,
    provider_item,
    region_name,
)
from directory.search import (
    LocationDoc,
    ProviderDoc,
    SearchIndex,
    SearchQuery,
    SearchResult,
    regions_for,
    unit_vector,
)
from directory.taxonomy import CONDITION_BY_SLUG, REGION_BY_SLUG

log = logging.getLogger(__name__)
_ENCODER = msgspec.json.Encoder()


class InvalidListing(ValueError):
    """A provider listing that cannot be saved; `errors` maps each field to what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def npi_is_valid(npi: str) -> bool:
    """CMS NPI check digit: Luhn over the 9 digits prefixed with the card issuer 80840."""
    if not re.fullmatch(r"\d{10}", npi):
        return False
    digits = [int(d) for d in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:100] or "provider"


@dataclass(slots=True)
class LocationInput:
    clinic_name: str
    address: str
    city: str
    state: str
    zip: str
    phone: str = ""


@dataclass(slots=True)
class ListingInput:
    """A provider listing as an admin, the CSV import or the demo seed gives it."""

    name: str
    credentials: str = ""
    npi: str | None = None
    bio: str = ""
    photo_url: str | None = None
    languages: list[str] = field(default_factory=lambda: ["English"])
    procedures: list[str] = field(default_factory=list)
    accepting_new_patients: bool = True
    telehealth: bool = False
    published: bool = True
    conditions: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    locations: list[LocationInput] = field(default_factory=list)
    last_reviewed: date | None = None
    slug: str | None = None


def validate_listing(data: ListingInput) -> dict[str, str]:
    """Every problem with a listing, by field, in words a clinic admin can act on."""
    errors: dict[str, str] = {}
    if not data.name.strip():
        errors["name"] = "A provider needs a name."
    if data.npi and not npi_is_valid(data.npi):
        errors["npi"] = f"NPI '{data.npi}' is not valid: it must be 10 digits with a correct check digit."
    unknown = [c for c in data.conditions if c not in CONDITION_BY_SLUG]
    if unknown:
        errors["conditions"] = f"Unknown condition(s): {', '.join(unknown)}. See GET /api/regions."
    unknown_regions = [r for r in data.regions if r not in REGION_BY_SLUG]
    if unknown_regions:
        errors["regions"] = f"Unknown region(s): {', '.join(unknown_regions)}. See GET /api/regions."
    if not data.locations:
        errors["locations"] = "A provider needs at least one location."
    for i, loc in enumerate(data.locations):
        try:
            lookup_zip(loc.zip)
        except ValueError as exc:
            errors[f"locations[{i}].zip"] = str(exc)
        if not loc.clinic_name.strip():
            errors[f"locations[{i}].clinic_name"] = "A location needs a clinic name."
    return errors


def normalise_listing(data: ListingInput) -> ListingInput:
    """The listing as `save_listing` stores it: trimmed, de-duplicated, city and state from the ZIP.

    Comparing this with a stored listing tells what an edit would really change.
    """
    return replace(
        data,
        name=data.name.strip(),
        credentials=data.credentials.strip(),
        npi=(data.npi or "").strip() or None,
        languages=[lang.strip() for lang in data.languages if lang.strip()],
        procedures=[p.strip() for p in data.procedures if p.strip()],
        conditions=list(dict.fromkeys(data.conditions)),
        regions=list(dict.fromkeys(data.regions)),
        locations=[_normalise_location(loc) for loc in data.locations],
    )


def _normalise_location(loc: LocationInput) -> LocationInput:
    try:
        place = lookup_zip(loc.zip)
    except ValueError:
        return loc  # validate_listing reports the ZIP
    return LocationInput(
        clinic_name=loc.clinic_name.strip(),
        address=loc.address.strip(),
        city=loc.city.strip() or place.city,
        state=(loc.state.strip() or place.state).upper(),
        zip=place.zip,
        phone=loc.phone.strip(),
    )


def check_listing(session: Session, data: ListingInput, provider_id: int | None = None) -> dict[str, str]:
    """`validate_listing` plus what only the database knows: an NPI or slug another provider holds."""
    errors = validate_listing(data)
    p = Provider.__table__  # type: ignore[attr-defined]
    npi = (data.npi or "").strip()
    if npi and "npi" not in errors:
        query = select(p.c.slug, p.c.deleted_at).where(p.c.npi == npi)
        if provider_id is not None:
            query = query.where(p.c.id != provider_id)
        holder = session.execute(query).first()
        if holder is not None:
            deleted = " (deleted)" if holder.deleted_at is not None else ""
            errors["npi"] = f"NPI {npi} is already listed for provider '{holder.slug}'{deleted}."
    taken = data.slug and session.execute(select(p.c.id).where(p.c.slug == data.slug)).first()
    if provider_id is None and taken:
        errors["slug"] = f"The slug '{data.slug}' is taken by another provider."
    return errors


def load_provider(session: Session, slug: str) -> Provider | None:
    """One provider (deleted ones too) with its locations, conditions and regions loaded."""
    return (
        session.execute(
            select(Provider)
            .where(Provider.__table__.c.slug == slug)  # type: ignore[attr-defined]
            .options(
                selectinload(Provider.locations),  # type: ignore[arg-type]
                selectinload(Provider.conditions),  # type: ignore[arg-type]
                selectinload(Provider.regions),  # type: ignore[arg-type]
            )
            .execution_options(populate_existing=True)
        )
        .scalars()
        .first()
    )


def listing_of(provider: Provider) -> ListingInput:
    """A loaded provider (see `load_provider`) as the input that would save it unchanged."""
    return ListingInput(
        name=provider.name,
        credentials=provider.credentials,
        npi=provider.npi,
        bio=provider.bio,
        photo_url=provider.photo_url,
        languages=list(provider.languages),
        procedures=list(provider.procedures),
        accepting_new_patients=provider.accepting_new_patients,
        telehealth=provider.telehealth,
        published=provider.published,
        conditions=sorted(c.condition_slug for c in provider.conditions),
        regions=sorted(r.region_slug for r in provider.regions),
        locations=[
            LocationInput(loc.clinic_name, loc.address, loc.city, loc.state, loc.zip, loc.phone)
            for loc in provider.locations
        ],
        last_reviewed=provider.last_reviewed,
        slug=provider.slug,
    )


def bump_version(session: Session) -> int:
    """Raise the directory version in this transaction; rows stamped with it reach every worker.

    The UPDATE takes the row's lock, so writers that bump commit in version order and a worker
    that has seen version V has seen every row stamped V or lower.
    """
    state = DirectoryState.__table__  # type: ignore[attr-defined]
    result = session.execute(
        update(state).values(version=state.c.version + 1).returning(state.c.version)
    ).scalar_one_or_none()
    if result is None:
        session.add(DirectoryState(id=1, version=1))
        session.flush()
        return 1
    return int(result)


def unique_slug(session: Session, name: str, exclude_id: int | None = None) -> str:
    base = slugify(name)
    slug_column = Provider.__table__.c.slug  # type: ignore[attr-defined]
    taken = set(session.execute(select(slug_column).where(slug_column.like(f"{base}%"))).scalars())
    if exclude_id is not None:
        own = session.get(Provider, exclude_id)
        if own is not None:
            taken.discard(own.slug)
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def save_listing(session: Session, data: ListingInput, provider: Provider | None = None) -> Provider:
    """Create or replace a provider listing; the caller owns the transaction."""
    errors = check_listing(session, data, None if provider is None else provider.id)
    if errors:
        raise InvalidListing(errors)
    data = normalise_listing(data)
    version = bump_version(session)
    if provider is None:
        provider = Provider(
            slug=data.slug or unique_slug(session, data.name),
            name=data.name,
        )
        session.add(provider)
    provider.name = data.name
    provider.credentials = data.credentials
    provider.npi = data.npi
    provider.bio = data.bio
    provider.photo_url = data.photo_url
    provider.languages = data.languages
    provider.procedures = data.procedures
    provider.accepting_new_patients = data.accepting_new_patients
    provider.telehealth = data.telehealth
    provider.published = data.published
    provider.last_reviewed = data.last_reviewed
    provider.revision = version
    provider.updated_at = utcnow()
    session.flush()
    assert provider.id is not None
    pid = provider.id
    for table in (Location.__table__, ProviderCondition.__table__, ProviderRegion.__table__):  # type: ignore[attr-defined]
        session.execute(table.delete().where(table.c.provider_id == pid))
    # A caller may have loaded the rows just deleted (for a "before" snapshot): forget them, so
    # the new rows below do not collide with their identities in the session.
    session.expire(provider, ["locations", "conditions", "regions"])
    for stale in [
        obj
        for obj in session.identity_map.values()
        if isinstance(obj, Location | ProviderCondition | ProviderRegion) and obj.provider_id == pid
    ]:
        session.expunge(stale)
    for loc in data.locations:
        place = lookup_zip(loc.zip)
        session.add(
            Location(
                provider_id=pid,
                clinic_name=loc.clinic_name,
                address=loc.address,
                city=loc.city,
                state=loc.state,
                zip=loc.zip,
                lat=place.lat,
                lon=place.lon,
                phone=loc.phone,
            )
        )
    for slug in data.conditions:
        session.add(ProviderCondition(provider_id=pid, condition_slug=slug))
    for slug in data.regions:
        session.add(ProviderRegion(provider_id=pid, region_slug=slug))
    session.flush()
    return provider


def mark_changed(session: Session, provider: Provider) -> None:
    """Stamp a provider changed in place (publish, unpublish, delete) so workers reload it."""
    provider.revision = bump_version(session)
    provider.updated_at = utcnow()
    session.add(provider)


def current_version(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(DirectoryState.version), 0))).scalar_one())


def load_docs(session: Session, since_revision: int | None = None) -> list[ProviderDoc]:
    """Providers changed after `since_revision` (all listed ones when None), as index documents.

    Plain column queries, not ORM objects: a worker loads 100,000 providers at start-up.
    """
    p = Provider.__table__  # type: ignore[attr-defined]
    query = select(p)
    if since_revision is None:
        query = query.where(p.c.published.is_(True), p.c.deleted_at.is_(None))
    else:
        query = query.where(p.c.revision > since_revision)
    rows = session.execute(query.order_by(p.c.id)).mappings().all()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    locations: dict[int, list[LocationDoc]] = defaultdict(list)
    conditions: dict[int, list[str]] = defaultdict(list)
    regions: dict[int, list[str]] = defaultdict(list)
    for chunk in _chunks(ids, 5000):
        lt = Location.__table__  # type: ignore[attr-defined]
        for loc in session.execute(
            select(lt).where(lt.c.provider_id.in_(chunk)).order_by(lt.c.id)
        ).mappings():
            locations[loc["provider_id"]].append(
                LocationDoc(
                    clinic_name=loc["clinic_name"],
                    address=loc["address"],
                    city=loc["city"],
                    state=loc["state"],
                    zip=loc["zip"],
                    phone=loc["phone"],
                    lat=loc["lat"],
                    lon=loc["lon"],
                )
            )
        pc, pr = ProviderCondition.__table__, ProviderRegion.__table__  # type: ignore[attr-defined]
        for pid, slug in session.execute(
            select(pc.c.provider_id, pc.c.condition_slug).where(pc.c.provider_id.in_(chunk))
        ):
            conditions[pid].append(slug)
        for pid, slug in session.execute(
            select(pr.c.provider_id, pr.c.region_slug).where(pr.c.provider_id.in_(chunk))
        ):
            regions[pid].append(slug)
    docs = []
    for r in rows:
        pid = r["id"]
        conds = tuple(sorted(conditions[pid]))
        docs.append(
            ProviderDoc(
                id=pid,
                slug=r["slug"],
                name=r["name"],
                credentials=r["credentials"],
                npi=r["npi"],
                bio=r["bio"],
                photo_url=r["photo_url"],
                languages=tuple(r["languages"] or ()),
                procedures=tuple(r["procedures"] or ()),
                accepting_new_patients=r["accepting_new_patients"],
                telehealth=r["telehealth"],
                last_reviewed=r["last_reviewed"],
                conditions=conds,
                regions=regions_for(conds, regions[pid]),
                locations=tuple(locations[pid]),
                listed=bool(r["published"]) and r["deleted_at"] is None,
                revision=r["revision"],
            )
        )
    return docs


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def build_index(db: Database, disclaimer: str | None = None) -> SearchIndex:
    """The listed directory as a search index; with a disclaimer, API items are pre-built too."""
    kernels.warm_up()
    # Building allocates millions of objects that all live on: the cyclic collector would walk
    # them again and again (seconds at 100,000 providers) and find nothing to free.
    gc.disable()
    try:
        with db.session() as session:
            version = current_version(session)
            docs = load_docs(session)
        derive = None if disclaimer is None else partial(encode_item, disclaimer=disclaimer)
        index = SearchIndex(docs, revision=version, derive=derive)
    finally:
        gc.enable()
    return index


class DirectoryRefresher:
    """Holds this worker's index and polls the database for newer revisions.

    Polling one integer every `period` seconds costs nothing measurable and needs no broker; it
    bounds staleness to about one period on every worker, whichever worker made the change.
    """

    def __init__(self, db: Database, period: float, disclaimer: str) -> None:
        self.db = db
        self.period = period
        self.disclaimer = disclaimer
        self.index = SearchIndex()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self.index = await anyio.to_thread.run_sync(build_index, self.db, self.disclaimer)
        # Load the ZIP table now rather than in the first patient's search.
        await anyio.to_thread.run_sync(lookup_zip, "10001")
        # What exists now (the index above all) lives as long as the worker: keep the cyclic
        # collector from walking it in every full collection (a pause of ~0.5 s at 100,000
        # providers). Replaced documents are still freed, by reference counting.
        gc.freeze()
        self._task = asyncio.create_task(self._run(), name="directory-refresher")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop polling once a refresh in flight has finished (up to `grace_seconds`).

        Cancelling would not stop the worker thread of a refresh in flight: it would read on
        while the app shuts down and its database goes away (a dropped test schema deadlocked
        with such a read on PostgreSQL).
        """
        gc.unfreeze()
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        """Apply whatever changed since the index's revision."""
        seen = self.index.revision
        version, docs = await anyio.to_thread.run_sync(self._changes_since, seen)
        if docs:
            self.index.apply(docs)
        self.index.revision = max(self.index.revision, version)

    def _changes_since(self, seen: int) -> tuple[int, list[ProviderDoc]]:
        with self.db.session() as session:
            version = current_version(session)
            if version <= seen:
                return version, []
            return version, load_docs(session, since_revision=seen)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.period)
            if self._stopping.is_set():
                return
            try:
                await self.refresh()
            except Exception:
                log.exception("directory refresh failed; retrying in %.2fs", self.period)


@dataclass(frozen=True, slots=True)
class ProviderSearch:
    """`GET /api/providers` parameters, validated by the route."""

    condition: str | None = None
    region: str | None = None
    q: str | None = None
    near: str | None = None
    radius: float = 50.0
    accepting: bool | None = None
    telehealth: bool | None = None
    language: str | None = None
    page: int = 1
    per_page: int = 20


WIDER_RADII = (25, 50, 100, 250, 500)


@dataclass(slots=True)
class SearchOutcome:
    """One search's answer before rendering; the API and the pages render the same outcome."""

    params: ProviderSearch
    result: SearchResult
    matches: tuple[ConditionMatch, ...]
    # The `near` ZIP's centroid as a unit vector (what the index measures from), and the ZIP.
    origin: tuple[float, float, float] | None
    near_zip: str | None
    suggestions: Suggestions | None
    # Reasons every hit shares (region, name text), after its own condition reasons.
    shared_reasons: list[str]

    def reasons_json(
        self, docs: Sequence[ProviderDoc | None], positions: list[int], distances: list[float | None]
    ) -> list[bytes]:
        """`reasons` for each provider of the page, as JSON lists (what the API's items carry)."""
        if len(self.matches) > 1:
            return [
                _ENCODER.encode(self.reasons(_listed(docs, p), d))
                for p, d in zip(positions, distances, strict=True)
            ]
        # With at most one condition matched, every item shares its reasons but the distance.
        shared = _ENCODER.encode([m.why for m in self.matches] + self.shared_reasons)[:-1]
        if self.origin is None:
            return [shared + b"]"] * len(positions)
        # A ZIP is five digits and the distance a number: nothing in that reason needs escaping.
        separator = b"," if len(shared) > 1 else b""
        zip_code = (self.near_zip or "").encode()
        with_distance = b'%s%s"%%.1f mi from ZIP %s"]' % (shared.replace(b"%", b"%%"), separator, zip_code)
        return [with_distance % d for d in distances]

    def reasons(self, doc: ProviderDoc, distance_mi: float | None) -> list[str]:
        """Why this provider is in the results, e.g. "tennis elbow -> Lateral epicondylitis (M77.1-)"."""
        if len(self.matches) == 1:
            # The search kept only providers treating that one condition: no need to look.
            why = [self.matches[0].why]
        else:
            why = [m.why for m in self.matches if m.condition.slug in doc.conditions]
        why += self.shared_reasons
        if distance_mi is not None:
            why.append(f"{distance_mi:.1f} mi from ZIP {self.near_zip}")
        return why


def run_search(index: SearchIndex, params: ProviderSearch) -> SearchOutcome:
    """Run one directory search against the in-memory index. Raises UnknownZip for a bad `near`."""
    matches = resolve_condition(params.condition) if params.condition else ()
    near = origin = near_zip = None
    if params.near:
        place = lookup_zip(params.near)
        near, origin, near_zip = (place.lat, place.lon), unit_vector(place.lat, place.lon), place.zip
    query = SearchQuery(
        conditions=tuple(m.condition.slug for m in matches),
        region=params.region,
        text=params.q,
        near=near,
        radius_mi=params.radius,
        accepting=params.accepting,
        telehealth=params.telehealth,
        language=params.language,
        page=params.page,
        per_page=params.per_page,
    )
    unmatched_condition = bool(params.condition) and not matches
    result = SearchResult(total=0) if unmatched_condition else index.search(query)
    shared = []
    if params.region:
        shared.append(f"treats the {region_name(params.region).lower()}")
    if params.q:
        shared.append(f"name contains \u201c{params.q.strip()}\u201d")
    suggestions = _suggest(index, params, query, unmatched_condition) if result.total == 0 else None
    return SearchOutcome(params, result, matches, origin, near_zip, suggestions, shared)


def search_providers(index: SearchIndex, params: ProviderSearch, disclaimer: str) -> ProviderPage:
    """A search as Structs, for the pages."""
    outcome = run_search(index, params)
    items = [
        provider_item(hit, disclaimer, outcome.reasons(hit.doc, hit.distance_mi), outcome.origin)
        for hit in index.hits(outcome.result)
    ]
    return ProviderPage(items=items, **_page_fields(outcome, disclaimer))


def search_providers_json(index: SearchIndex, params: ProviderSearch, disclaimer: str) -> bytes:
    """The same search as `search_providers`, encoded for `GET /api/providers` from pre-encoded items."""
    outcome = run_search(index, params)
    positions, distances = outcome.result.positions, outcome.result.distances
    docs, derived = index.docs, index.derived
    encoded = [derived[p] for p in positions]
    for i, found in enumerate(encoded):
        if found is None:
            # An index built without items (no disclaimer given) makes them on first use.
            encoded[i] = derived[positions[i]] = encode_item(_listed(docs, positions[i]), disclaimer)
    reasons = outcome.reasons_json(docs, positions, distances)
    origin = outcome.origin
    items = [item_json(e, d, r, origin) for e, d, r in zip(encoded, distances, reasons, strict=True)]
    page = ProviderPageJSON(
        items=msgspec.Raw(b"[%s]" % b",".join(items)), **_page_fields(outcome, disclaimer)
    )
    return msgspec.json.encode(page)


def _listed(docs: Sequence[ProviderDoc | None], position: int) -> ProviderDoc:
    doc = docs[position]
    assert doc is not None, "a search returns listed providers only"
    return doc


def _page_fields(outcome: SearchOutcome, disclaimer: str) -> dict[str, Any]:
    result = outcome.result
    return {
        "total": result.total,
        "page": outcome.params.page,
        "per_page": outcome.params.per_page,
        "facets": Facets(region=result.region_counts, condition=result.condition_counts),
        "disclaimer": disclaimer,
        "interpreted_as": [m.why for m in outcome.matches],
        "suggestions": outcome.suggestions,
    }


def _suggest(index: SearchIndex, params: ProviderSearch, query: SearchQuery, unmatched: bool) -> Suggestions:
    suggestions = Suggestions()
    if unmatched and params.condition:
        close = match_conditions(params.condition, limit=3) or match_conditions(
            " ".join(params.condition.split()[:1]), limit=3
        )
        suggestions.conditions = [condition_out(m.condition.slug) for m in close]
        suggestions.message = (
            f"We did not recognise \u201c{params.condition}\u201d as a condition. "
            "Try other words, or pick a body region."
        )
        return suggestions
    if query.near is not None:
        for radius in WIDER_RADII:
            if (
                radius > query.radius_mi
                and index.search(replace(query, radius_mi=radius, page=1, per_page=1)).total
            ):
                suggestions.radius = radius
                suggestions.message = f"No one matches within {query.radius_mi:g} miles; try {radius} miles."
                break
        else:
            suggestions.message = "No one matches, even within 500 miles. Try fewer filters."
    else:
        suggestions.message = "No one matches these filters. Try fewer filters."
    return suggestions
