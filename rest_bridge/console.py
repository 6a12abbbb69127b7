"""The web console (docs/clients.md): a page for people, served by the bridge itself.

    GET /console              rest_bridge/static/console/index.html
    GET /console/console.js   the page's script (plain JavaScript, no build step)
    GET /console/console.css  its style sheet

Nothing is fetched from elsewhere at run time. The page calls the same REST paths as any
client, with the virtual key the user types (kept in sessionStorage) in `x-bf-vk`; the
console adds no way of authenticating of its own. Live updates read each running job's
Server-Sent Events with fetch() and a stream reader rather than EventSource, because
EventSource cannot send headers and a key in a URL would end up in logs and history.

The files are read once, when the application is built.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from rest_bridge.context import Handler

CONSOLE = Path(__file__).resolve().parent / "static" / "console"
PATH = "/console"
ASSETS = {
    PATH: ("index.html", "text/html"),
    f"{PATH}/console.js": ("console.js", "text/javascript"),
    f"{PATH}/console.css": ("console.css", "text/css"),
}


def add_console_routes(app: web.Application) -> None:
    for path, (name, content_type) in ASSETS.items():
        app.router.add_get(path, _serve((CONSOLE / name).read_bytes(), content_type), allow_head=False)


def _serve(body: bytes, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        # The page runs only its own files: no inline script, nothing from another origin.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src * data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-cache"
        return response

    return handler
