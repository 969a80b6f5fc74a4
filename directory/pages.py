"""The directory as people use it in a browser: home ("What hurts?"), results, provider profiles.

The pages call the same `search_providers` service as `GET /api/providers`, so a page and the API
never disagree. Forms are plain GETs, so everything works with JavaScript off; web/static/site.js
only adds suggestions as the patient types.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from core.settings import Settings
from directory.geo import UnknownZip
from directory.routes import provide_disclaimer, provide_index
from directory.schemas import ProviderDetail, ProviderPage, provider_detail
from directory.search import SearchIndex
from directory.service import ProviderSearch, search_providers
from directory.taxonomy import REGION_BY_SLUG, REGIONS, conditions_in
from web.pages import PAGE_EXCEPTION_HANDLERS, PUBLIC_PAGE

PER_PAGE = 10
RADII = (10, 25, 50, 100, 250, 500)


@dataclass(frozen=True, slots=True)
class WebinarTeaser:
    """An upcoming webinar a provider presents, as the profile page lists it."""

    title: str
    url: str
    # Already in the session's display zone, e.g. "Tuesday, March 3 at 6:00 PM EST".
    when: str


# The hook for webinars on provider profiles. booking (which may call directory, never the reverse)
# sets `app.state[PRESENTER_WEBINARS]` to a function from a provider slug to the upcoming webinars
# that provider presents. It is called in a worker thread, so it may read the database.
PRESENTER_WEBINARS = "presenter_webinars"
PresenterWebinars = Callable[[str], Sequence[WebinarTeaser]]


def provide_presenter_webinars(state: State) -> PresenterWebinars | None:
    finder: PresenterWebinars | None = state.get(PRESENTER_WEBINARS)
    return finder


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


@dataclass(frozen=True, slots=True)
class SearchForm:
    """What the search form sent, as typed: it is shown back to the patient unchanged."""

    condition: str = ""
    region: str = ""
    near: str = ""
    radius: int = 50
    accepting: bool = False
    telehealth: bool = False
    language: str = ""
    page: int = 1

    def to_search(self) -> ProviderSearch:
        return ProviderSearch(
            condition=self.condition.strip() or None,
            region=self.region or None,
            near=self.near.strip() or None,
            radius=self.radius,
            accepting=True if self.accepting else None,
            telehealth=True if self.telehealth else None,
            language=self.language or None,
            page=self.page,
            per_page=PER_PAGE,
        )

    def url(self, **changes: Any) -> str:
        """This search's results URL with some fields changed; empty fields are left out."""
        form = replace(self, **changes)
        params: list[tuple[str, str]] = [
            (name, value)
            for name, value in (
                ("condition", form.condition.strip()),
                ("region", form.region),
                ("near", form.near.strip()),
            )
            if value
        ]
        if form.radius != 50:
            params.append(("radius", str(form.radius)))
        params += [(name, "true") for name in ("accepting", "telehealth") if getattr(form, name)]
        if form.language:
            params.append(("language", form.language))
        if form.page != 1:
            params.append(("page", str(form.page)))
        return "/providers" + (f"?{urlencode(params)}" if params else "")

    @property
    def filtered(self) -> bool:
        return self.radius != 50 or self.accepting or self.telehealth or bool(self.language)


def search_heading(form: SearchForm) -> str:
    """'Doctors for “tenis elbow” near 10016', in the patient's own words."""
    parts = ["Doctors"]
    if form.condition.strip():
        parts.append(f"for \u201c{form.condition.strip()}\u201d")
    if form.region in REGION_BY_SLUG:
        parts.append(f"who treat the {REGION_BY_SLUG[form.region].name.lower()}")
    if form.near.strip():
        parts.append(f"near {form.near.strip()}")
    return " ".join(parts) if len(parts) > 1 else "All doctors"


