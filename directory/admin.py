"""Provider admin: listings (unpublished and deleted too), edits, publishing, review, soft delete,
and CSV import/export in the shape a clinic keeps its providers in a spreadsheet.

Every change runs in one transaction with its audit entry, and goes through `save_listing` or
`mark_changed`, which raise the directory version: every worker's search shows it within
`directory_refresh_seconds`. Routes here need no guard of their own: the app's `admin_guard`
covers everything under /api/admin.

CSV format: one row per provider, UTF-8 (a BOM, as Excel writes it, is fine; Windows-1252 is read
too), header names matched without regard to case, spaces or hyphens. Columns:

    slug, name, credentials, npi, bio, photo_url, languages, procedures,
    accepting_new_patients, telehealth, published, conditions, regions,
    clinic_name, address, city, state, zip, phone,      <- first location
    clinic_name_2, address_2, ..., phone_2, ...         <- more locations, up to _10

`name` is required; other columns may be left out, and on an update a missing column keeps what
the provider has. Lists (languages, procedures, conditions, regions) are separated by `;`;
conditions and regions take slugs or names (GET /api/regions). Yes/no cells take yes/no,
true/false, y/n or 1/0. A row with a `slug` updates that provider (or adds one with that slug);
without a slug, a row whose NPI is listed updates that provider; otherwise it adds one. New
providers are unpublished unless `published` says yes. Export writes the same format, so
export -> edit -> import round-trips.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import CacheControlHeader, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlmodel import Session, col

from accounts.guards import provide_db
from accounts.service import Admin, record_audit
from core.db import Database
from directory.models import Provider, utcnow
from directory.service import (
    InvalidListing,
    ListingInput,
    LocationInput,
    check_listing,
    listing_of,
    load_provider,
    mark_changed,
    normalise_listing,
    save_listing,
)
from directory.taxonomy import CONDITIONS, REGIONS

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 5000

# --- API shapes ---------------------------------------------------------------------------


class LocationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    clinic_name: Annotated[str, msgspec.Meta(max_length=200)]
    address: Annotated[str, msgspec.Meta(max_length=300)]
    zip: Annotated[str, msgspec.Meta(max_length=10, description="US ZIP; city and state default from it")]
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    state: Annotated[str, msgspec.Meta(max_length=2)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=30)] = ""


Text40 = Annotated[str, msgspec.Meta(max_length=40)]
Text100 = Annotated[str, msgspec.Meta(max_length=100)]
PhotoUrl = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^https?://\S+$")]


class ProviderIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A provider's listing as an admin edits it. Status (published, reviewed, deleted) has its
    own actions and ids, slugs and counters are the server's, so none of them is accepted here."""

    name: Annotated[str, msgspec.Meta(max_length=200)]
    credentials: Annotated[str, msgspec.Meta(max_length=60)] = ""
    npi: Annotated[str, msgspec.Meta(max_length=10, description="10 digits, CMS check digit")] | None = None
    bio: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    photo_url: PhotoUrl | None = None
    languages: Annotated[list[Text40], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=lambda: ["English"]
    )
    procedures: Annotated[list[Text100], msgspec.Meta(max_length=30)] = msgspec.field(default_factory=list)
    accepting_new_patients: bool = True
    telehealth: bool = False
    conditions: Annotated[list[Text100], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    regions: Annotated[list[Text40], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    locations: Annotated[list[LocationIn], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)


class ProviderCreate(ProviderIn, forbid_unknown_fields=True, kw_only=True):
    slug: Annotated[str, msgspec.Meta(max_length=120, pattern=SLUG_PATTERN)] | None = None


class ProviderPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields sent change; `locations`, if sent, replaces the list."""

    name: Annotated[str, msgspec.Meta(max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    credentials: Annotated[str, msgspec.Meta(max_length=60)] | msgspec.UnsetType = msgspec.UNSET
    npi: Annotated[str, msgspec.Meta(max_length=10)] | msgspec.UnsetType | None = msgspec.UNSET
    bio: Annotated[str, msgspec.Meta(max_length=5000)] | msgspec.UnsetType = msgspec.UNSET
    photo_url: PhotoUrl | msgspec.UnsetType | None = msgspec.UNSET
    languages: Annotated[list[Text40], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    procedures: Annotated[list[Text100], msgspec.Meta(max_length=30)] | msgspec.UnsetType = msgspec.UNSET
    accepting_new_patients: bool | msgspec.UnsetType = msgspec.UNSET
    telehealth: bool | msgspec.UnsetType = msgspec.UNSET
    conditions: Annotated[list[Text100], msgspec.Meta(max_length=100)] | msgspec.UnsetType = msgspec.UNSET
    regions: Annotated[list[Text40], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    locations: Annotated[list[LocationIn], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET


class AdminLocationOut(msgspec.Struct, kw_only=True):
    clinic_name: str
    address: str
    city: str
    state: str
    zip: str
    phone: str
    lat: float
    lon: float


class AdminProviderOut(msgspec.Struct, kw_only=True):
    id: int
    slug: str
    name: str
    credentials: str
    npi: str | None
    bio: str
    photo_url: str | None
    languages: list[str]
    procedures: list[str]
    accepting_new_patients: bool
    telehealth: bool
    conditions: list[str]
    regions: list[str]
    locations: list[AdminLocationOut]
    published: bool
    # Shown in public search: published and not deleted.
    listed: bool
    last_reviewed: date | None
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AdminProviderSummary(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    credentials: str
    npi: str | None
    published: bool
    listed: bool
    last_reviewed: date | None
    deleted_at: datetime | None
    updated_at: datetime


class AdminProviderPage(msgspec.Struct, kw_only=True):
    items: list[AdminProviderSummary]
    total: int
    page: int
    per_page: int


class RowReport(msgspec.Struct, kw_only=True):
    # The spreadsheet's row number: the header is row 1.
    row: int
    slug: str | None
    name: str
    action: Literal["create", "update", "unchanged", "error"]
    # Column -> what to fix.
    errors: dict[str, str] = msgspec.field(default_factory=dict)
    changed: list[str] = msgspec.field(default_factory=list)


class ImportReport(msgspec.Struct, kw_only=True):
    status_code: int
    detail: str
    dry_run: bool
    applied: bool
    created: int
    updated: int
    unchanged: int
    invalid: int
    rows: list[RowReport]


ProviderStatus = Literal["active", "published", "unpublished", "deleted", "all"]

# --- reading and writing one provider -----------------------------------------------------


def provider_out(provider: Provider) -> AdminProviderOut:
    """A provider loaded by `load_provider`, for admins (and for audit snapshots)."""
    assert provider.id is not None
    return AdminProviderOut(
        id=provider.id,
        slug=provider.slug,
        name=provider.name,
        credentials=provider.credentials,
        npi=provider.npi,
        bio=provider.bio,
        photo_url=provider.photo_url,
        languages=list(provider.languages),
        procedures=list(provider.procedures),
        accepting_new_patients=provider.accepting_new_patients,
        telehealth=provider.telehealth,
        conditions=sorted(c.condition_slug for c in provider.conditions),
        regions=sorted(r.region_slug for r in provider.regions),
        locations=[
            AdminLocationOut(
                clinic_name=loc.clinic_name,
                address=loc.address,
                city=loc.city,
                state=loc.state,
                zip=loc.zip,
                phone=loc.phone,
                lat=loc.lat,
                lon=loc.lon,
            )
            for loc in provider.locations
        ],
        published=provider.published,
        listed=provider.is_listed,
        last_reviewed=provider.last_reviewed,
        deleted_at=provider.deleted_at,
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


def changed_fields(before: ListingInput, after: ListingInput) -> list[str]:
    """The listing fields that differ; both sides as `normalise_listing` leaves them."""
    changed = []
    for f in fields(ListingInput):
        if f.name in ("slug", "last_reviewed"):
            continue
        old, new = getattr(before, f.name), getattr(after, f.name)
        if f.name in ("conditions", "regions"):
            old, new = sorted(old), sorted(new)
        if old != new:
            changed.append(f.name)
    return changed


def _condition_names() -> dict[str, str]:
    # Display names and the lay names a clinic writes ("Tennis elbow"); a lay name shared by two
    # conditions is left out, since picking one would be a guess.
    found: dict[str, set[str]] = {}
    for c in CONDITIONS:
        for name in (c.name, *c.synonyms):
            found.setdefault(name.casefold(), set()).add(c.slug)
    return {name: slugs.pop() for name, slugs in found.items() if len(slugs) == 1}


_CONDITION_BY_NAME = _condition_names()
_REGION_BY_NAME = {r.name.casefold(): r.slug for r in REGIONS}


def resolve_names(values: list[str], by_name: dict[str, str]) -> list[str]:
    """Slugs stay; display names ("Tennis elbow") become slugs; anything else is left for
    `validate_listing` to report by name."""
    return [by_name.get(v.strip().casefold(), v.strip()) for v in values if v.strip()]


def _location_input(loc: LocationIn) -> LocationInput:
    return LocationInput(loc.clinic_name, loc.address, loc.city, loc.state, loc.zip, loc.phone)


def _listing_from_api(data: ProviderIn, base: ListingInput) -> ListingInput:
    return replace(
        base,
        name=data.name,
        credentials=data.credentials,
        npi=data.npi,
        bio=data.bio,
        photo_url=data.photo_url,
        languages=list(data.languages),
        procedures=list(data.procedures),
        accepting_new_patients=data.accepting_new_patients,
        telehealth=data.telehealth,
        conditions=resolve_names(data.conditions, _CONDITION_BY_NAME),
        regions=resolve_names(data.regions, _REGION_BY_NAME),
        locations=[_location_input(loc) for loc in data.locations],
    )


def _listing_from_patch(data: ProviderPatch, base: ListingInput) -> ListingInput:
    changes: dict[str, Any] = {}
    for name in data.__struct_fields__:
        value = getattr(data, name)
        if value is msgspec.UNSET:
            continue
        if name == "locations":
            value = [_location_input(loc) for loc in value]
        elif name == "conditions":
            value = resolve_names(value, _CONDITION_BY_NAME)
        elif name == "regions":
            value = resolve_names(value, _REGION_BY_NAME)
        changes[name] = value
    return replace(base, **changes)


def _invalid(errors: dict[str, str]) -> ValidationException:
    return ValidationException(
        "The listing has problems: " + " ".join(f"{key}: {message}" for key, message in errors.items()),
        extra=[{"key": key, "source": "body", "message": message} for key, message in errors.items()],
    )


def _found(session: Session, slug: str) -> Provider:
    """The provider, deleted or not; 404 if there is none."""
    provider = load_provider(session, slug)
    if provider is None:
        raise NotFoundException(f"No provider '{slug}'.")
    return provider


def _editable(provider: Provider) -> Provider:
    """A deleted provider is kept for the record; it changes only by being restored."""
    if provider.deleted_at is not None:
        raise ClientException(
            f"Provider '{provider.slug}' is deleted; restore it first "
            f"(POST /api/admin/providers/{provider.slug}/restore).",
            status_code=HTTP_409_CONFLICT,
        )
    return provider


def _save(
    session: Session, actor: Admin, action: str, data: ListingInput, provider: Provider | None
) -> AdminProviderOut:
    """Save a listing with its audit entry; an edit that changes nothing writes nothing."""
    before = None if provider is None else provider_out(provider)
    if provider is not None and not changed_fields(listing_of(provider), normalise_listing(data)):
        assert before is not None
        return before
    try:
        saved = save_listing(session, data, provider)
    except InvalidListing as exc:
        raise _invalid(exc.errors) from exc
    reloaded = load_provider(session, saved.slug)
    assert reloaded is not None
    after = provider_out(reloaded)
    record_audit(session, actor, action, "provider", after.slug, before, after)
    return after


def _write(db: Database, work: Callable[[Session], AdminProviderOut]) -> AdminProviderOut:
    try:
        with db.write() as session:
            return work(session)
    except IntegrityError as exc:
        # A concurrent edit took the same NPI or slug between our check and our write.
        raise ClientException(
            "Another change got there first (the same NPI or slug). Reload and try again.",
            status_code=HTTP_409_CONFLICT,
        ) from exc


def create_provider(db: Database, actor: Admin, data: ProviderCreate) -> AdminProviderOut:
    """A new listing, unpublished until an admin publishes it."""
    base = ListingInput(name="", published=False, slug=data.slug)
    listing = _listing_from_api(data, base)
    return _write(db, lambda session: _save(session, actor, "provider.create", listing, None))


def update_provider(
    db: Database, actor: Admin, slug: str, data: ProviderIn | ProviderPatch
) -> AdminProviderOut:
    def work(session: Session) -> AdminProviderOut:
        provider = _editable(_found(session, slug))
        base = listing_of(provider)
        listing = (
            _listing_from_patch(data, base)
            if isinstance(data, ProviderPatch)
            else _listing_from_api(data, base)
        )
        return _save(session, actor, "provider.update", listing, provider)

    return _write(db, work)


def change_status(
    db: Database, actor: Admin, slug: str, action: str, change: Callable[[Provider], None]
) -> AdminProviderOut:
    """Publish, unpublish, review, delete or restore: one field set in place, audited."""

    def work(session: Session) -> AdminProviderOut:
        provider = _found(session, slug)
        before = provider_out(provider)
        change(provider)
        mark_changed(session, provider)
        session.flush()
        after = provider_out(provider)
        record_audit(session, actor, action, "provider", slug, before, after)
        return after

    return _write(db, work)


def _publish(provider: Provider) -> None:
    _editable(provider).published = True


def _unpublish(provider: Provider) -> None:
    _editable(provider).published = False


def _review(provider: Provider) -> None:
    _editable(provider).last_reviewed = datetime.now(UTC).date()


def _soft_delete(provider: Provider) -> None:
    _editable(provider).deleted_at = utcnow()


def _restore(provider: Provider) -> None:
    if provider.deleted_at is None:
        raise ClientException(f"Provider '{provider.slug}' is not deleted.", status_code=HTTP_409_CONFLICT)
    provider.deleted_at = None


# Each status change an admin can make: its audit action and the change itself. The JSON routes
# and the admin pages both go through this table.
STATUS_ACTIONS: dict[str, tuple[str, Callable[[Provider], None]]] = {
    "publish": ("provider.publish", _publish),
    "unpublish": ("provider.unpublish", _unpublish),
    "review": ("provider.review", _review),
    "delete": ("provider.delete", _soft_delete),
    "restore": ("provider.restore", _restore),
}


def get_provider(db: Database, slug: str) -> AdminProviderOut:
    with db.session() as session:
        return provider_out(_found(session, slug))


def list_providers(
    db: Database, status: ProviderStatus, q: str | None, page: int, per_page: int
) -> AdminProviderPage:
    p = Provider.__table__  # type: ignore[attr-defined]
    where = []
    if status != "all":
        where.append(p.c.deleted_at.is_not(None) if status == "deleted" else p.c.deleted_at.is_(None))
    if status == "published":
        where.append(p.c.published.is_(True))
    elif status == "unpublished":
        where.append(p.c.published.is_(False))
    if q and q.strip():
        text = q.strip().lower()
        where.append(
            or_(func.lower(p.c.name).contains(text, autoescape=True), p.c.slug == text, p.c.npi == text)
        )
    with db.session() as session:
        total = session.execute(select(func.count()).select_from(p).where(*where)).scalar_one()
        rows = session.execute(
            select(p).where(*where).order_by(p.c.name, p.c.id).limit(per_page).offset((page - 1) * per_page)
        ).mappings()
        items = [
            AdminProviderSummary(
                slug=r["slug"],
                name=r["name"],
                credentials=r["credentials"],
                npi=r["npi"],
                published=r["published"],
                listed=bool(r["published"]) and r["deleted_at"] is None,
                last_reviewed=r["last_reviewed"],
                deleted_at=r["deleted_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]
    return AdminProviderPage(items=items, total=total, page=page, per_page=per_page)


# --- CSV ----------------------------------------------------------------------------------

PROVIDER_COLUMNS = (
    "slug",
    "name",
    "credentials",
    "npi",
    "bio",
    "photo_url",
    "languages",
    "procedures",
    "accepting_new_patients",
    "telehealth",
    "published",
    "conditions",
    "regions",
)
LOCATION_COLUMNS = ("clinic_name", "address", "city", "state", "zip", "phone")
MAX_LOCATIONS = 10
LIST_COLUMNS = ("languages", "procedures", "conditions", "regions")
BOOL_COLUMNS = ("accepting_new_patients", "telehealth", "published")
TEXT_COLUMNS = ("name", "credentials", "npi", "bio", "photo_url")
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}
# Spreadsheets run a cell starting with one of these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def location_column(name: str, number: int) -> str:
    return name if number == 1 else f"{name}_{number}"


def csv_columns(locations: int) -> list[str]:
    return [*PROVIDER_COLUMNS] + [
        location_column(name, n) for n in range(1, locations + 1) for name in LOCATION_COLUMNS
    ]


ALLOWED_COLUMNS = frozenset(csv_columns(MAX_LOCATIONS))


class CsvProblem(ValueError):
    """The file as a whole cannot be read; the message says how to fix it."""


@dataclass(slots=True)
class CsvRow:
    number: int
    cells: dict[str, str]
    extra_cells: bool = False


@dataclass(slots=True)
class CsvSheet:
    columns: list[str]
    rows: list[CsvRow] = field(default_factory=list)


def _header_name(raw: str) -> str:
    return re.sub(r"[\s\-]+", "_", raw.strip().lower())


def _unescape(cell: str) -> str:
    # Export prefixes formula-looking cells with an apostrophe; take it off again.
    if cell.startswith("'") and cell[1:2] and cell[1] in "=+-@\t\r":
        return cell[1:]
    return cell


def read_csv(raw: bytes) -> CsvSheet:
    """Parse an uploaded sheet. Pure: no database."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            # Excel on Windows saves "CSV" in the ANSI code page.
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise CsvProblem("The file is not text: save the sheet as CSV UTF-8.") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise CsvProblem("The file is empty: the first row must name the columns, e.g. name,npi,zip.")
        columns = [_header_name(cell) for cell in header]
        unknown = [header[i].strip() for i, c in enumerate(columns) if c and c not in ALLOWED_COLUMNS]
        if unknown:
            raise CsvProblem(
                f"Unknown column(s): {', '.join(unknown)}. Allowed: {', '.join(csv_columns(1))}, "
                "and clinic_name_2 ... phone_2 and so on for more locations."
            )
        if "" in columns:
            raise CsvProblem(f"Column {columns.index('') + 1} has no name in the header row.")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise CsvProblem(f"Column(s) named twice: {', '.join(repeated)}.")
        if "name" not in columns:
            raise CsvProblem("The header row needs a 'name' column.")
        sheet = CsvSheet(columns=columns)
        for number, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(sheet.rows) >= MAX_CSV_ROWS:
                raise CsvProblem(f"Too many rows: import at most {MAX_CSV_ROWS} providers at a time.")
            extra = any(cell.strip() for cell in record[len(columns) :])
            cells = {c: _unescape(record[i]) if i < len(record) else "" for i, c in enumerate(columns)}
            sheet.rows.append(CsvRow(number=number, cells=cells, extra_cells=extra))
    except csv.Error as exc:
        raise CsvProblem(f"The file is not valid CSV (line {reader.line_num}): {exc}.") from exc
    return sheet


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _zip_cell(cell: str) -> str:
    text = cell.strip()
    # Spreadsheets read 02134 as a number and drop the zero: New England ZIPs come back 4 digits.
    return text.zfill(5) if re.fullmatch(r"\d{3,4}", text) else text


def listing_from_row(row: CsvRow, base: ListingInput) -> tuple[ListingInput, dict[str, str], list[int]]:
    """The listing a row describes, starting from `base` for columns the sheet lacks.

    Returns the listing, errors by column, and the location column group of each location.
    """
    cells = row.cells
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    if row.extra_cells:
        errors["row"] = "This row has more cells than the header has columns."
    for column in TEXT_COLUMNS:
        if column in cells:
            value = cells[column].strip() if column != "bio" else cells[column]
            changes[column] = (value or None) if column in ("npi", "photo_url") else value
    if changes.get("photo_url") and not re.fullmatch(r"https?://\S+", changes["photo_url"]):
        errors["photo_url"] = "A photo URL must start with https:// (or http://)."
    for column in BOOL_COLUMNS:
        if column not in cells or not cells[column].strip():
            continue
        word = cells[column].strip().lower()
        if word in _TRUE:
            changes[column] = True
        elif word in _FALSE:
            changes[column] = False
        else:
            errors[column] = f"'{cells[column]}' is not yes or no."
    for column in LIST_COLUMNS:
        if column in cells:
            values = _split(cells[column])
            if column == "conditions":
                values = resolve_names(values, _CONDITION_BY_NAME)
            elif column == "regions":
                values = resolve_names(values, _REGION_BY_NAME)
            changes[column] = values
    groups: list[int] = []
    if any(location_column(c, 1) in cells for c in LOCATION_COLUMNS):
        locations = []
        for n in range(1, MAX_LOCATIONS + 1):
            given = {
                c: cells[location_column(c, n)] for c in LOCATION_COLUMNS if location_column(c, n) in cells
            }
            if not any(v.strip() for v in given.values()):
                continue
            # Columns the sheet lacks keep what the provider has at that location (e.g. phone).
            kept = asdict(base.locations[n - 1]) if n <= len(base.locations) else {}
            group = {c: given.get(c, kept.get(c, "")) for c in LOCATION_COLUMNS}
            groups.append(n)
            group["zip"] = _zip_cell(group["zip"])
            locations.append(LocationInput(**group))
        changes["locations"] = locations
    return replace(base, **changes), errors, groups


def _column_of(error_key: str, groups: list[int]) -> str:
    """validate_listing's `locations[1].zip` is the sheet's `zip_3` if the second location came
    from the third group of location columns."""
    found = re.fullmatch(r"locations\[(\d+)\]\.(\w+)", error_key)
    if found:
        index, name = int(found.group(1)), found.group(2)
        return location_column(name, groups[index] if index < len(groups) else index + 1)
    return "clinic_name" if error_key == "locations" else error_key


@dataclass(slots=True)
class PlannedRow:
    report: RowReport
    listing: ListingInput | None = None
    provider: Provider | None = None


def plan_import(session: Session, sheet: CsvSheet) -> list[PlannedRow]:
    """What each row would do, with every problem found; reads only."""
    planned: list[PlannedRow] = []
    seen_slugs: dict[str, int] = {}
    seen_npis: dict[str, int] = {}
    for row in sheet.rows:
        slug = row.cells.get("slug", "").strip() or None
        npi = row.cells.get("npi", "").strip() or None
        report = RowReport(row=row.number, slug=slug, name=row.cells.get("name", "").strip(), action="error")
        provider = _row_provider(session, slug, npi)
        errors: dict[str, str] = {}
        if slug and not re.fullmatch(SLUG_PATTERN, slug):
            errors["slug"] = "A slug is lower-case letters, digits and single hyphens, like jane-doe-md."
        elif slug and slug in seen_slugs:
            errors["slug"] = f"Slug '{slug}' is also on row {seen_slugs[slug]}."
        elif provider is not None and provider.deleted_at is not None:
            errors["slug"] = f"Provider '{provider.slug}' is deleted; restore it before importing it."
        if npi and npi in seen_npis:
            errors["npi"] = f"NPI {npi} is also on row {seen_npis[npi]}."
        if slug:
            seen_slugs.setdefault(slug, row.number)
        if npi:
            seen_npis.setdefault(npi, row.number)
        base = (
            listing_of(provider)
            if provider is not None
            else ListingInput(name="", published=False, slug=slug)
        )
        listing, row_errors, groups = listing_from_row(row, base)
        errors = {**row_errors, **errors}
        if not errors:
            checked = check_listing(session, listing, None if provider is None else provider.id)
            errors = {_column_of(key, groups): message for key, message in checked.items()}
        report.errors = errors
        if errors:
            planned.append(PlannedRow(report))
            continue
        report.slug = None if provider is None else provider.slug
        if report.slug is None and slug:
            report.slug = slug
        empty = ListingInput(name="", languages=[], published=False)
        report.changed = changed_fields(base if provider else empty, normalise_listing(listing))
        report.action = "create" if provider is None else ("update" if report.changed else "unchanged")
        planned.append(PlannedRow(report, listing, provider))
    return planned


def _row_provider(session: Session, slug: str | None, npi: str | None) -> Provider | None:
    if slug:
        return load_provider(session, slug)
    if npi:
        p = Provider.__table__  # type: ignore[attr-defined]
        found = session.execute(select(p.c.slug).where(p.c.npi == npi, p.c.deleted_at.is_(None))).first()
        if found is not None:
            return load_provider(session, found.slug)
    return None


class ImportRejected(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.detail)
        self.report = report


def _report(planned: list[PlannedRow], dry_run: bool, applied: bool) -> ImportReport:
    rows = [p.report for p in planned]
    count = {a: sum(1 for r in rows if r.action == a) for a in ("create", "update", "unchanged", "error")}
    if count["error"]:
        detail = (
            f"{count['error']} of {len(rows)} rows have errors; nothing was written. Fix them and try again."
        )
    elif applied:
        detail = (
            f"Imported: {count['create']} added, {count['update']} updated, {count['unchanged']} unchanged."
        )
    else:
        detail = (
            f"Dry run, nothing written: {count['create']} would be added, {count['update']} updated, "
            f"{count['unchanged']} unchanged."
        )
    return ImportReport(
        status_code=HTTP_400_BAD_REQUEST if count["error"] and not dry_run else HTTP_200_OK,
        detail=detail,
        dry_run=dry_run,
        applied=applied,
        created=count["create"],
        updated=count["update"],
        unchanged=count["unchanged"],
        invalid=count["error"],
        rows=rows,
    )


def import_providers(db: Database, actor: Admin, raw: bytes, dry_run: bool) -> ImportReport:
    """Dry run: report what each row would do, write nothing. Apply: all rows in one transaction,
    or none of them if any row has an error (ImportRejected carries the report)."""
    try:
        sheet = read_csv(raw)
    except CsvProblem as exc:
        raise ValidationException(str(exc)) from exc
    if not sheet.rows:
        raise ValidationException("The file has a header row but no providers.")
    if dry_run:
        with db.session() as session:
            return _report(plan_import(session, sheet), dry_run=True, applied=False)
    try:
        with db.write() as session:
            planned = plan_import(session, sheet)
            if any(p.report.action == "error" for p in planned):
                raise ImportRejected(_report(planned, dry_run=False, applied=False))
            for p in planned:
                if p.report.action not in ("create", "update"):
                    continue
                assert p.listing is not None
                p.report.slug = _save(session, actor, "provider.import", p.listing, p.provider).slug
    except IntegrityError as exc:
        raise ClientException(
            "Another change got there first (the same NPI or slug); nothing was written. Try again.",
            status_code=HTTP_409_CONFLICT,
        ) from exc
    return _report(planned, dry_run=False, applied=True)


def _escape(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def export_csv(db: Database) -> bytes:
    """Every provider not deleted, in the import format; UTF-8 with a BOM so Excel reads accents."""
    with db.session() as session:
        providers = (
            session.execute(
                select(Provider)
                .where(col(Provider.deleted_at).is_(None))
                .order_by(col(Provider.name), col(Provider.id))
                .options(
                    selectinload(Provider.locations),  # type: ignore[arg-type]
                    selectinload(Provider.conditions),  # type: ignore[arg-type]
                    selectinload(Provider.regions),  # type: ignore[arg-type]
                )
            )
            .scalars()
            .all()
        )
        listings = [listing_of(p) for p in providers]
    groups = max([1, *(len(listing.locations) for listing in listings)])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_columns(groups))
    for listing in listings:
        cells = [
            listing.slug or "",
            listing.name,
            listing.credentials,
            listing.npi or "",
            listing.bio,
            listing.photo_url or "",
            "; ".join(listing.languages),
            "; ".join(listing.procedures),
            "yes" if listing.accepting_new_patients else "no",
            "yes" if listing.telehealth else "no",
            "yes" if listing.published else "no",
            "; ".join(listing.conditions),
            "; ".join(listing.regions),
        ]
        for n in range(groups):
            if n < len(listing.locations):
                loc = listing.locations[n]
                cells += [loc.clinic_name, loc.address, loc.city, loc.state, loc.zip, loc.phone]
            else:
                cells += [""] * len(LOCATION_COLUMNS)
        writer.writerow([_escape(cell) for cell in cells])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


async def _upload(request: Request[Any, Any, Any]) -> bytes:
    """The CSV from a multipart form (any file field) or a text/csv body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        for value in form.values():
            if isinstance(value, UploadFile):
                return await value.read()
        raise ValidationException("Attach the CSV file to the form (a file field, e.g. `file`).")
    return await request.body()


# --- routes -------------------------------------------------------------------------------


class ProviderAdminController(Controller):
    path = "/api/admin/providers"
    tags = ["admin"]
    dependencies = {"db": Provide(provide_db, sync_to_thread=False)}
    # Admin answers are not for caches.
    cache_control = CacheControlHeader(no_store=True)

    @get("", operation_id="adminListProviders", sync_to_thread=True)
    def list_providers(
        self,
        db: NamedDependency[Database],
        status: Annotated[
            ProviderStatus, QueryParameter(description="active = not deleted (default); all includes deleted")
        ] = "active",
        q: Annotated[str | None, QueryParameter(max_length=100, description="name, slug or NPI")] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> AdminProviderPage:
        """All providers, published or not, by name."""
        return list_providers(db, status, q, page, per_page)

    @post("", operation_id="adminCreateProvider", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create(
        self,
        data: JSONBody[ProviderCreate],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminProviderOut:
        """Add a provider (unpublished until published)."""
        return create_provider(db, current_admin, data)

    @get("/export.csv", operation_id="adminExportProviders", media_type="text/csv", sync_to_thread=True)
    def export(self, db: NamedDependency[Database]) -> Response[bytes]:
        """Every provider not deleted, as CSV in the import format."""
        filename = f"providers-{datetime.now(UTC).date().isoformat()}.csv"
        return Response(
            export_csv(db),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @post(
        "/import",
        operation_id="adminImportProviders",
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_CSV_BYTES,
    )
    async def import_csv(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        dry_run: Annotated[
            bool, QueryParameter(description="true: report only (default); false: apply all rows or none")
        ] = True,
    ) -> Response[ImportReport]:
        """Import providers from CSV (multipart file or text/csv body); see the module docs for columns."""
        raw = await _upload(request)
        try:
            report = await anyio.to_thread.run_sync(import_providers, db, current_admin, raw, dry_run)
        except ImportRejected as exc:
            report = exc.report
        return Response(report, status_code=report.status_code)

    @get("/{slug:str}", operation_id="adminGetProvider", sync_to_thread=True)
    def get_one(self, slug: FromPath[str], db: NamedDependency[Database]) -> AdminProviderOut:
        """One provider, whatever its status."""
        return get_provider(db, slug)

    @put("/{slug:str}", operation_id="adminReplaceProvider", sync_to_thread=True)
    def replace(
        self,
        slug: FromPath[str],
        data: JSONBody[ProviderIn],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminProviderOut:
        """Replace a provider's listing (status fields are left alone)."""
        return update_provider(db, current_admin, slug, data)

    @patch("/{slug:str}", operation_id="adminUpdateProvider", sync_to_thread=True)
    def update(
        self,
        slug: FromPath[str],
        data: JSONBody[ProviderPatch],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> AdminProviderOut:
        """Change some fields of a provider's listing."""
        return update_provider(db, current_admin, slug, data)

    @post(
        "/{slug:str}/publish",
        operation_id="adminPublishProvider",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def publish(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminProviderOut:
        """Show the provider in public search."""
        return change_status(db, current_admin, slug, *STATUS_ACTIONS["publish"])

    @post(
        "/{slug:str}/unpublish",
        operation_id="adminUnpublishProvider",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def unpublish(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminProviderOut:
        """Hide the provider from public search."""
        return change_status(db, current_admin, slug, *STATUS_ACTIONS["unpublish"])

    @post(
        "/{slug:str}/review", operation_id="adminReviewProvider", status_code=HTTP_200_OK, sync_to_thread=True
    )
    def review(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminProviderOut:
        """Record that the listing was checked today (sets last_reviewed)."""
        return change_status(db, current_admin, slug, *STATUS_ACTIONS["review"])

    @delete("/{slug:str}", operation_id="adminDeleteProvider", status_code=HTTP_200_OK, sync_to_thread=True)
    def remove(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminProviderOut:
        """Soft-delete: hidden everywhere, kept for the record, restorable."""
        return change_status(db, current_admin, slug, *STATUS_ACTIONS["delete"])

    @post(
        "/{slug:str}/restore",
        operation_id="adminRestoreProvider",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def restore(
        self, slug: FromPath[str], db: NamedDependency[Database], current_admin: NamedDependency[Admin]
    ) -> AdminProviderOut:
        """Undo a delete; the provider comes back published or not, as before."""
        return change_status(db, current_admin, slug, *STATUS_ACTIONS["restore"])
