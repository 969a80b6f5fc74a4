"""The Orthodex web app: `create_app(settings)` builds it; `litestar run` serves `app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from accounts.guards import admin_guard, provide_current_admin
from accounts.pages import AdminAccountPages
from accounts.routes import AdminSessionController
from booking.admin import (
    OutboxAdminController,
    RegistrationAdminController,
    SessionAdminController,
    WebinarAdminController,
)
from booking.admin_pages import OutboxAdminPages, SessionAdminPages, WebinarAdminPages
from booking.messages import RENDERERS as BOOKING_RENDERERS
from booking.pages import RegistrationPages, WebinarPages, presenter_webinars
from booking.routes import WebinarController, WebinarFeedController
from booking.service import InviteFiles, Registrar
from core.cli import CLIPlugin
from core.db import Database
from core.http import health, http_error, internal_error
from core.mail import OutboxWorker
from core.settings import Settings
from directory.admin import ProviderAdminController
from directory.admin_pages import ProviderAdminPages
from directory.pages import PRESENTER_WEBINARS, DirectoryPages
from directory.routes import DirectoryController
from directory.schemas import disclaimer_for
from directory.service import DirectoryRefresher
from web.pages import static_files_router, template_config
from web.security import security_headers_hook


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    db = Database(settings.database_url)
    disclaimer = disclaimer_for(settings.network_name)
    directory = DirectoryRefresher(db, settings.directory_refresh_seconds, disclaimer)
    # Booking's outbox rows hold what to say; the worker renders them with booking's renderers.
    outbox = OutboxWorker(db, settings, renderers=BOOKING_RENDERERS)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await directory.start()
        if settings.background_workers:
            await outbox.start()
        try:
            yield
        finally:
            await outbox.stop()
            await directory.stop()
            db.dispose()

    return Litestar(
        route_handlers=[
            health,
            DirectoryController,
            AdminSessionController,
            ProviderAdminController,
            WebinarController,
            WebinarFeedController,
            WebinarAdminController,
            SessionAdminController,
            RegistrationAdminController,
            OutboxAdminController,
            DirectoryPages,
            WebinarPages,
            RegistrationPages,
            AdminAccountPages,
            ProviderAdminPages,
            WebinarAdminPages,
            SessionAdminPages,
            OutboxAdminPages,
            static_files_router(),
        ],
        # Server-rendered pages: web/templates plus each listed package's templates/ folder.
        template_config=template_config(settings, "directory", "booking", "accounts"),
        # CSP, nosniff, referrer policy, frame-ancestors; no-store unless a route says otherwise.
        before_send=[security_headers_hook(settings)],
        # Every route under /api/admin needs a signed-in admin (and CSRF on changes); see accounts.guards.
        guards=[admin_guard],
        dependencies={"current_admin": Provide(provide_current_admin)},
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "db": db,
                "directory": directory,
                "disclaimer": disclaimer,
                # invite.ics downloads, with this process's cache of built files (booking.routes).
                "invite_files": InviteFiles(db, settings),
                # POST registrations, on the event loop where SQLite allows (booking.routes).
                "registrar": Registrar(db, settings),
                # Profiles list the webinars a provider presents (directory never imports booking).
                PRESENTER_WEBINARS: presenter_webinars(db, directory, settings),
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
