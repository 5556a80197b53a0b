"""Catalogue and TNS types and queries (answered by the gRPC services)."""

from __future__ import annotations

import strawberry
from google.protobuf.json_format import MessageToDict

from nightjar.context import MATCH_RADIUS_ARCSEC
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc, tns_pb2, tns_pb2_grpc
from services.gateway.errors import BAD_USER_INPUT, NOT_FOUND, GatewayError
from services.gateway.schema.context import GatewayInfo, channel_of


@strawberry.type(description="The nearest source of one catalogue (the pipeline's xmatch)")
class CrossMatch:
    catalog: str
    source_id: str
    ra: float = strawberry.field(description="[deg]")
    dec: float = strawberry.field(description="[deg]")
    distance_arcsec: float = strawberry.field(description="from the object's mean position")


@strawberry.type(description="A Transient Name Server object (from the TNS service)")
class TnsObject:
    name: str = strawberry.field(description='prefix and name, e.g. "SN 2020oi"')
    type: str | None
    redshift: float | None
    ra: float = strawberry.field(description="[deg]")
    dec: float = strawberry.field(description="[deg]")
    discovery_date: str
    reporting_group: str
    distance_arcsec: float


@strawberry.type(description="A catalogue source (from the catalogue service)")
class CatalogSource:
    catalog: str
    source_id: str
    ra: float = strawberry.field(description="[deg]")
    dec: float = strawberry.field(description="[deg]")
    distance_arcsec: float
    columns: strawberry.scalars.JSON = strawberry.field(description="the other columns")


@strawberry.type(description="A column of a catalogue")
class CatalogColumn:
    name: str
    unit: str = strawberry.field(description='astropy unit string; "" when dimensionless '
                                             "or unknown")
    type: str = strawberry.field(description='Arrow type, e.g. "double", "string"')


@strawberry.type(description="A catalogue the catalogue service serves")
class Catalog:
    name: str
    row_count: int
    default_radius_arcsec: float = strawberry.field(
        description="the radius crossmatch uses when none is given [arcsec]")
    source: str = strawberry.field(description="where the catalogue came from")
    columns: list[CatalogColumn]



def tns_object(o: tns_pb2.TnsObject) -> TnsObject:
    return TnsObject(name=o.name, type=o.type or None,
                     redshift=o.redshift if o.HasField("redshift") else None, ra=o.ra,
                     dec=o.dec, discovery_date=o.discovery_date,
                     reporting_group=o.reporting_group, distance_arcsec=o.distance_arcsec)


def catalog_source(src: catalog_pb2.Source) -> CatalogSource:
    return CatalogSource(catalog=src.catalog, source_id=src.source_id, ra=src.ra, dec=src.dec,
                         distance_arcsec=src.distance_arcsec,
                         columns=MessageToDict(src.columns))



@strawberry.type
class CatalogQueries:
    @strawberry.field(description="the catalogues of coneSearch and crossmatch "
                                  "(catalogue service)")
    async def catalogs(self, info: GatewayInfo) -> list[Catalog]:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel_of(info))
        found = await stub.ListCatalogs(catalog_pb2.ListCatalogsRequest())
        return [Catalog(name=c.name, row_count=c.row_count,
                        default_radius_arcsec=c.default_radius_arcsec, source=c.source,
                        columns=[CatalogColumn(name=col.name, unit=col.unit, type=col.type)
                                 for col in c.columns])
                for c in found.catalogs]

    @strawberry.field(description="catsHTM-style cone search of one catalogue, nearest "
                      "first (catalogue service); radius in arcsec")
    async def cone_search(self, info: GatewayInfo, catalog: str, ra: float,
                          dec: float, radius: float, limit: int = 100) -> list[CatalogSource]:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel_of(info))
        request = catalog_pb2.ConeSearchRequest(catalog=catalog, ra=ra, dec=dec,
                                                radius_arcsec=radius, limit=limit)
        return [catalog_source(src) async for chunk in stub.ConeSearch(request)
                for src in chunk.sources]

    @strawberry.field(description="the nearest source of each catalogue (all when CATALOGS "
                                  "is null) within RADIUS arcsec (catalogue service)")
    async def crossmatch(self, info: GatewayInfo, ra: float, dec: float,
                         radius: float | None = None,
                         catalogs: list[str] | None = None) -> list[CatalogSource]:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel_of(info))
        found = await stub.Crossmatch(catalog_pb2.CrossmatchRequest(
            catalogs=catalogs or [], ra=ra, dec=dec, radius_arcsec=radius))
        return [catalog_source(src) for src in found.matches]

    @strawberry.field(description="TNS objects near an object (OID) or a position (RA, DEC "
                                  f"[deg], RADIUS [arcsec], default {MATCH_RADIUS_ARCSEC:g})")
    async def tns(self, info: GatewayInfo, oid: str | None = None, ra: float | None = None,
                  dec: float | None = None, radius: float | None = None) -> list[TnsObject]:
        if oid is not None:
            doc = await info.context.loaders.objects.load(oid)
            if doc is None:
                raise GatewayError(NOT_FOUND, f"no object {oid}")
            ra, dec = doc["meanra"], doc["meandec"]
        if ra is None or dec is None:
            raise GatewayError(BAD_USER_INPUT, "give an oid, or ra and dec")
        stub = tns_pb2_grpc.TnsServiceStub(channel_of(info))
        found = await stub.Search(tns_pb2.SearchRequest(
            ra=ra, dec=dec, radius_arcsec=radius or MATCH_RADIUS_ARCSEC, limit=20))
        return [tns_object(o) for o in found.objects]

