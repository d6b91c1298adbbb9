"""The one table from engine error categories to HTTP statuses, and the error response it produces."""

from __future__ import annotations

import logging
from typing import Any

from engine import errors

log = logging.getLogger("engine.api")

# moby's errdefs -> status mapping (daemon/server/httpstatus/status.go), for our categories.
# Anything not listed here, SystemFailure included, is a 500 and is logged with its traceback.
STATUS_BY_CATEGORY: tuple[tuple[type[errors.EngineError], int], ...] = (
    (errors.NotModified, 304),
    (errors.InvalidParameter, 400),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.NotImplementedYet, 501),
    (errors.Unavailable, 503),
)


def status_for(exc: BaseException) -> int:
    """Return the HTTP status for an exception raised by a handler."""
    for category, status in STATUS_BY_CATEGORY:
        if isinstance(exc, category):
            return status
    return 500


def error_response(exc: BaseException, req: Any = None):
    """Turn a handler's exception into a {"message": ...} response (304 has no body)."""
    from engine.api.server import Response, json_response   # late: server imports this module

    status = status_for(exc)
    if status == 304:
        return Response(status=304, body=b"", content_type="")
    if isinstance(exc, errors.EngineError):
        message = exc.message
    else:
        message = f"internal error: {type(exc).__name__}: {exc}"
    if status == 500:
        where = f"{req.method} {req.path}" if req is not None else "request"
        log.error("%s failed: %s", where, message, exc_info=exc)
    return json_response({"message": message}, status)
