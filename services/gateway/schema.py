"""The GraphQL schema: objects, light curves and statistics with ALeRCE's field names.

Resolvers are thin: they translate arguments, call :class:`NightjarStore` or the gRPC
services (both injected through the request context) and map the answers onto types.
Field names are ALeRCE's in camelCase (``magpsfCorr``, ``sigmapsfCorrExt``,
``magmeanCorr``...).  ZTF ids (``candid``, ``pid``, ``rfid``) exceed GraphQL's 32-bit
``Int`` and JavaScript's 2**53, so they travel as the ``BigInt`` scalar, serialised as a
decimal string.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, NewType, TypeVar

import grpc
import strawberry
from google.protobuf.json_format import MessageToDict
from strawberry.types import Info

from nightjar.store.mongo import Cone, NightjarStore, ObjectFilter
from nightjar.store.schema import DETECTIONS, FORCED_PHOTOMETRY, NON_DETECTIONS
from nightjar.tns import MATCH_RADIUS_ARCSEC
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc, tns_pb2, tns_pb2_grpc

T = TypeVar("T")

MAX_PAGE = 500

BigInt = strawberry.scalar(
    NewType("BigInt", int),
    serialize=lambda v: str(v),
    parse_value=lambda v: int(v),
    description="64-bit integer (ZTF candid, pid, rfid), serialised as a decimal string",
)


@dataclass
class GatewayContext:
    store: NightjarStore
    #: channel to Nightjar's gRPC services (catalogues, TNS); None = not configured
    grpc_channel: grpc.aio.Channel | None = None


def _channel(info: Info[GatewayContext, None]) -> grpc.aio.Channel:
    channel = info.context.grpc_channel
    if channel is None:
        raise RuntimeError("this gateway has no gRPC services configured "
                           "(run `nightjar serve`, or set NIGHTJAR_GRPC_TARGET)")
    return channel


async def _rpc(call: Awaitable[T]) -> T:
    """A gRPC call's result; its failure as a GraphQL error with the service's words."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise ValueError(f"{exc.code().name}: {exc.details()}") from exc


def _store(info: Info[GatewayContext, None]) -> NightjarStore:
    return info.context.store


