"""Security headers on every response the app sends: pages, JSON, static files and errors.

They are added in a `before_send` hook rather than a middleware because Litestar runs middleware
only for matched routes, and a 404 or an error raised before routing must carry them too.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from core.settings import Settings

# No inline script or style anywhere, so neither needs 'unsafe-inline'; everything is same-origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def security_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        # Search URLs name what hurts; never tell another site. 'same-origin' rather than
        # 'no-referrer' so same-origin form POSTs keep their Origin header (Fetch spec: with
        # no-referrer a POST's Origin is serialised as "null"), which CSRF checks rely on.
        "Referrer-Policy": "same-origin",
        # frame-ancestors supersedes this; older browsers only know this one.
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    }
    if settings.base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


# What a response gets when its handler did not say how it may be cached: attendee and admin pages
# carry private links and personal data, so forgetting to mark one must not make it cacheable.
DEFAULT_CACHE_CONTROL = "no-store"


def security_headers_hook(settings: Settings) -> BeforeMessageSendHookHandler:
    """A `before_send` hook adding the security headers (and no-store unless the route set caching)."""
    headers = security_headers(settings)

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        response_headers = MutableScopeHeaders.from_message(message)
        for name, value in headers.items():
            if name not in response_headers:
                response_headers[name] = value
        if "Cache-Control" not in response_headers:
            response_headers["Cache-Control"] = DEFAULT_CACHE_CONTROL

    return add_security_headers
