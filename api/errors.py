"""HTTP errors: every refusal is ``{"error": "<a sentence a person understands>"}``.

::

    ApiError                      its own status (400 unless said)
    +-- Unauthorized              401  no token, an unknown, revoked or expired one
    +-- NotFound                  404  no such thing, or not yours (the same answer: nothing leaks)
    +-- Conflict                  409  the request clashes with what is stored
    +-- Forbidden                 403  known and yours, but not allowed now (deadline, budget)
    +-- PayloadTooLarge           413
    +-- Unprocessable             422  well-formed, but a value the service cannot take
    +-- UnsupportedMediaType      415

The grader's own errors (``grader.errors``) carry their HTTP status
(``http_status``) and map here in one place, ``install_error_handlers``, as do
FastAPI's validation errors and Starlette's 404 and 405.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from grader.errors import CvgradeError

log = logging.getLogger("cvgrade.api")


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class Unprocessable(ApiError):
    status = 422


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, a JSON body with one readable sentence."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(CvgradeError)
    async def _grader_error(_request: Request, error: CvgradeError) -> JSONResponse:
        return error_response(error.http_status, str(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        status, message = describe_validation_errors(error.errors())
        return error_response(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404 and error.detail == "Not Found":
            message = (f"there is no route {request.method} {request.url.path}; "
                       "the API is under /api/v1 and described at /docs")
        elif error.status_code == 405:
            message = f"{request.url.path} does not accept {request.method}; see /docs for what it does accept"
            allowed = allowed_methods(request.app.openapi(), request.url.path)
            if allowed:  # every method of the path, not only those of the route that matched first
                return error_response(405, message, {**(error.headers or {}), "Allow": ", ".join(allowed)})
        else:
            message = str(error.detail)
        return error_response(error.status_code, message, error.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "the service failed on its side; the error is in its log")


def describe_validation_errors(errors: Sequence[Any]) -> tuple[int, str]:
    """One sentence (and a status) for FastAPI's list of validation errors."""
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = str((error.get("ctx") or {}).get("error", "it cannot be parsed"))
            position = error.get("loc", ())[1:2]
            at = f" at character {position[0]}" if position and isinstance(position[0], int) else ""
            return 400, (f"the request body is not valid JSON ({reason[:1].lower()}{reason[1:]}{at}); "
                         "send a JSON object with Content-Type: application/json")
    parts = []
    for error in list(errors)[:5]:
        location = [str(part) for part in error.get("loc", ())]
        where, field = (location[0], ".".join(location[1:])) if location else ("body", "")
        message = _PLAIN.get(str(error.get("type")), str(error.get("msg", "is not valid")))
        if error.get("type") == "value_error":
            message = message.removeprefix("Value error, ")  # our own validators' sentences, as they are
        if error.get("type") in _PLAIN and error.get("input") is not None:
            message += f" (not {str(error['input'])[:40]!r})"
        if error.get("type") == "missing":
            parts.append(f"the {where} needs the field '{field}'" if field else f"the request needs a {where}")
        elif where == "body" and not field:
            parts.append(f"the body: {message[0].lower()}{message[1:]}")
        else:
            label = field or where
            parts.append(f"{label} ({where}): {message[0].lower()}{message[1:]}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "the request is not valid: " + "; ".join(parts) + more


# Pydantic's wording for times ("input should be a valid datetime or date, input is too short") names its
# parser, not what to send.
_WHEN = "must be a date and time with a time zone, such as 2030-06-01T17:00:00Z"
_PLAIN = {
    "datetime_parsing": _WHEN, "datetime_from_date_parsing": _WHEN, "datetime_type": _WHEN,
    "timezone_aware": "needs a time zone: end it with Z (UTC) or an offset such as +02:00",
}


def allowed_methods(openapi: Mapping[str, Any], path: str) -> list[str]:
    """The methods the API documents for ``path`` (empty when it documents none): the ``Allow`` of a 405."""
    for template, operations in openapi.get("paths", {}).items():
        if _template(template).fullmatch(path):
            return sorted(method.upper() for method in operations if method in _METHODS)
    return []


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@functools.lru_cache(maxsize=256)
def _template(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))
