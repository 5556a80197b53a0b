"""gRPC driver of the finding charts (nightjar.v1.FindingChartService).

Gathers the object (store), the alert's stamps (archive), the TNS name (snapshot) and
the reference image, then calls the pure renderer :func:`finding_charts.chart.render_chart`.
The reference image is the alert's template cutout, or, where the deployment has
internet and sets ``finding_chart_cutout_url``, a wider survey cutout fetched from that
URL template (hips2fits-style, with ``{ra}``, ``{dec}``, ``{fov_deg}``, ``{size}``); when
that fetch fails the chart falls back to the template and says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from functools import partial
from pathlib import Path

import grpc
import httpx

from finding_charts.chart import ChartData, render_chart
from nightjar.context import MATCH_RADIUS_ARCSEC
from nightjar.context.tns import SNAPSHOT, TnsIndex
from nightjar.core.stamps import StampError, cutout_image, gunzip_fits
from nightjar.store import NightjarStore
from nightjar.store.archive import AlertArchive
from nightjar.store.schema import DETECTIONS
from nightjar.surveys.interface import CUTOUT_KINDS
from nightjar.v1 import finding_chart_pb2, finding_chart_pb2_grpc
from services.grpc_server import GrpcService, abort

log = logging.getLogger(__name__)
SERVICE_NAME = "nightjar.v1.FindingChartService"
PAGES = {finding_chart_pb2.PAGE_SIZE_LETTER: "LETTER"}


class FindingChartServicer(finding_chart_pb2_grpc.FindingChartServiceServicer):
    """Parameters: store, archive, TNS snapshot directory, and an optional HTTP client
    with the cutout URL template (all injected)."""

    def __init__(self, store: NightjarStore, archive: AlertArchive, tns_dir: Path,
                 cutout_url: str | None = None, http: httpx.AsyncClient | None = None):
        self.store = store
        self.archive = archive
        self.tns_path = tns_dir / SNAPSHOT
        self.cutout_url = cutout_url
        self.http = http

    async def _survey_image(self, ra: float, dec: float, field_arcmin: float) -> bytes | None:
        if not (self.cutout_url and self.http):
            return None
        url = self.cutout_url.format(ra=ra, dec=dec, fov_deg=field_arcmin / 60, size=512)
        try:
            response = await self.http.get(url, timeout=20.0)
            response.raise_for_status()
            cutout_image(response.content)  # must be a FITS image
            return response.content
        except (httpx.HTTPError, StampError) as exc:
            log.warning("survey cutout unavailable (%s); using the template", exc)
            return None

    def _tns_name(self, ra: float, dec: float) -> str | None:
        if not self.tns_path.exists():
            return None
        found = TnsIndex.load(self.tns_path).search(ra, dec, MATCH_RADIUS_ARCSEC, 1)
        return found[0].name if found else None

    async def GetFindingChart(self, request: finding_chart_pb2.GetFindingChartRequest,
                              context: grpc.aio.ServicerContext,
                              ) -> finding_chart_pb2.GetFindingChartResponse:
        if not request.oid:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "oid is required")
        if request.field_arcmin < 0 or request.field_arcmin > 60:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                        "field_arcmin must be in [0, 60]")
        obj = await self.store.get_object(request.oid)
        if obj is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no object {request.oid}")
        alerts = [d for d in await self.store.light_curve(DETECTIONS, request.oid)
                  if d.get("has_stamp")]
        if request.HasField("candid"):
            alerts = [d for d in alerts if d["candid"] == request.candid]
            if not alerts:
                await abort(context, grpc.StatusCode.NOT_FOUND,
                            f"no alert {request.candid} of {request.oid}")
        if not alerts:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"{request.oid} has no stamps")
        key, candid = alerts[-1]["_id"], alerts[-1]["candid"]
        survey = obj.get("survey") or "ZTF"
        stamps: dict[str, bytes] = {}
        for kind in CUTOUT_KINDS:
            data = await asyncio.to_thread(self.archive.get_cutout, key, kind)
            if data is not None:
                stamps[kind] = gunzip_fits(data)
        ra, dec = obj["meanra"], obj["meandec"]
        image = await self._survey_image(ra, dec, request.field_arcmin or 5.0)
        if image is not None:
            reference, label = image, "survey cutout (finding_chart_cutout_url)"
        elif "template" in stamps:
            reference, label = stamps["template"], f"{survey} template cutout of alert {candid}"
        else:
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        f"alert {candid} has no archived template to use as reference")
        chart = ChartData(
            oid=request.oid, ra=ra, dec=dec, candid=candid, reference_fits=reference,
            reference_label=label, stamps=stamps, firstmjd=obj.get("firstmjd"),
            lastmjd=obj.get("lastmjd"), ndet=obj.get("ndet"), magstats=obj.get("magstats", []),
            tns_name=await asyncio.to_thread(self._tns_name, ra, dec),
            generated_at=dt.datetime.now(dt.UTC), survey=survey)
        try:
            pdf = await asyncio.to_thread(render_chart, chart,
                                          PAGES.get(request.page_size, "A4"))
        except StampError as exc:
            await abort(context, grpc.StatusCode.DATA_LOSS, f"unusable image: {exc}")
        return finding_chart_pb2.GetFindingChartResponse(pdf=pdf, reference_image=label)


def finding_chart_service(store: NightjarStore, archive: AlertArchive, tns_dir: Path,
                          cutout_url: str | None = None,
                          http: httpx.AsyncClient | None = None) -> GrpcService:
    servicer = FindingChartServicer(store, archive, tns_dir, cutout_url, http)
    return GrpcService(SERVICE_NAME, partial(
        finding_chart_pb2_grpc.add_FindingChartServiceServicer_to_server, servicer))
