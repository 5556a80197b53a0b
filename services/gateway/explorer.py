"""The web explorer at ``/explorer``: a single-page application built from
``tools/explorer`` into ``services/gateway/explorer_static`` (committed generated code,
so serving it needs no Node).

Every ``/explorer/...`` path (``/explorer/object/<oid>``, ``/explorer/search?...``,
``/explorer/live``, ``/explorer/filters``, ``/explorer/status``) answers the same page;
the page reads the path.  Its assets are under ``/explorer/assets/``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from services.gateway.errors import NOT_FOUND, error_body

STATIC_DIR = Path(__file__).with_name("explorer_static")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".txt": "text/plain; charset=utf-8"}
#: Aladin Lite comes from CDS at run time (GPL-3: never bundled); everything else is ours
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "script-src 'self' https://aladin.cds.unistra.fr 'wasm-unsafe-eval'; "
    "style-src 'self' 'unsafe-inline' https://aladin.cds.unistra.fr; "
    "img-src 'self' data: blob: https:; "
    "connect-src 'self' ws: wss: https:; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def explorer_routes(static_dir: Path = STATIC_DIR) -> list[Route]:
    """The page at ``/explorer`` and below, and its assets."""
    index = static_dir / "index.html"

    async def page(request: Request) -> Response:
        if not index.is_file():
            return JSONResponse(error_body(NOT_FOUND, "the explorer is not built (run "
                                                      "`make explorer`)"), status_code=404)
        return FileResponse(index, media_type="text/html; charset=utf-8", headers={
            "Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        target = static_dir / name
        if "/" in name or name.startswith(".") or target.suffix not in _TYPES \
                or not target.is_file():
            return JSONResponse(error_body(NOT_FOUND, "no such explorer asset"),
                                status_code=404)
        # not content-hashed names: revalidate (ETag) rather than cache for ever
        return FileResponse(target, media_type=_TYPES[target.suffix],
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    return [Route("/explorer/assets/{name}", asset), Route("/explorer", page),
            Route("/explorer/{rest:path}", page)]
