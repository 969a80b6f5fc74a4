"""HTTP plumbing shared by both domains: health, error shapes."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR


@get("/health", operation_id="health", tags=["operations"], media_type=MediaType.JSON)
async def health() -> dict[str, str]:
    """Liveness: the process answers. Touches no database."""
    return {"status": "ok"}


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    """A 500 never leaks internals; the log has the traceback."""
    request.logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        {"status_code": 500, "detail": "Something went wrong on our side. Please try again."},
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    body: dict[str, object] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)
