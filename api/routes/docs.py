"""The interactive API docs at ``/docs`` (Swagger UI) and the schema at ``/openapi.json`` too, all served by
the service itself: Swagger UI's files come from the ``fastapi-offline`` package (Swagger UI 5, which reads
OpenAPI 3.1), never from a CDN, so the
docs work on a machine without internet. The page runs only its own files (a strict Content-Security-Policy;
the start-up script is ``api/static/swagger-init.js``, not inline)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.errors import NotFound

_STATIC = Path(__file__).resolve().parent.parent / "static"
_SWAGGER_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cvgrade API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui" data-schema-url="{schema}"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body>
</html>
"""
# Swagger UI sets style attributes from its script (its React components): those, and nothing else inline.
_DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                "form-action 'self'")

def _swagger_folder() -> Path:
    import fastapi_offline  # only for its files: the page is ours

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@functools.cache
def _asset(name: str) -> bytes:
    if name == "swagger-init.js":
        return (_STATIC / name).read_bytes()
    return (_swagger_folder() / name).read_bytes()


def install(app: FastAPI, schema_url: str) -> None:
    """``/docs``, its assets, and ``/openapi.json`` (the schema, as at ``schema_url``)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs", response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return HTMLResponse(_PAGE.format(schema=schema_url), headers={
            "Content-Security-Policy": _DOCS_POLICY, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"})

    @router.get("/docs/assets/{name}", response_class=Response)
    def asset(name: str) -> Response:
        media_type = _SWAGGER_FILES.get(name) or ("text/javascript; charset=utf-8"
                                                  if name == "swagger-init.js" else None)
        if media_type is None:
            raise NotFound(f"there is no file {name[:100]!r} among the docs' assets")
        return Response(_asset(name), media_type=media_type, headers={
            "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})

    @router.get("/openapi.json")
    def schema(request: Request) -> JSONResponse:
        document: dict[str, Any] = request.app.openapi()
        return JSONResponse(document)

    app.include_router(router)
