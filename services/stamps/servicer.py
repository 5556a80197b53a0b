"""gRPC driver of the alert archive (nightjar.v1.StampService).

The archive holds each alert's packet and cutouts by detection (survey and id); the
store says which object, and so which survey, a candid belongs to, so a request for
the wrong object is NOT_FOUND rather than someone else's alert.  LSST packets, archived
in Rubin's wire format, are served as Avro containers with their writer schema.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import grpc

from nightjar.core.stamps import StampError, gunzip_fits, render_png
from nightjar.store import NightjarStore
from nightjar.store.archive import AlertArchive
from nightjar.store.schema import DETECTIONS
from nightjar.surveys.interface import CUTOUT_KINDS, AlertRejected, AlertSource
from nightjar.surveys.registry import AlertParser
from nightjar.v1 import stamps_pb2, stamps_pb2_grpc
from nightjar.values import finite_or_none
from services.grpc_server import GrpcService, abort

SERVICE_NAME = "nightjar.v1.StampService"
KINDS = {stamps_pb2.STAMP_KIND_SCIENCE: "science", stamps_pb2.STAMP_KIND_TEMPLATE: "template",
         stamps_pb2.STAMP_KIND_DIFFERENCE: "difference"}


def _json_value(value: Any) -> Any:
    return None if isinstance(value, bytes) else finite_or_none(value)  # bytes: GetStamp


class StampServicer(stamps_pb2_grpc.StampServiceServicer):
    """Parameters: ``store`` and ``archive`` (injected)."""

    def __init__(self, store: NightjarStore, archive: AlertArchive,
                 parser: AlertParser | None = None):
        self.store = store
        self.archive = archive
        self.parser = parser or AlertParser()

    async def _check(self, context: grpc.aio.ServicerContext, oid: str,
                     candid: int) -> int | str:
        """The archive key of alert ``candid`` of ``oid`` (or abort with why not)."""
        if not oid or candid <= 0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                                "oid and a positive candid are required")
        det = await self.store.alert_detection(oid, candid, {"has_stamp": 1})
        if det is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no alert {candid} of {oid}")
        assert det is not None  # abort raised
        if not det.get("has_stamp"):
            await abort(context, grpc.StatusCode.NOT_FOUND,
                                f"{candid} of {oid} is known only from a later alert's "
                                "history: it has no packet or stamps")
        return det["_id"]

    async def _packet(self, context: grpc.aio.ServicerContext, oid: str,
                      candid: int) -> bytes:
        key = await self._check(context, oid, candid)
        raw = await asyncio.to_thread(self.archive.get_avro, key)
        if raw is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"alert {candid} is not archived")
        assert raw is not None
        return raw

    async def GetAvro(self, request: stamps_pb2.GetAvroRequest,
                      context: grpc.aio.ServicerContext) -> stamps_pb2.GetAvroResponse:
        raw = await self._packet(context, request.oid, request.candid)
        try:
            container = await asyncio.to_thread(self.parser.as_container, raw)
        except AlertRejected as exc:
            await abort(context, grpc.StatusCode.DATA_LOSS, f"archived packet: {exc.reason}")
        return stamps_pb2.GetAvroResponse(avro=container)

    async def GetAlert(self, request: stamps_pb2.GetAlertRequest,
                       context: grpc.aio.ServicerContext) -> stamps_pb2.GetAlertResponse:
        raw = await self._packet(context, request.oid, request.candid)
        alerts, _ = await asyncio.to_thread(self.parser.parse, raw, AlertSource("archive"))
        alert = next((a for a in alerts if a.candid == request.candid), None)
        if alert is None:
            await abort(context, grpc.StatusCode.DATA_LOSS,
                        f"the archived packet of {request.candid} no longer parses")
        assert alert is not None
        candidate = alert.candidate
        unknown = sorted(set(request.fields) - set(candidate))
        if unknown:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                                f"no candidate field {', '.join(unknown)}")
        fields = list(request.fields) or list(candidate)
        body = {"objectId": alert.oid, "candid": alert.candid, "survey": alert.survey,
                "schemavsn": alert.schemavsn,
                "candidate": {f: _json_value(candidate[f]) for f in fields}}
        return stamps_pb2.GetAlertResponse(alert_json=json.dumps(body))

    async def GetStamp(self, request: stamps_pb2.GetStampRequest,
                       context: grpc.aio.ServicerContext) -> stamps_pb2.GetStampResponse:
        kind = KINDS.get(request.kind)
        if kind is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                                "kind must be science, template or difference")
        key = await self._check(context, request.oid, request.candid)
        cutout = await asyncio.to_thread(self.archive.get_cutout, key, str(kind))
        if cutout is None:
            await abort(context, grpc.StatusCode.NOT_FOUND,
                                f"alert {request.candid} has no {kind} cutout")
        try:
            fits_bytes = gunzip_fits(cutout)
            if request.format == stamps_pb2.STAMP_FORMAT_PNG:
                png = await asyncio.to_thread(render_png, fits_bytes, request.size_px,
                                              request.colormap)
                return stamps_pb2.GetStampResponse(data=png, content_type="image/png")
        except StampError as exc:
            code = (grpc.StatusCode.INVALID_ARGUMENT if "size" in str(exc) or "colour" in str(exc)
                    else grpc.StatusCode.DATA_LOSS)
            await abort(context, code, str(exc))
        return stamps_pb2.GetStampResponse(data=fits_bytes, content_type="application/fits")

    async def ListStamps(self, request: stamps_pb2.ListStampsRequest,
                         context: grpc.aio.ServicerContext) -> stamps_pb2.ListStampsResponse:
        if not request.oid:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "oid is required")
        dets = [d for d in await self.store.light_curve(DETECTIONS, request.oid)
                if d.get("has_stamp")]
        if not dets and await self.store.get_object(request.oid) is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no object {request.oid}")
        entries = []
        for det in dets:
            kinds = await asyncio.to_thread(self.archive.cutout_kinds, det["_id"])
            entries.append(stamps_pb2.StampEntry(candid=det["candid"], mjd=det["mjd"],
                                                 fid=det["fid"],
                                                 kinds=[k for k in CUTOUT_KINDS if k in kinds]))
        return stamps_pb2.ListStampsResponse(stamps=entries)


def stamp_service(store: NightjarStore, archive: AlertArchive,
                  parser: AlertParser | None = None) -> GrpcService:
    return GrpcService(SERVICE_NAME, partial(stamps_pb2_grpc.add_StampServiceServicer_to_server,
                                             StampServicer(store, archive, parser)))