def _pick(cls: type, doc: Mapping[str, Any], **extra: Any) -> Any:
    """Build a strawberry type from a document: its declared fields, missing ones null."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{n: doc.get(n) for n in names if n not in extra}, **extra)


@strawberry.type(description="A detection: an alert candidate or a prv_candidate")
class Detection:
    candid: BigInt  # type: ignore[valid-type]
    oid: str
    mjd: float
    fid: int
    ra: float
    dec: float
    magpsf: float
    sigmapsf: float
    isdiffpos: str
    corrected: bool
    dubious: bool
    stellar: bool
    magpsf_corr: float | None = strawberry.field(description="corrected magnitude [mag]")
    sigmapsf_corr: float | None = strawberry.field(description="its error, eq. A28 [mag]")
    sigmapsf_corr_ext: float | None = strawberry.field(description="its error, eq. A29 [mag]")
    distnr: float | None
    magnr: float | None
    sigmagnr: float | None
    diffmaglim: float | None
    rb: float | None
    drb: float | None
    rfid: BigInt | None  # type: ignore[valid-type]
    field: int | None
    rcid: int | None
    has_stamp: bool = strawberry.field(description="true when it was an alert's own candidate")
    parent_candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="the alert whose prv_candidates carried it; null for a candidate")


@strawberry.type(description="An upper limit (a prv_candidate without candid)")
class NonDetection:
    oid: str
    fid: int
    mjd: float
    diffmaglim: float | None


@strawberry.type(description="A forced-photometry point (fp_hists), kept apart from detections")
class ForcedPhotometry:
    oid: str
    pid: BigInt  # type: ignore[valid-type]
    fid: int
    mjd: float
    forcediffimflux: float | None
    forcediffimfluxunc: float | None
    magzpsci: float | None
    mag: float | None
    e_mag: float | None
    forced: bool


@strawberry.type(description="Statistics of one band of one object")
class MagStats:
    fid: int
    band: str
    ndet: int
    ndubious: int
    nrfid: int
    magmean: float | None
    magmedian: float | None
    magmax: float | None
    magmin: float | None
    magsigma: float | None
    magfirst: float | None
    maglast: float | None
    magmean_corr: float | None
    magmedian_corr: float | None
    magmax_corr: float | None
    magmin_corr: float | None
    magsigma_corr: float | None
    magfirst_corr: float | None
    maglast_corr: float | None
    firstmjd: float
    lastmjd: float
    corrected: bool
    stellar: bool
    dmdt_first: float | None
    dm_first: float | None
    sigmadm_first: float | None
    dt_first: float | None
    saturation_rate: float | None


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


@strawberry.type(description="one classifier's probability of one class for an object "
                             "(ALeRCE's probability row)")
class Probability:
    classifier_name: str = strawberry.field(
        description="lc_classifier (15 classes), lc_classifier_top, lc_classifier_transient, "
                    "lc_classifier_stochastic, lc_classifier_periodic, or stamp_classifier "
                    "(AGN, SN, VS, asteroid, bogus from the object's first alert)")
    classifier_version: str = strawberry.field(description="semantic version of the model")
    class_name: str
    probability: float
    ranking: int = strawberry.field(description="1 = the most probable class of this classifier")
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="the alert the stamp classifier classified; null for the "
                                  "light-curve classifiers (they use the whole light curve)")


@strawberry.type(description="one light-curve feature (ALeRCE's name and definition)")
class Feature:
    name: str = strawberry.field(description="e.g. Multiband_period, Amplitude_1 (_1 = g, _2 = r)")
    value: float | None = strawberry.field(description="null when undefined for this object")


def _tns(o: tns_pb2.TnsObject) -> TnsObject:
    return TnsObject(name=o.name, type=o.type or None,
                     redshift=o.redshift if o.HasField("redshift") else None, ra=o.ra,
                     dec=o.dec, discovery_date=o.discovery_date,
                     reporting_group=o.reporting_group, distance_arcsec=o.distance_arcsec)


@strawberry.type(name="Object", description="An astronomical object and its statistics")
class AstroObject:
    oid: str
    ndet: int
    firstmjd: float
    lastmjd: float
    deltajd: float
    meanra: float = strawberry.field(description="mean right ascension [deg]")
    meandec: float = strawberry.field(description="mean declination [deg]")
    sigmara: float = strawberry.field(description="RA scatter on the sky [arcsec]")
    sigmadec: float = strawberry.field(description="Dec scatter [arcsec]")
    corrected: bool
    stellar: bool
    g_r_max: float | None
    g_r_max_corr: float | None
    g_r_mean: float | None
    g_r_mean_corr: float | None
    reference_change: bool
    magstats: list[MagStats]
    xmatch: list[CrossMatch] = strawberry.field(
        description="nearest catalogue sources, one per catalogue, nearest first")

    @strawberry.field(description=f"the TNS object within {MATCH_RADIUS_ARCSEC:g} arcsec of the "
                      "mean position, if any (TNS service)")
    async def tns(self, info: Info[GatewayContext, None]) -> TnsObject | None:
        stub = tns_pb2_grpc.TnsServiceStub(_channel(info))
        found = await _rpc(stub.Search(tns_pb2.SearchRequest(
            ra=self.meanra, dec=self.meandec, radius_arcsec=MATCH_RADIUS_ARCSEC, limit=1)))
        return _tns(found.objects[0]) if found.objects else None

    @strawberry.field(description="classifier probabilities, by classifier then ranking")
    async def probabilities(self, info: Info[GatewayContext, None],
                            classifier: str | None = None) -> list[Probability]:
        rows = await _store(info).probabilities(self.oid, classifier)
        return [_pick(Probability, r) for r in rows]

    @strawberry.field(description="the light-curve features behind the latest classification "
                                  "(empty until the object is classified)")
    async def features(self, info: Info[GatewayContext, None]) -> list[Feature]:
        doc = await _store(info).features(self.oid)
        if doc is None:
            return []
        return [Feature(name=k, value=v) for k, v in doc.get("values", {}).items()]

    @strawberry.field(description="detections in time order")
    async def detections(self, info: Info[GatewayContext, None]) -> list[Detection]:
        docs = await _store(info).light_curve(DETECTIONS, self.oid)
        return [_pick(Detection, d) for d in docs]

    @strawberry.field(description="upper limits in time order")
    async def non_detections(self, info: Info[GatewayContext, None]) -> list[NonDetection]:
        docs = await _store(info).light_curve(NON_DETECTIONS, self.oid)
        return [_pick(NonDetection, d) for d in docs]

    @strawberry.field(description="forced photometry in time order")
    async def forced_photometry(self, info: Info[GatewayContext, None]
                                ) -> list[ForcedPhotometry]:
        docs = await _store(info).light_curve(FORCED_PHOTOMETRY, self.oid)
        return [_pick(ForcedPhotometry, d) for d in docs]


def _object(doc: Mapping[str, Any]) -> AstroObject:
    stats = [_pick(MagStats, m) for m in doc.get("magstats", [])]
    matches = sorted((_pick(CrossMatch, m, catalog=name)
                      for name, m in doc.get("xmatch", {}).items()),
                     key=lambda m: m.distance_arcsec)
    return _pick(AstroObject, doc, magstats=stats, xmatch=matches)


@strawberry.input(description="A cone: centre in degrees, radius in arcseconds")
class ConeInput:
    ra: float
    dec: float
    radius: float


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class ObjectEdge:
    cursor: str
    node: AstroObject


@strawberry.type(description="A page of objects ordered by oid (cursor pagination)")
class ObjectConnection:
    edges: list[ObjectEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[AstroObject]:
        return [e.node for e in self.edges]


def encode_cursor(oid: str) -> str:
    return base64.urlsafe_b64encode(oid.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        oid = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    if not oid:
        raise ValueError(f"invalid cursor {cursor!r}")
    return oid


@strawberry.type
class Query:
    @strawberry.field(description="one object by its ZTF objectId")
    async def object(self, info: Info[GatewayContext, None], oid: str) -> AstroObject | None:
        doc = await _store(info).get_object(oid)
        return None if doc is None else _object(doc)

    @strawberry.field(description="objects filtered by ndet, firstmjd and a cone, by oid")
    async def objects(
        self, info: Info[GatewayContext, None],
        ndet_min: int | None = None, ndet_max: int | None = None,
        firstmjd_min: float | None = None, firstmjd_max: float | None = None,
        cone: ConeInput | None = None, first: int = 50, after: str | None = None,
    ) -> ObjectConnection:
        if not 1 <= first <= MAX_PAGE:
            raise ValueError(f"first must be between 1 and {MAX_PAGE}")
        flt = ObjectFilter(
            ndet_min=ndet_min, ndet_max=ndet_max, firstmjd_min=firstmjd_min,
            firstmjd_max=firstmjd_max,
            cone=Cone(cone.ra, cone.dec, cone.radius) if cone else None)
        docs, more = await _store(info).find_objects(
            flt, after=decode_cursor(after) if after else None, limit=first)
        edges = [ObjectEdge(cursor=encode_cursor(d["_id"]), node=_object(d)) for d in docs]
        return ObjectConnection(edges=edges, page_info=PageInfo(
            has_next_page=more, end_cursor=edges[-1].cursor if edges else None))


    @strawberry.field(description="catsHTM-style cone search of one catalogue, nearest "
                      "first (catalogue service); radius in arcsec")
    async def cone_search(self, info: Info[GatewayContext, None], catalog: str, ra: float,
                          dec: float, radius: float, limit: int = 100) -> list[CatalogSource]:
        stub = catalog_pb2_grpc.CatalogServiceStub(_channel(info))
        request = catalog_pb2.ConeSearchRequest(catalog=catalog, ra=ra, dec=dec,
                                                radius_arcsec=radius, limit=limit)

        async def collect() -> list[CatalogSource]:
            return [CatalogSource(catalog=src.catalog, source_id=src.source_id, ra=src.ra,
                                  dec=src.dec, distance_arcsec=src.distance_arcsec,
                                  columns=MessageToDict(src.columns))
                    async for chunk in stub.ConeSearch(request) for src in chunk.sources]

        return await _rpc(collect())


schema = strawberry.Schema(query=Query)
