"""The REST API's description, served by the bridge itself.

    GET /openapi.json   rest_bridge/static/openapi.json, the OpenAPI 3.1 document: the one
                        machine-readable source of truth for every path, field and answer
                        (tests/e2e/test_openapi.py checks it against the routes and the bridge)
    GET /docs           rest_bridge/static/docs.html, a page that renders that document in the
                        browser with a little inline JavaScript: no CDN, so it works offline

Both files are read once, when the application is built.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
DOCUMENT = STATIC / "openapi.json"
DOCS_PAGE = STATIC / "docs.html"


def add_doc_routes(app: web.Application) -> None:
    document = DOCUMENT.read_bytes()
    page = DOCS_PAGE.read_bytes()

    async def openapi_json(request: web.Request) -> web.StreamResponse:
        return web.Response(body=document, content_type="application/json", charset="utf-8")

    async def docs(request: web.Request) -> web.StreamResponse:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    app.router.add_get("/openapi.json", openapi_json, allow_head=False)
    app.router.add_get("/docs", docs, allow_head=False)
