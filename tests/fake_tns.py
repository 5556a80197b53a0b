"""A local stand-in for TNS's file and bulk-report APIs, written from their documented
behaviour.

POST /system/files/tns_public_objects/<file> with form field ``api_key`` and a
``tns_marker{"tns_id": ..., "type": "bot", "name": ...}`` User-Agent; answers carry
``x-rate-limit-limit``, ``x-rate-limit-remaining`` and ``x-rate-limit-reset`` [s], and
429 once the window's budget is spent.

POST /api/set/bulk-report (``api_key``, ``data`` = ``{"at_report": {"0": {...}}}``)
answers ``{"id_code": 200, "data": {"report_id": ...}}``; POST
/api/get/bulk-report-reply (``report_id``) answers 404 while the report is "being
processed" (``pending_polls`` times), then the feedback: code 100 with a new name, 101
with the existing name when the internal name was reported before, or the checks it
failed (codes >= 400, no name).  Runs under uvicorn on a free loopback port.
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
from starlette.responses import JSONResponse, PlainTextResponse, Response
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


_TNS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$")


def at_report_problems(report: dict[str, Any]) -> list[str]:
    """What TNS's bulk-report checks would refuse in one AT report (the manual's required
    fields and formats)."""
    problems = [f"missing {key}" for key in (
        "ra", "dec", "reporting_group_id", "discovery_data_source_id", "reporter",
        "discovery_datetime", "at_type", "internal_name", "non_detection", "photometry")
        if key not in report]
    for axis in ("ra", "dec"):
        value = report.get(axis)
        if not (isinstance(value, dict) and isinstance(value.get("value"), (int, float))):
            problems.append(f"{axis} needs a numeric value")
    if not _TNS_TIME.match(str(report.get("discovery_datetime", ""))):
        problems.append("discovery_datetime is not YYYY-MM-DD HH:MM:SS")
    if not str(report.get("reporting_group_id", "")).isdigit():
        problems.append("reporting_group_id is not a group id")
    points = report.get("photometry", {}).get("photometry_group", {})
    if not points:
        problems.append("no photometry")
    non_detection = report.get("non_detection", {})
    measured = [*points.values(), *([non_detection] if "obsdate" in non_detection else [])]
    if "obsdate" not in non_detection and not (
            "archiveid" in non_detection and "archival_remarks" in non_detection):
        problems.append("non_detection needs obsdate or archiveid with archival_remarks")
    for point in measured:
        for key in ("obsdate", "flux_units", "filter_value", "instrument_value"):
            if not point.get(key):
                problems.append(f"photometry point without {key}")
        if not _TNS_TIME.match(str(point.get("obsdate", ""))):
            problems.append("photometry obsdate is not YYYY-MM-DD HH:MM:SS")
    return sorted(set(problems))


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
    #: bulk reports received: report id -> the at_report document as sent
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_polls: int = 1  #: reply polls answered 404 before the feedback is ready
    polls: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  #: internal name -> TNS name given

    def new_window(self) -> None:
        self.used = 0

    async def _authorised(self, request: Request) -> dict[str, list[str]] | None:
        """The request's form when it carries the bot's marker and key, else None."""
        marker = _MARKER.match(request.headers.get("user-agent", ""))
        try:
            who = json.loads(marker.group(1)) if marker else {}
        except ValueError:
            who = {}
        form = parse_qs((await request.body()).decode())  # application/x-www-form-urlencoded
        if (who != {"tns_id": self.bot_id, "type": "bot", "name": self.bot_name}
                or form.get("api_key") != [self.api_key]):
            return None
        return form

    async def bulk_report(self, request: Request) -> Response:
        form = await self._authorised(request)
        if form is None:
            return JSONResponse({"id_code": 401, "id_message": "Unauthorized"}, 401)
        try:
            data = json.loads(form["data"][0])
            reports = data["at_report"]
            report = reports["0"]
            assert isinstance(report, dict) and len(reports) == 1
        except (KeyError, IndexError, ValueError, TypeError, AssertionError):
            return JSONResponse({"id_code": 400, "id_message": "Bad request: data must be "
                                 "{\"at_report\": {\"0\": {...}}}"}, 400)
        report_id = str(1000 + len(self.reports))
        self.reports[report_id] = report
        return JSONResponse({"id_code": 200, "id_message": "OK",
                             "data": {"report_id": report_id}})

    async def bulk_report_reply(self, request: Request) -> Response:
        form = await self._authorised(request)
        if form is None:
            return JSONResponse({"id_code": 401, "id_message": "Unauthorized"}, 401)
        report_id = (form.get("report_id") or [""])[0]
        report = self.reports.get(report_id)
        self.polls[report_id] = self.polls.get(report_id, 0) + 1
        if report is None or self.polls[report_id] <= self.pending_polls:
            return JSONResponse({"id_code": 404, "id_message": "Report not found (or still "
                                 "being processed)"}, 404)
        problems = at_report_problems(report)
        if problems:
            entry = {str(400 + i): {"message": p, "message_id": 400 + i}
                     for i, p in enumerate(problems)}
        elif report["internal_name"] in self.names:
            entry = {"101": {"message": "An object with this internal name already exists",
                             "objname": self.names[report["internal_name"]],
                             "message_id": 101}}
        else:
            name = "2026" + "".join(chr(ord("a") + (len(self.names) // 26 ** k) % 26)
                                    for k in (2, 1, 0))
            self.names[report["internal_name"]] = name
            entry = {"100": {"message": "The AT has been successfully reported",
                             "objname": name, "message_id": 100}}
        return JSONResponse({"id_code": 200, "id_message": "OK",
                             "data": {"feedback": {"at_report": [entry]}}})

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        if await self._authorised(request) is None:
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
        app = Starlette(routes=[
            Route("/system/files/tns_public_objects/{name}", self.handle, methods=["POST"]),
            Route("/api/set/bulk-report", self.bulk_report, methods=["POST"]),
            Route("/api/get/bulk-report-reply", self.bulk_report_reply, methods=["POST"])])
        async with serve_asgi(app) as url:
            yield url
