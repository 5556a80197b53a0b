"""HTTP download routes beside /graphql: light curves, stamps, Avro packets, finding charts.

Light curves are rendered here from the store (CSV, VOTable, PNG); stamps, packets and
finding charts come from the gRPC services.  Unknown ids answer 404 with a JSON error
(``extensions.code`` = NOT_FOUND), as GraphQL errors do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nightjar.core.lightcurve_table import lightcurve_points, plot_png, to_csv, to_votable
from nightjar.store.mongo import NightjarStore
from nightjar.store.schema import DETECTIONS, FORCED_PHOTOMETRY, NON_DETECTIONS
from nightjar.v1 import (
    finding_chart_pb2,
    finding_chart_pb2_grpc,
    stamps_pb2,
    stamps_pb2_grpc,
)
from services.gateway.errors import BAD_USER_INPUT, NOT_FOUND, UNAVAILABLE, error_body

STAMP_KINDS = {"science": stamps_pb2.STAMP_KIND_SCIENCE,
               "template": stamps_pb2.STAMP_KIND_TEMPLATE,
               "difference": stamps_pb2.STAMP_KIND_DIFFERENCE}
STAMP_FORMATS = {"fits": stamps_pb2.STAMP_FORMAT_FITS, "png": stamps_pb2.STAMP_FORMAT_PNG}
LIGHTCURVE_TYPES = {"csv": "text/csv; charset=utf-8",
                    "xml": "application/x-votable+xml",
                    "png": "image/png"}
_GRPC_STATUS = {grpc.StatusCode.NOT_FOUND: (404, NOT_FOUND),
                grpc.StatusCode.INVALID_ARGUMENT: (400, BAD_USER_INPUT),
                grpc.StatusCode.UNAVAILABLE: (503, UNAVAILABLE),
                grpc.StatusCode.DEADLINE_EXCEEDED: (503, UNAVAILABLE)}


def lightcurve_path(oid: str, fmt: str) -> str:
    """The light curve of one object (``?surveys=ZTF,LSST`` adds its counterparts')."""
    return f"/download/lightcurve/{oid}.{fmt}"


def stamp_path(oid: str, candid: int, kind: str, fmt: str) -> str:
    return f"/download/stamp/{oid}/{candid}/{kind}.{fmt}"


def avro_path(oid: str, candid: int) -> str:
    return f"/download/avro/{oid}/{candid}.avro"


def finding_chart_path(oid: str) -> str:
    return f"/download/finding-chart/{oid}.pdf"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def _file(data: bytes, content_type: str, filename: str) -> Response:
    return Response(data, media_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def download_routes(store: NightjarStore, channel: grpc.aio.Channel | None) -> list[Route]:
    """The routes, reading ``store`` and calling the services over ``channel``."""

    async def remote(call: Callable[[grpc.aio.Channel], Awaitable[Any]]) -> Any:
        """A gRPC call's answer, or the JSON error response it maps to."""
        if channel is None:
            return _error(503, UNAVAILABLE, "this gateway has no gRPC services configured")
        try:
            return await call(channel)
        except grpc.aio.AioRpcError as exc:
            status, code = _GRPC_STATUS.get(exc.code(), (502, UNAVAILABLE))
            return _error(status, code, exc.details() or exc.code().name)

    def candid_of(request: Request) -> int | None:
        try:
            return int(request.path_params["candid"])
        except ValueError:
            return None

    async def lightcurve(request: Request) -> Response:
        oid, fmt = request.path_params["oid"], request.path_params["fmt"]
        if fmt == "vot":
            fmt = "xml"
        if fmt not in LIGHTCURVE_TYPES:
            return _error(404, NOT_FOUND, f"no light-curve format {fmt!r}; csv, xml or png")
        obj = await store.get_object(oid)
        if obj is None:
            return _error(404, NOT_FOUND, f"no object {oid}")
        surveys = {s.strip().upper() for s in request.query_params.get("surveys", "").split(",")
                   if s.strip()}
        members = [(oid, str(obj.get("survey") or "ZTF"))]
        if surveys:  # combined with the counterparts of those surveys
            links = (await store.counterparts_of([oid]))[oid]
            members = [(o, s) for o, s in members + [(d["other_oid"], d["other_survey"])
                                                     for d in links] if s in surveys]
        points = []
        for member, survey in members:
            det, nd, fp = await asyncio.gather(*(store.light_curve(c, member) for c in (
                DETECTIONS, NON_DETECTIONS, FORCED_PHOTOMETRY)))
            points += lightcurve_points(member, det, nd, fp, survey)
        points.sort(key=lambda p: (p["mjd"], p["survey"], p["oid"]))
        if fmt == "csv":
            data = to_csv(points).encode()
        elif fmt == "xml":
            data = await asyncio.to_thread(to_votable, points, oid)
        else:  # matplotlib off the event loop
            data = await asyncio.to_thread(plot_png, points, oid)
        return _file(data, LIGHTCURVE_TYPES[fmt], f"{oid}_lightcurve.{fmt}")

    async def stamp(request: Request) -> Response:
        oid, kind, fmt = (request.path_params[k] for k in ("oid", "kind", "fmt"))
        candid = candid_of(request)
        if kind not in STAMP_KINDS or fmt not in STAMP_FORMATS or candid is None:
            return _error(404, NOT_FOUND, "stamps are /download/stamp/OID/CANDID/KIND.FORMAT "
                                          "with KIND science, template or difference and "
                                          "FORMAT fits or png")
        answer = await remote(lambda ch: stamps_pb2_grpc.StampServiceStub(ch).GetStamp(
            stamps_pb2.GetStampRequest(
            oid=oid, candid=candid, kind=STAMP_KINDS[kind], format=STAMP_FORMATS[fmt])))
        if isinstance(answer, Response):
            return answer
        return _file(answer.data, answer.content_type, f"{oid}_{candid}_{kind}.{fmt}")

    async def avro(request: Request) -> Response:
        oid, candid = request.path_params["oid"], candid_of(request)
        if candid is None:
            return _error(404, NOT_FOUND, "packets are /download/avro/OID/CANDID.avro")
        answer = await remote(lambda ch: stamps_pb2_grpc.StampServiceStub(ch).GetAvro(
            stamps_pb2.GetAvroRequest(oid=oid, candid=candid)))
        if isinstance(answer, Response):
            return answer
        return _file(answer.avro, "application/avro", f"{oid}_{candid}.avro")

    async def finding_chart(request: Request) -> Response:
        oid = request.path_params["oid"]
        answer = await remote(
            lambda ch: finding_chart_pb2_grpc.FindingChartServiceStub(ch).GetFindingChart(
                finding_chart_pb2.GetFindingChartRequest(oid=oid)))
        if isinstance(answer, Response):
            return answer
        return _file(answer.pdf, "application/pdf", f"{oid}_finding_chart.pdf")

    return [  # the templates of the *_path functions above
        Route(lightcurve_path("{oid}", "{fmt}"), lightcurve),
        Route(stamp_path("{oid}", "{candid}", "{kind}", "{fmt}"), stamp),  # type: ignore[arg-type]
        Route(avro_path("{oid}", "{candid}"), avro),  # type: ignore[arg-type]
        Route(finding_chart_path("{oid}"), finding_chart),
    ]
