"""GraphiQL served from the gateway itself, so the page works without the internet.

strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from unpkg.com.
The same npm packages, at the versions the page names, are installed by ``make setup``
into ``tools/graphiql/node_modules`` (``tools/graphiql/package.json``; never committed).
:func:`local_page` points the page at ``/graphiql/assets/<package>@<version>/<file>``
for every file found there, keeping the page's subresource-integrity hashes (the files
are the packages' own, byte for byte, so they still verify); a file not installed keeps
its CDN address, and :func:`asset_route` serves the installed ones.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from services.gateway.errors import NOT_FOUND, error_body

log = logging.getLogger(__name__)

ASSET_PREFIX = "/graphiql/assets/"
_CDN = re.compile(r"https://unpkg\.com/((?:@[\w.-]+/)?[\w.-]+)@([\w.-]+)/([\w./-]+)")
_TYPES = {".js": "application/javascript", ".css": "text/css", ".map": "application/json"}


def _installed_version(assets: Path, package: str) -> str | None:
    try:
        return str(json.loads((assets / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def asset_file(assets: Path, package: str, version: str, path: str) -> Path | None:
    """The installed file of ``package@version``, or None (wrong version, missing, or a
    path leading out of the package)."""
    if _installed_version(assets, package) != version:
        return None
    root = (assets / package).resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        return None
    return target


def local_page(html: str, assets: Path | None) -> tuple[str, list[str]]:
    """The page with its CDN addresses replaced by the gateway's, and those it could not
    replace (not installed, or another version)."""
    missing: list[str] = []

    def local(match: re.Match[str]) -> str:
        package, version, path = match.groups()
        if assets is not None and asset_file(assets, package, version, path) is not None:
            return f"{ASSET_PREFIX}{package}@{version}/{path}"
        missing.append(match.group(0))
        return match.group(0)

    return _CDN.sub(local, html), missing


def asset_route(assets: Path | None) -> Route:
    """``/graphiql/assets/<package>@<version>/<file>`` from the installed packages."""

    async def serve(request: Request) -> Response:
        found = _CDN.match("https://unpkg.com/" + request.path_params["asset"])
        target = (asset_file(assets, *found.groups()) if found and assets is not None
                  else None)
        if target is None:
            return JSONResponse(error_body(NOT_FOUND, "no such GraphiQL asset"),
                                status_code=404)
        return FileResponse(target, media_type=_TYPES.get(target.suffix, "text/plain"),
                            headers={"Cache-Control": "public, max-age=86400, immutable"})

    return Route(ASSET_PREFIX + "{asset:path}", serve)
