"""Provider admin pages: the list, the add/edit form, publishing, CSV import (dry run, then apply)
and CSV export, for admins in a browser with or without JavaScript.

Every change goes through the same functions as the JSON API in directory/admin.py (validation,
CSV parsing, audit entries, the directory version that brings changes to public search within
`directory_refresh_seconds`); these pages only turn forms into their inputs and their errors into
messages beside the fields. The app's admin guard covers /admin (sign-in and the `_csrf` field);
forms post, then redirect to a page that says what happened (post/redirect/get).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST

from accounts.guards import provide_db
from accounts.pages import ADMIN_PAGE_EXCEPTION_HANDLERS, form_text, safe_next
from accounts.service import Admin
from core.db import Database
from directory.admin import (
    MAX_CSV_BYTES,
    SLUG_PATTERN,
    STATUS_ACTIONS,
    AdminProviderOut,
    ImportRejected,
    ImportReport,
    ProviderCreate,
    ProviderIn,
    ProviderStatus,
    change_status,
    create_provider,
    export_csv,
    get_provider,
    import_providers,
    list_providers,
    update_provider,
)
from directory.taxonomy import REGIONS, conditions_in

PATH = "/admin/providers"
PER_PAGE = 50
MAX_LOCATIONS = 20  # ProviderIn's bound
STATUS_CHOICES: dict[str, str] = {
    "active": "All but deleted",
    "published": "Published",
    "unpublished": "Not published",
    "deleted": "Deleted",
    "all": "All, deleted too",
}
# `?done=` after a redirect says what happened; only these words, so a link cannot make a page say
# anything else.
NOTICES = {
    "created": "Provider added. It is not in public search until you publish it.",
    "saved": "Saved. Public search shows the change within a second.",
    "publish": "Published: the provider is in public search.",
    "unpublish": "Unpublished: the provider is no longer in public search.",
    "review": "Marked as reviewed today.",
    "delete": "Deleted: hidden everywhere. You can restore it.",
    "restore": "Restored.",
}
Errors = list[tuple[str, str]]


# --- the edit form ----------------------------------------------------------------------------


@dataclass(slots=True)
class LocationForm:
    clinic_name: str = ""
    address: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    phone: str = ""
    remove: bool = False

    @property
    def blank(self) -> bool:
        return not any(
            v.strip() for v in (self.clinic_name, self.address, self.city, self.state, self.zip, self.phone)
        )


LOCATION_FIELDS = ("clinic_name", "address", "city", "state", "zip", "phone")
LOCATION_LIMITS = {"clinic_name": 200, "address": 300, "city": 100, "state": 2, "zip": 10, "phone": 30}


@dataclass(slots=True)
class ProviderForm:
    """The provider form as typed, so it comes back unchanged beside its errors."""

    name: str = ""
    credentials: str = ""
    npi: str = ""
    bio: str = ""
    photo_url: str = ""
    languages: str = "English"
    procedures: str = ""
    accepting_new_patients: bool = True
    telehealth: bool = False
    conditions: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    locations: list[LocationForm] = field(default_factory=list)

    @classmethod
    def of(cls, provider: AdminProviderOut) -> ProviderForm:
        return cls(
            name=provider.name,
            credentials=provider.credentials,
            npi=provider.npi or "",
            bio=provider.bio,
            photo_url=provider.photo_url or "",
            languages=", ".join(provider.languages),
            procedures="\n".join(provider.procedures),
            accepting_new_patients=provider.accepting_new_patients,
            telehealth=provider.telehealth,
            conditions=list(provider.conditions),
            regions=list(provider.regions),
            locations=[
                LocationForm(loc.clinic_name, loc.address, loc.city, loc.state, loc.zip, loc.phone)
                for loc in provider.locations
            ],
        )

    @classmethod
    def parse(cls, form: Any) -> ProviderForm:
        """From the posted form; location groups left blank are dropped."""
        locations = []
        for n in range(MAX_LOCATIONS + 1):
            values = {
                name: form_text(form, f"loc-{n}-{name}", LOCATION_LIMITS[name] * 2)
                for name in LOCATION_FIELDS
            }
            location = LocationForm(**values, remove=form.get(f"loc-{n}-remove") == "true")
            if not location.blank:
                locations.append(location)
        return cls(
            name=form_text(form, "name", 400),
            credentials=form_text(form, "credentials", 120),
            npi=form_text(form, "npi", 20).strip(),
            bio=form_text(form, "bio", 10_000),
            photo_url=form_text(form, "photo_url", 1000).strip(),
            languages=form_text(form, "languages", 2000),
            procedures=form_text(form, "procedures", 5000),
            accepting_new_patients=form.get("accepting_new_patients") == "true",
            telehealth=form.get("telehealth") == "true",
            conditions=[v for v in form.getall("conditions", []) if isinstance(v, str)][:200],
            regions=[v for v in form.getall("regions", []) if isinstance(v, str)][:40],
            locations=locations,
        )

    def kept_locations(self) -> list[int]:
        """Positions (in `locations`) of the locations to save: the ones not marked for removal."""
        return [n for n, loc in enumerate(self.locations) if not loc.remove]

    def to_input(self) -> dict[str, Any]:
        """The JSON the API would get for this form (converted to ProviderIn, bounds and all)."""
        return {
            "name": self.name,
            "credentials": self.credentials,
            "npi": self.npi or None,
            "bio": self.bio,
            "photo_url": self.photo_url or None,
            "languages": [p.strip() for p in self.languages.replace(";", ",").split(",") if p.strip()],
            "procedures": [p.strip() for p in self.procedures.splitlines() if p.strip()],
            "accepting_new_patients": self.accepting_new_patients,
            "telehealth": self.telehealth,
            "conditions": self.conditions,
            "regions": self.regions,
            "locations": [
                {name: getattr(self.locations[n], name).strip() for name in LOCATION_FIELDS}
                for n in self.kept_locations()
            ],
        }


def _field_id(key: str, form: ProviderForm) -> str:
    """The form field an API error key is about: `locations[1].zip` -> the second kept location."""
    found = re.fullmatch(r"locations\[(\d+)\](?:\.(\w+))?", key)
    if found:
        kept = form.kept_locations()
        index = int(found.group(1))
        position = kept[index] if index < len(kept) else len(form.locations)
        return f"loc-{position}-{found.group(2) or 'clinic_name'}"
    if key == "locations":
        # "A provider needs at least one location": the empty group at the end of the form.
        return f"loc-{len(form.locations)}-clinic_name"
    return key if key in _FIELD_IDS else "name"


_FIELD_IDS = frozenset(
    {"name", "credentials", "npi", "bio", "photo_url", "languages", "procedures", "conditions", "regions"}
)


def _bounds_error(exc: msgspec.ValidationError, form: ProviderForm) -> tuple[str, str]:
    """msgspec's first complaint ("Expected `str` of length <= 200 - at `$.name`") in plain words."""
    text = str(exc)
    found = re.search(r" - at `\$\.(\w+)(\[\d+\])?(?:\.(\w+))?`$", text)
    if found is None:
        return "name", text
    column, index, sub = found.groups()
    key = f"{column}{index}.{sub}" if column == "locations" and index and sub else column
    problem = text[: found.start()]
    longest = re.search(r"length <= (\d+)", problem)
    if column == "photo_url":
        message = "A photo URL must start with https:// (or http://) and have no spaces."
    elif longest and "array" in problem:
        message = f"At most {longest.group(1)} {column.replace('_', ' ')}, please."
    elif longest:
        message = f"Too long: use at most {longest.group(1)} characters."
    else:
        message = problem
    return _field_id(key, form), message


