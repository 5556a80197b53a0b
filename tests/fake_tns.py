"""A local stand-in for TNS's file API, written from its documented behaviour.

POST /system/files/tns_public_objects/<file> with form field ``api_key`` and a
``tns_marker{"tns_id": ..., "type": "bot", "name": ...}`` User-Agent; answers carry
``x-rate-limit-limit``, ``x-rate-limit-remaining`` and ``x-rate-limit-reset`` [s], and
429 once the window's budget is spent.  Runs under uvicorn on a free loopback port.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from nightjar.context.tns import COLUMNS
from tests.asgi import serve_asgi

_MARKER = re.compile(r'^tns_marker(\{.*\})$')


def public_objects_zip(rows: list[dict[str, Any]], stamp: str = "2026-11-22 00:00:00") -> bytes:
    """A public-objects file as TNS serves it: zip of a CSV with a timestamp line first."""
    text = io.StringIO()
    text.write(f'"{stamp}"\n')
    writer = csv.DictWriter(text, fieldnames=COLUMNS, quoting=csv.QUOTE_ALL)
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in COLUMNS})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("tns_public_objects.csv", text.getvalue())
    return out.getvalue()


@dataclass
class FakeTns:
    bot_id: int
    bot_name: str
    api_key: str
    files: dict[str, bytes] = field(default_factory=dict)
    budget: int = 100  #: requests per rate-limit window
    reset_s: float = 30.0
    used: int = 0
    requests: list[str] = field(default_factory=list)  #: file names asked for, in order
    too_many: int = 0  #: requests answered 429 (a client that honours the headers makes none)

    def new_window(self) -> None:
        self.used = 0

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        marker = _MARKER.match(request.headers.get("user-agent", ""))
        try:
            who = json.loads(marker.group(1)) if marker else {}
        except ValueError:
            who = {}
        form = parse_qs((await request.body()).decode())  # application/x-www-form-urlencoded
        if (who != {"tns_id": self.bot_id, "type": "bot", "name": self.bot_name}
                or form.get("api_key") != [self.api_key]):
            return PlainTextResponse("Unauthorized", status_code=401)
        if self.used >= self.budget:
            self.too_many += 1
            return PlainTextResponse("Too Many Requests", status_code=429, headers={
                "x-rate-limit-limit": str(self.budget), "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": f"{self.reset_s:g}"})
        self.used += 1
        self.requests.append(name)
        headers = {"x-rate-limit-limit": str(self.budget),
                   "x-rate-limit-remaining": str(self.budget - self.used),
                   "x-rate-limit-reset": f"{self.reset_s:g}"}
        if name not in self.files:
            return PlainTextResponse("Not Found", status_code=404, headers=headers)
        return Response(self.files[name], media_type="application/zip", headers=headers)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run the fake on 127.0.0.1; yield its base URL; stop it afterwards."""
        app = Starlette(routes=[Route("/system/files/tns_public_objects/{name}", self.handle,
                                      methods=["POST"])])
        async with serve_asgi(app) as url:
            yield url
