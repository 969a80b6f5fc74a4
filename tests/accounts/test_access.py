"""Every /api/admin route refuses anonymous requests; changes also need the CSRF token.

The walk reads the app's own route table, so a route added later is covered without editing
this test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from accounts.guards import ADMIN_PREFIX, ANONYMOUS, CSRF_HEADER, SESSION_COOKIE

Client = AsyncTestClient[Litestar]
SAMPLE_VALUES: dict[type, Any] = {
    int: 1,
    str: "some-slug",
    uuid.UUID: uuid.uuid4(),
    date: "2026-01-01",
    datetime: "2026-01-01T00:00:00Z",
    float: 1.5,
}


def admin_endpoints(app: Litestar) -> Iterator[tuple[str, str, bool]]:
    """(method, concrete URL, open to anonymous) for every admin route handler."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not (
            route.path == ADMIN_PREFIX or route.path.startswith(ADMIN_PREFIX + "/")
        ):
            continue
        values = {p.name: SAMPLE_VALUES.get(p.type, "x") for p in route.path_parameters.values()}
        url = route.path_format.format(**values)
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                # OPTIONS is Litestar's automatic CORS preflight answer: no data, no action.
                if method != "OPTIONS":
                    yield method, url, bool(handler.opt.get(ANONYMOUS))


async def test_every_admin_route_answers_401_to_anonymous(app: Litestar, client: Client) -> None:
    endpoints = list(admin_endpoints(app))
    walked = {(method, url) for method, url, _ in endpoints}
    # The walk must actually see the admin API (a wrong prefix would make it pass vacuously).
    for expected in [
        ("GET", "/api/admin/session"),
        ("POST", "/api/admin/logout"),
        ("GET", "/api/admin/audit"),
        ("GET", "/api/admin/providers"),
        ("POST", "/api/admin/providers/import"),
        ("GET", "/api/admin/providers/export.csv"),
        ("DELETE", "/api/admin/providers/some-slug"),
        ("PATCH", "/api/admin/providers/some-slug"),
    ]:
        assert expected in walked
    assert {url for _, url, anonymous in endpoints if anonymous} == {"/api/admin/login"}

    checked = 0
    for method, url, anonymous in endpoints:
        if anonymous:
            continue
        # No cookie, a forged cookie, and a forged cookie with a CSRF header and a body.
        for cookies, headers in (({}, {}), ({SESSION_COOKIE: "forged"}, {CSRF_HEADER: "forged"})):
            client.cookies.clear()
            for name, value in cookies.items():
                client.cookies.set(name, value, domain="testserver.local")
            response = await client.request(method, url, headers=headers, json={"name": "x"})
            assert response.status_code == 401, (method, url, response.status_code, response.text)
            assert "provider" not in response.text.lower()
            checked += 1
    assert checked >= 2 * 15


async def test_changes_without_csrf_are_403_with_a_valid_session(app: Litestar, admin_client: Client) -> None:
    token = admin_client.headers.pop(CSRF_HEADER)
    unsafe = [(m, u) for m, u, anon in admin_endpoints(app) if not anon and m not in {"GET", "HEAD"}]
    assert len(unsafe) >= 8
    for method, url in unsafe:
        response = await admin_client.request(method, url, json={"name": "x"})
        assert response.status_code == 403, (method, url, response.text)
    # The same session reads fine without the token.
    assert (await admin_client.get("/api/admin/providers")).status_code == 200
    admin_client.headers[CSRF_HEADER] = token
    assert (await admin_client.get("/api/admin/session")).status_code == 200


async def test_public_routes_stay_public(client: Client) -> None:
    assert (await client.get("/api/providers")).status_code == 200
    assert (await client.get("/api/regions")).status_code == 200
    assert (await client.get("/health")).status_code == 200
