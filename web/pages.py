"""What every server-rendered page shares: the Jinja set-up, static files, error pages, caching.

Adding pages (booking/pages.py, an admin pages module):
- Templates go in `<package>/templates/<package>/` (names never collide: "booking/webinar.html")
  and `{% extends "base.html" %}`, filling `title`, `content`, optionally `description` and
  `head` (e.g. JSON-LD). Add the package to `template_config(settings, "directory", "booking")`
  in app.py. Shared partials: partials/disclaimer.html, partials/error_summary.html; filters in
  web/filters.py; `static_url("x.css")` for files in web/static.
- A page Controller sets `include_in_schema = False` and
  `exception_handlers = PAGE_EXCEPTION_HANDLERS` (errors render error.html, not JSON).
- Caching: every response without a Cache-Control gets `no-store` (web/security.py), so attendee
  and admin pages need nothing; only public pages opt in with `cache_control = PUBLIC_PAGE`.
- No inline <script>, no style="" and no on*= attributes: the CSP refuses them. Behaviour goes in
  web/static/site.js, looks in web/static/site.css. Forms must work without JavaScript.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import Request, Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.template.config import TemplateConfig
from litestar.types import ExceptionHandlersMap

from core.settings import Settings
from web.filters import FILTERS

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PATH = "/static"

# Public pages anyone may see (the directory): a browser may keep them for back/forward but must
# ask again before reusing one. Pages without a cache_control get `no-store` (web/security.py).
PUBLIC_PAGE = CacheControlHeader(private=True, no_cache=True)
# Versioned URLs (see static_url) change whenever a file does, so a copy never goes stale.
STATIC_CACHE = CacheControlHeader(public=True, max_age=31_536_000, immutable=True)


@lru_cache(maxsize=64)
def _fingerprint(name: str, mtime_ns: int) -> str:
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """`/static/site.css?v=<content hash>`: a changed file gets a new URL, so caching is safe."""
    path = STATIC_DIR / name
    return f"{STATIC_PATH}/{name}?v={_fingerprint(name, path.stat().st_mtime_ns)}"


def static_files_router() -> Router:
    return create_static_files_router(
        path=STATIC_PATH, directories=[STATIC_DIR], cache_control=STATIC_CACHE, include_in_schema=False
    )


def template_environment(settings: Settings, *packages: str) -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [PackageLoader("web", "templates"), *(PackageLoader(p, "templates") for p in packages)]
        ),
        autoescape=select_autoescape(["html"]),
        # A misspelt variable fails the page (and its test) instead of printing nothing.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals.update(network_name=settings.network_name, static_url=static_url)
    return env


def template_config(settings: Settings, *packages: str) -> TemplateConfig[JinjaTemplateEngine]:
    """Templates from web/templates and from each named package's templates/ folder."""
    env = template_environment(settings, *packages)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


ERROR_TITLES = {
    400: "Something in that address was not right",
    404: "We could not find that page",
    405: "That did not work",
    429: "Too many requests",
}


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on a page are pages too: plain words and a way back, never a stack trace or JSON."""
    if isinstance(exc, HTTPException):
        status, detail = exc.status_code, str(exc.detail)
    else:
        request.logger.exception("unhandled error on %s %s", request.method, request.url.path)
        status, detail = HTTP_500_INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again."
    title = ERROR_TITLES.get(status, "Something went wrong" if status >= 500 else "That did not work")
    return Template(
        "error.html", context={"status": status, "title": title, "detail": detail}, status_code=status
    )


# Set as `exception_handlers` on every page Controller.
PAGE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {HTTPException: page_error, Exception: page_error}
