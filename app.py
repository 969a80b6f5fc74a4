"""The Orthodex web app: `create_app(settings)` builds it; `litestar run` serves `app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from core.cli import CLIPlugin
from core.db import Database
from core.http import health, http_error, internal_error
from core.settings import Settings
from directory.routes import DirectoryController
from directory.schemas import disclaimer_for
from directory.service import DirectoryRefresher


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    db = Database(settings.database_url)
    directory = DirectoryRefresher(db, settings.directory_refresh_seconds)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await directory.start()
        try:
            yield
        finally:
            await directory.stop()
            db.dispose()

    return Litestar(
        route_handlers=[health, DirectoryController],
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "db": db,
                "directory": directory,
                "disclaimer": disclaimer_for(settings.network_name),
            }
        ),
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        plugins=[CLIPlugin()],
        openapi_config=OpenAPIConfig(
            title="Orthodex",
            version="1.0.0",
            description="Find a regenerative-orthopedics provider; register for patient webinars.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        ),
        debug=settings.debug,
    )


def __getattr__(name: str) -> Litestar:
    # `litestar run` imports `app:app`; build it then, not when tests import this module.
    if name == "app":
        return create_app()
    raise AttributeError(name)
