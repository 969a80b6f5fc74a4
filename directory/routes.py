"""Public directory API: regions, conditions, provider search and profiles."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from directory.geo import UnknownZip
from directory.matching import match_conditions
from directory.schemas import (
    ConditionMatchOut,
    ConditionSearch,
    ProviderDetail,
    ProviderPage,
    RegionOut,
    condition_out,
    provider_detail,
    regions_out,
)
from directory.search import SearchIndex
from directory.service import DirectoryRefresher, ProviderSearch, search_providers_json
from directory.taxonomy import CONDITIONS, REGION_BY_SLUG


def provide_index(state: State) -> SearchIndex:
    refresher: DirectoryRefresher = state.directory
    return refresher.index


def provide_disclaimer(state: State) -> str:
    disclaimer: str = state.disclaimer
    return disclaimer


class DirectoryController(Controller):
    path = "/api"
    tags = ["directory"]
    dependencies = {
        "index": Provide(provide_index, sync_to_thread=False),
        "disclaimer": Provide(provide_disclaimer, sync_to_thread=False),
    }

    @get("/regions", operation_id="listRegions", cache=300)
    async def list_regions(self) -> list[RegionOut]:
        """The body regions with their conditions and ICD-10-CM families."""
        return regions_out()

    @get("/conditions", operation_id="searchConditions")
    async def search_conditions(
        self, q: Annotated[str, QueryParameter(max_length=200, description="A patient's own words")] = ""
    ) -> ConditionSearch:
        """Conditions ranked for free text, each saying why it matched; all of them without `q`."""
        if not q.strip():
            items = [_match_out(c.slug, 0.0, "") for c in CONDITIONS]
            return ConditionSearch(query=q, items=items)
        items = [_match_out(m.condition.slug, m.score, m.why) for m in match_conditions(q)]
        return ConditionSearch(query=q, items=items)

    # The body is encoded by the service from pre-encoded items; the schema still documents it.
    @get(
        "/providers",
        operation_id="searchProviders",
        responses={
            200: ResponseSpec(data_container=ProviderPage, description="A page of matching providers")
        },
    )
    async def search(
        self,
        # The state itself, not two dependencies: Litestar resolves sibling dependencies in an
        # anyio task group, which costs this hot route more than the rest of its framework work.
        state: State,
        condition: Annotated[
            str | None, QueryParameter(max_length=200, description="A condition slug or free text")
        ] = None,
        region: Annotated[str | None, QueryParameter(max_length=40)] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=100, description="Text in the provider's name")
        ] = None,
        near: Annotated[str | None, QueryParameter(max_length=10, description="A US ZIP code")] = None,
        radius: Annotated[float, QueryParameter(ge=1, le=500, description="Miles from `near`")] = 50,
        accepting: FromQuery[bool | None] = None,
        telehealth: FromQuery[bool | None] = None,
        language: Annotated[str | None, QueryParameter(max_length=40)] = None,
        page: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> Response[bytes]:
        """Published providers for a condition near a ZIP, nearest first, with facets and why."""
        if region is not None and region not in REGION_BY_SLUG:
            raise ValidationException(
                f"Unknown region '{region}'. Use one of: {', '.join(REGION_BY_SLUG)}.",
                extra=[{"key": "region", "source": "query", "message": "unknown region"}],
            )
        params = ProviderSearch(
            condition=condition or None,
            region=region,
            q=q or None,
            near=near or None,
            radius=radius,
            accepting=accepting,
            telehealth=telehealth,
            language=language or None,
            page=page,
            per_page=per_page,
        )
        try:
            body = search_providers_json(provide_index(state), params, provide_disclaimer(state))
            return Response(body, media_type=MediaType.JSON)
        except UnknownZip as exc:
            raise ValidationException(
                str(exc), extra=[{"key": "near", "source": "query", "message": str(exc)}]
            ) from exc

    @get("/providers/{slug:str}", operation_id="getProvider")
    async def get_provider(
        self, slug: FromPath[str], index: NamedDependency[SearchIndex], disclaimer: NamedDependency[str]
    ) -> ProviderDetail:
        """One published provider's profile."""
        doc = index.get(slug)
        if doc is None:
            raise NotFoundException(f"No published provider '{slug}'.")
        return provider_detail(doc, disclaimer)


def _match_out(slug: str, score: float, why: str) -> ConditionMatchOut:
    c = condition_out(slug)
    return ConditionMatchOut(slug=c.slug, name=c.name, icd10=c.icd10, regions=c.regions, score=score, why=why)
