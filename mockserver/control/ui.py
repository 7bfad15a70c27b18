"""The dashboard's static files, served by the control API at ``/_mock/ui`` (shipped in the wheel)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mockserver.control.base import ControlHandler

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
"""``mockserver/dashboard/``: one HTML page, one JavaScript module, one stylesheet; no build step."""
_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "app.css": "text/css",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    # Everything the page needs comes from the mock itself: no CDN, no inline script, works offline.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _serve(name: str) -> web.Response:
    return web.Response(
        body=(DASHBOARD_DIR / name).read_bytes(), content_type=_FILES[name], charset="utf-8", headers=_HEADERS
    )


async def page(request: web.Request) -> web.Response:
    """``GET /_mock/ui``: the dashboard."""
    return _serve("index.html")


async def asset(request: web.Request) -> web.Response:
    """``GET /_mock/ui/{name}``: the page's script and stylesheet (``/_mock/ui/`` goes to the page)."""
    name = request.match_info["name"]
    if name == "":
        raise web.HTTPFound(request.path.rstrip("/"))
    if name not in _FILES or name == "index.html":
        raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
    return _serve(name)


UI_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/ui", page),
    ("GET", "/ui/{name:[^/]*}", asset),
]
"""Dashboard routes, relative to ``/_mock``."""