def _problems(exc: msgspec.ValidationError | ClientException, form: ProviderForm) -> Errors:
    """What a failed save says, beside the fields it is about."""
    if isinstance(exc, msgspec.ValidationError):
        return [_bounds_error(exc, form)]
    # validate_listing's errors by field (directory/admin.py puts them in `extra`); a 409 has none.
    extra = exc.extra if isinstance(exc, ValidationException) and isinstance(exc.extra, list) else []
    errors = [
        (_field_id(str(item.get("key", "")), form), str(item.get("message", "")))
        for item in extra
        if isinstance(item, dict)
    ]
    return errors or [("name", str(exc.detail))]


def with_notice(url: str, done: str, slug: str) -> str:
    """`url` with `done` and `slug` set in its query (replacing earlier ones)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("done", "slug")]
    query += [("done", done), ("slug", slug)]
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def _form_context(
    admin: Admin,
    form: ProviderForm,
    errors: Errors,
    provider: AdminProviderOut | None,
    notice: str | None = None,
) -> dict[str, Any]:
    selected = set(form.conditions)
    return {
        "admin": admin,
        "form": form,
        "errors": errors,
        "provider": provider,
        "notice": notice,
        "regions": REGIONS,
        "conditions_by_region": [(region, conditions_in(region.slug)) for region in REGIONS],
        "selected_conditions": selected,
        "selected_regions": set(form.regions),
        # The filled-in locations, then one empty group for another.
        "location_groups": [*form.locations, LocationForm()],
        "action": f"{PATH}/{provider.slug}/edit" if provider else f"{PATH}/new",
    }


# --- import -----------------------------------------------------------------------------------


def _import_context(
    admin: Admin, report: ImportReport | None, raw: bytes, filename: str, errors: Errors
) -> dict[str, Any]:
    return {
        "admin": admin,
        "report": report,
        "errors": errors,
        "filename": filename,
        # The file goes back with "Apply" exactly as uploaded (base64 keeps every byte and encoding).
        "content": base64.b64encode(raw).decode("ascii") if report and report.dry_run else "",
        "can_apply": bool(
            report and report.dry_run and not report.invalid and (report.created or report.updated)
        ),
        "max_mb": MAX_CSV_BYTES // (1024 * 1024),
    }


async def _uploaded(form: Any) -> tuple[bytes, str]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return b"", ""
    return await upload.read(), upload.filename[:200]


# --- routes -----------------------------------------------------------------------------------


class ProviderAdminPages(Controller):
    path = PATH
    tags = ["admin pages"]
    include_in_schema = False
    exception_handlers = ADMIN_PAGE_EXCEPTION_HANDLERS
    dependencies = {"db": Provide(provide_db, sync_to_thread=False)}

    @get("", operation_id="adminProvidersPage", name="admin:providers", sync_to_thread=True)
    def providers(
        self,
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        q: Annotated[str, QueryParameter(max_length=100)] = "",
        status: Annotated[ProviderStatus, QueryParameter()] = "active",
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        done: Annotated[str, QueryParameter(max_length=20)] = "",
        slug: Annotated[str, QueryParameter(max_length=120)] = "",
    ) -> Template:
        """Every provider, published or not: search, status, last reviewed, and the actions."""
        result = list_providers(db, status, q or None, page, PER_PAGE)
        pages = max(1, -(-result.total // PER_PAGE))

        def page_url(number: int) -> str:
            return f"{PATH}?{urlencode({'q': q, 'status': status, 'page': number})}"

        return Template(
            "directory/admin_providers.html",
            context={
                "admin": current_admin,
                "result": result,
                "q": q,
                "status": status,
                "statuses": STATUS_CHOICES,
                # Where the row buttons come back to, with the same search and page.
                "here": page_url(page),
                "pages": pages,
                "prev_url": page_url(page - 1) if page > 1 else None,
                "next_url": page_url(page + 1) if page < pages else None,
                "notice": NOTICES.get(done),
                "done": done,
                "notice_slug": slug if re.fullmatch(SLUG_PATTERN, slug) else "",
            },
        )

    @get("/new", operation_id="adminNewProviderPage", sync_to_thread=False)
    def new_form(self, current_admin: NamedDependency[Admin]) -> Template:
        """An empty provider form."""
        return Template(
            "directory/admin_provider_form.html",
            context=_form_context(current_admin, ProviderForm(), [], None),
        )

    @post("/new", operation_id="adminCreateProviderSubmit")
    async def create(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Add a provider (unpublished) and open its edit page; or show the form again with its errors."""
        form = ProviderForm.parse(await request.form())
        try:
            data = msgspec.convert(form.to_input(), ProviderCreate)
            saved = await anyio.to_thread.run_sync(create_provider, db, current_admin, data)
        except (msgspec.ValidationError, ClientException) as exc:
            return _form_again(current_admin, form, _problems(exc, form), None)
        return Redirect(
            f"{PATH}/{saved.slug}/edit?done=created&slug={saved.slug}", status_code=HTTP_303_SEE_OTHER
        )

    @get("/export.csv", operation_id="adminExportProvidersFile", media_type="text/csv", sync_to_thread=True)
    def export(self, db: NamedDependency[Database]) -> Response[bytes]:
        """Every provider not deleted, in the import format."""
        filename = f"providers-{datetime.now(UTC).date().isoformat()}.csv"
        return Response(
            export_csv(db),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @get("/import", operation_id="adminImportProvidersPage", sync_to_thread=False)
    def import_form(self, current_admin: NamedDependency[Admin]) -> Template:
        """Upload a CSV; nothing is written until the dry-run report is approved."""
        return Template(
            "directory/admin_import.html", context=_import_context(current_admin, None, b"", "", [])
        )

    @post("/import", operation_id="adminImportDryRunSubmit", request_max_body_size=MAX_CSV_BYTES + 65_536)
    async def import_dry_run(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Template:
        """Dry run: what each row would do, with every problem; writes nothing."""
        raw, filename = await _uploaded(await request.form())
        if not filename:
            return _import_again(current_admin, [("file", "Choose a CSV file to upload.")])
        try:
            report = await anyio.to_thread.run_sync(import_providers, db, current_admin, raw, True)
        except ValidationException as exc:
            return _import_again(current_admin, [("file", str(exc.detail))], filename)
        return Template(
            "directory/admin_import.html", context=_import_context(current_admin, report, raw, filename, [])
        )

    @post(
        "/import/apply",
        operation_id="adminImportApplySubmit",
        # The same file again, base64 in a multipart field: a third bigger.
        request_max_body_size=MAX_CSV_BYTES * 4 // 3 + 65_536,
    )
    async def import_apply(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Template:
        """Apply the file the dry run showed: every row, or none if any row now has an error."""
        form = await request.form()
        filename = form_text(form, "filename", 200)
        try:
            raw = base64.b64decode(form_text(form, "content", MAX_CSV_BYTES * 2), validate=True)
        except binascii.Error:
            raw = b""
        if not raw:
            return _import_again(current_admin, [("file", "The file did not come through; upload it again.")])
        try:
            report = await anyio.to_thread.run_sync(import_providers, db, current_admin, raw, False)
        except ImportRejected as exc:
            report = exc.report
        except ValidationException as exc:
            return _import_again(current_admin, [("file", str(exc.detail))], filename)
        except ClientException as exc:
            return _import_again(current_admin, [("file", str(exc.detail))], filename)
        return Template(
            "directory/admin_import.html",
            context=_import_context(current_admin, report, raw, filename, []),
            status_code=report.status_code,
        )

    @get("/{slug:str}/edit", operation_id="adminEditProviderPage", sync_to_thread=True)
    def edit_form(
        self,
        slug: FromPath[str],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
        done: FromQuery[str] = "",
    ) -> Template:
        """A provider's form, with its status and the buttons to change it."""
        provider = get_provider(db, slug)
        return Template(
            "directory/admin_provider_form.html",
            context=_form_context(current_admin, ProviderForm.of(provider), [], provider, NOTICES.get(done)),
        )

    @post("/{slug:str}/edit", operation_id="adminEditProviderSubmit")
    async def edit(
        self,
        slug: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Response[Any]:
        """Save the listing (status stays as it is); or show the form again with its errors."""
        form = ProviderForm.parse(await request.form())
        try:
            data = msgspec.convert(form.to_input(), ProviderIn)
            await anyio.to_thread.run_sync(update_provider, db, current_admin, slug, data)
        except NotFoundException:
            raise
        except (msgspec.ValidationError, ClientException) as exc:
            provider = await anyio.to_thread.run_sync(get_provider, db, slug)
            return _form_again(current_admin, form, _problems(exc, form), provider)
        return Redirect(f"{PATH}/{slug}/edit?done=saved", status_code=HTTP_303_SEE_OTHER)

    @post("/{slug:str}/{action:str}", operation_id="adminProviderStatusSubmit")
    async def change(
        self,
        slug: FromPath[str],
        action: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        current_admin: NamedDependency[Admin],
    ) -> Redirect:
        """Publish, unpublish, mark reviewed, delete or restore; then back to where the button was."""
        if action not in STATUS_ACTIONS:
            raise NotFoundException(f"There is no '{action}' for providers.")
        audit_action, change = STATUS_ACTIONS[action]
        back = safe_next(form_text(await request.form(), "back", 2000) or PATH)
        await anyio.to_thread.run_sync(change_status, db, current_admin, slug, audit_action, change)
        return Redirect(with_notice(back, action, slug), status_code=HTTP_303_SEE_OTHER)


def _form_again(
    admin: Admin, form: ProviderForm, errors: Errors, provider: AdminProviderOut | None
) -> Template:
    return Template(
        "directory/admin_provider_form.html",
        context=_form_context(admin, form, errors, provider),
        status_code=HTTP_400_BAD_REQUEST,
    )


def _import_again(admin: Admin, errors: Errors, filename: str = "") -> Template:
    return Template(
        "directory/admin_import.html",
        context=_import_context(admin, None, b"", filename, errors),
        status_code=HTTP_400_BAD_REQUEST,
    )