def provider_json_ld(detail: ProviderDetail, page_url: str) -> dict[str, Any]:
    """schema.org Physician for search engines: specialty, new patients, addresses, phones."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Physician",
        "name": f"{detail.name}, {detail.credentials}" if detail.credentials else detail.name,
        "url": page_url,
        # Every provider in the network treats bones, joints and spine; schema.org's enumeration.
        "medicalSpecialty": "https://schema.org/Musculoskeletal",
        "isAcceptingNewPatients": detail.accepting_new_patients,
        "address": [
            {
                "@type": "PostalAddress",
                "name": loc.clinic_name,
                "streetAddress": loc.address,
                "addressLocality": loc.city,
                "addressRegion": loc.state,
                "postalCode": loc.zip,
                "addressCountry": "US",
            }
            for loc in detail.locations
        ],
        "telephone": list(dict.fromkeys(loc.phone for loc in detail.locations if loc.phone)),
        "knowsLanguage": detail.languages,
        "availableService": [{"@type": "MedicalProcedure", "name": p} for p in detail.procedures],
    }
    if detail.bio:
        data["description"] = detail.bio
    if detail.npi:
        data["usNPI"] = detail.npi
    return data


class DirectoryPages(Controller):
    path = "/"
    tags = ["pages"]
    include_in_schema = False
    cache_control = PUBLIC_PAGE
    exception_handlers = PAGE_EXCEPTION_HANDLERS
    dependencies = {
        "index": Provide(provide_index, sync_to_thread=False),
        "disclaimer": Provide(provide_disclaimer, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
        "presenter_webinars": Provide(provide_presenter_webinars, sync_to_thread=False),
    }

    @get("/", operation_id="homePage", name="directory:home")
    async def home(self) -> Template:
        """Home: 'What hurts?', the body regions, a ZIP code."""
        return Template("directory/home.html", context={"regions": REGIONS, "form": SearchForm()})

    @get("/providers", operation_id="providerResultsPage", name="directory:results")
    async def results(
        self,
        index: NamedDependency[SearchIndex],
        disclaimer: NamedDependency[str],
        condition: Annotated[str, QueryParameter(max_length=200)] = "",
        region: Annotated[str, QueryParameter(max_length=40)] = "",
        near: Annotated[str, QueryParameter(max_length=10)] = "",
        radius: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        accepting: FromQuery[bool] = False,
        telehealth: FromQuery[bool] = False,
        language: Annotated[str, QueryParameter(max_length=40)] = "",
        page: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1,
    ) -> Template:
        """Search results: distance, why each provider matched, filters, paging, the disclaimer."""
        if region and region not in REGION_BY_SLUG:
            raise ValidationException(f"We do not know the body area \u201c{region}\u201d.")
        form = SearchForm(condition, region, near, radius, accepting, telehealth, language.lower(), page)
        errors: list[tuple[str, str]] = []
        result: ProviderPage | None = None
        try:
            result = search_providers(index, form.to_search(), disclaimer)
        except UnknownZip as exc:
            errors.append(("near", f"Check your ZIP code: {exc}"))
        languages = index.known_languages()
        if form.language and form.language not in languages:
            languages = sorted([*languages, form.language])
        pages = max(1, math.ceil(result.total / PER_PAGE)) if result else 1
        return Template(
            "directory/results.html",
            context={
                "form": form,
                "heading": search_heading(form),
                "result": result,
                "errors": errors,
                "pages": pages,
                "first_shown": (page - 1) * PER_PAGE + 1,
                "radii": sorted({*RADII, radius}),
                "languages": languages,
                "regions": REGIONS,
                "disclaimer": disclaimer,
            },
            status_code=400 if errors else 200,
        )

    @get("/providers/{slug:str}", operation_id="providerProfilePage", name="directory:profile")
    async def profile(
        self,
        slug: FromPath[str],
        index: NamedDependency[SearchIndex],
        disclaimer: NamedDependency[str],
        settings: NamedDependency[Settings],
        presenter_webinars: NamedDependency[PresenterWebinars | None],
    ) -> Template:
        """A provider's profile: locations with tap-to-call phones, conditions, webinars, JSON-LD."""
        doc = index.get(slug)
        if doc is None:
            raise NotFoundException(
                "That doctor is not in the directory any more, or the link is wrong. "
                "Search again to find a doctor near you."
            )
        detail = provider_detail(doc, disclaimer)
        webinars: Sequence[WebinarTeaser] = ()
        if presenter_webinars is not None:
            webinars = await anyio.to_thread.run_sync(presenter_webinars, slug)
        # Under each body area, in the order the clinic's own page lists them.
        treated = {c.slug: c for c in detail.conditions_treated}
        conditions_by_region = [
            (region, [treated[c.slug] for c in conditions_in(region.slug) if c.slug in treated])
            for region in REGIONS
        ]
        return Template(
            "directory/profile.html",
            context={
                "provider": detail,
                "conditions_by_region": [(r, cs) for r, cs in conditions_by_region if cs],
                "regions": [REGION_BY_SLUG[r] for r in detail.regions if r in REGION_BY_SLUG],
                "webinars": webinars,
                "json_ld": provider_json_ld(detail, f"{settings.base_url}/providers/{detail.slug}"),
                "disclaimer": disclaimer,
            },
        )
