"""gRPC driver of the catalogue store (nightjar.v1.CatalogService): validation, status codes.

The store (:class:`nightjar.context.catalogs.CatalogStore`) does the work; this module maps
requests to it and its errors to status codes: INVALID_ARGUMENT for a cone off the sky
or a bad radius, NOT_FOUND for an unknown catalogue, UNAVAILABLE when a catalogue's
files cannot be read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TypeVar

import grpc
from google.protobuf.struct_pb2 import Struct

from nightjar.context.catalogs import CatalogError, CatalogSource, CatalogStore, UnknownCatalog
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc
from services.grpc_server import GrpcService, abort

SERVICE_NAME = "nightjar.v1.CatalogService"
#: Sources per streamed ConeSearch message.
CHUNK = 500
T = TypeVar("T")


def to_message(source: CatalogSource) -> catalog_pb2.Source:
    columns = Struct()
    columns.update({k: v for k, v in source.columns.items()
                    if v is None or isinstance(v, (str, bool, int, float))})
    return catalog_pb2.Source(catalog=source.catalog, source_id=source.source_id,
                              ra=source.ra, dec=source.dec,
                              distance_arcsec=source.distance_arcsec, columns=columns)


async def _call(context: grpc.aio.ServicerContext, work: Callable[[], T]) -> T:
    """Run store work off the event loop within the call's deadline; map errors to codes.

    Past the deadline the call ends with DEADLINE_EXCEEDED at once instead of holding
    the client's slot (the worker thread finishes its current read on its own).
    """
    remaining = context.time_remaining()
    try:
        return await asyncio.wait_for(asyncio.to_thread(work), timeout=remaining)
    except TimeoutError:
        await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline of {remaining:.3g} s exceeded")
    except UnknownCatalog as exc:
        await abort(context, grpc.StatusCode.NOT_FOUND, exc.args[0])
    except CatalogError as exc:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except OSError as exc:
        await abort(context, grpc.StatusCode.UNAVAILABLE, f"catalogue files unreadable: {exc}")


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Parameters: ``store``, the catalogues to serve (injected)."""

    def __init__(self, store: CatalogStore):
        self.store = store

    async def ConeSearch(self, request: catalog_pb2.ConeSearchRequest,
                         context: grpc.aio.ServicerContext,
                         ) -> AsyncIterator[catalog_pb2.ConeSearchResponse]:
        sources = await _call(context, lambda: self.store.cone(
            request.catalog, request.ra, request.dec, request.radius_arcsec,
            request.limit or None))
        for start in range(0, max(len(sources), 1), CHUNK):
            yield catalog_pb2.ConeSearchResponse(
                sources=[to_message(s) for s in sources[start:start + CHUNK]])

    async def ConeSearchAll(self, request: catalog_pb2.ConeSearchAllRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> catalog_pb2.ConeSearchAllResponse:
        limit = request.limit_per_catalog or None

        def search() -> list[catalog_pb2.CatalogSources]:
            out = []
            for name in self.store.infos:
                found = self.store.cone(name, request.ra, request.dec, request.radius_arcsec,
                                        None if limit is None else limit + 1)
                out.append(catalog_pb2.CatalogSources(
                    catalog=name, sources=[to_message(s) for s in found[:limit]],
                    truncated=limit is not None and len(found) > limit))
            return out

        return catalog_pb2.ConeSearchAllResponse(results=await _call(context, search))

    async def Crossmatch(self, request: catalog_pb2.CrossmatchRequest,
                         context: grpc.aio.ServicerContext) -> catalog_pb2.CrossmatchResponse:
        names = list(request.catalogs) or list(self.store.infos)
        radius = request.radius_arcsec if request.HasField("radius_arcsec") else None
        if radius is not None and not math.isfinite(radius):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "radius must be finite")

        def match() -> list[catalog_pb2.Source]:
            found = [self.store.nearest(n, request.ra, request.dec, radius) for n in names]
            return [to_message(s) for s in found if s is not None]

        return catalog_pb2.CrossmatchResponse(matches=await _call(context, match))

    async def ListCatalogs(self, request: catalog_pb2.ListCatalogsRequest,
                           context: grpc.aio.ServicerContext,
                           ) -> catalog_pb2.ListCatalogsResponse:
        return catalog_pb2.ListCatalogsResponse(catalogs=[
            catalog_pb2.Catalog(
                name=i.name, row_count=i.row_count,
                default_radius_arcsec=i.default_radius_arcsec, source=i.source,
                healpix_order=i.healpix_order,
                columns=[catalog_pb2.Column(name=c.name, unit=c.unit, type=c.type)
                         for c in i.columns])
            for i in self.store.infos.values()])


def catalog_service(store: CatalogStore) -> GrpcService:
    """The catalogue service for :func:`services.grpc_server.start_server`."""
    add = partial(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, CatalogServicer(store))
    return GrpcService(SERVICE_NAME, add, serving=lambda: bool(store.refresh()))


__all__ = ["SERVICE_NAME", "CatalogServicer", "catalog_service", "to_message"]
