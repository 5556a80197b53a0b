"""gRPC driver of the TNS snapshot (nightjar.v1.TnsService)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import grpc

from nightjar.context.catalogs import CatalogError
from nightjar.context.tns import SNAPSHOT, TnsIndex, TnsObject
from nightjar.v1 import tns_pb2, tns_pb2_grpc
from services.grpc_server import GrpcService, abort

SERVICE_NAME = "nightjar.v1.TnsService"


def to_message(obj: TnsObject) -> tns_pb2.TnsObject:
    return tns_pb2.TnsObject(
        objid=obj.objid, name=obj.name, type=obj.type or "", redshift=obj.redshift,
        ra=obj.ra, dec=obj.dec, discovery_date=obj.discovery_date or "",
        reporting_group=obj.reporting_group or "", internal_names=obj.internal_names or "",
        distance_arcsec=obj.distance_arcsec or 0.0)


class TnsServicer(tns_pb2_grpc.TnsServiceServicer):
    """Serves the snapshot file under ``directory``, reloaded when a sync replaced it."""

    def __init__(self, directory: Path):
        self.path = directory / SNAPSHOT
        self._mtime: float | None = None
        self._index = TnsIndex.load(self.path)

    @property
    def index(self) -> TnsIndex:
        mtime = self.path.stat().st_mtime if self.path.exists() else None
        if mtime != self._mtime:
            self._index, self._mtime = TnsIndex.load(self.path), mtime
        return self._index

    async def Search(self, request: tns_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> tns_pb2.SearchResponse:
        index = self.index
        if not len(index):
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        "no TNS snapshot yet: run `nightjar tns sync`")
        try:
            found = index.search(request.ra, request.dec, request.radius_arcsec,
                                 request.limit or 10)
        except CatalogError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return tns_pb2.SearchResponse(objects=[to_message(o) for o in found],
                                      snapshot_objects=len(index))

    async def ByName(self, request: tns_pb2.ByNameRequest,
                     context: grpc.aio.ServicerContext) -> tns_pb2.ByNameResponse:
        if not request.name.strip():
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        found = self.index.by_name(request.name)
        if found is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no TNS object {request.name!r}")
        return tns_pb2.ByNameResponse(object=to_message(found))


def tns_service(directory: Path) -> GrpcService:
    servicer = TnsServicer(directory)
    return GrpcService(SERVICE_NAME, partial(tns_pb2_grpc.add_TnsServiceServicer_to_server,
                                             servicer), serving=lambda: bool(len(servicer.index)))
