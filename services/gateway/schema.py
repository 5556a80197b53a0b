"""The GraphQL schema: objects, light curves, classifications, labels and live subscriptions.

Resolvers are thin: they translate arguments, call :class:`NightjarStore` (through the
request's DataLoaders, so a page of objects costs one read per list field, not one per
object), the gRPC services or the live hub (all injected through the request context)
and map the answers onto types.  Field names are ALeRCE's in camelCase (``magpsfCorr``,
``sigmapsfCorrExt``, ``magmeanCorr``...).  ZTF ids (``candid``, ``pid``, ``rfid``)
exceed GraphQL's 32-bit ``Int`` and JavaScript's 2**53, so they travel as the ``BigInt``
scalar, serialised as a decimal string.  Arguments are lenient: a null or absent
filter, order, page size or field means its default, never an error.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, NewType

import grpc
import strawberry
from google.protobuf.json_format import MessageToDict
from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.types import ExecutionContext, Info

from ml.lc_classifier.taxonomy import (
    BRANCH_CLASSIFIERS,
    FULL_CLASSIFIER,
    HIERARCHY,
    TOP_CLASSIFIER,
)
from ml.registry import ModelRegistry
from nightjar.context.tns import MATCH_RADIUS_ARCSEC
from nightjar.core import live
from nightjar.core.lightcurve_table import KIND_DESCRIPTIONS, MAG_UNIT, lightcurve_points
from nightjar.sky import Cone
from nightjar.store.mongo import (
    NULLABLE_ORDER_FIELDS,
    PROBABILITY,
    NightjarStore,
    ObjectFilter,
    ObjectOrder,
    PageKey,
)
from nightjar.store.schema import DETECTIONS, FORCED_PHOTOMETRY, NON_DETECTIONS
from nightjar.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    stamps_pb2,
    stamps_pb2_grpc,
    tns_pb2,
    tns_pb2_grpc,
)
from services.gateway.downloads import (
    avro_path,
    finding_chart_path,
    lightcurve_path,
    stamp_path,
)
from services.gateway.errors import (
    BAD_USER_INPUT,
    NOT_FOUND,
    UNAUTHENTICATED,
    UNAVAILABLE,
    ErrorCodes,
    GatewayError,
    limit_error,
)
from services.gateway.limits import GatewayLimits, QueryLimits
from services.gateway.live import LiveHub

DEFAULT_PAGE = 50
MAX_PAGE = GatewayLimits().max_page
STAMP_CLASSIFIER = "stamp_classifier"
#: a user label: a word such as BOGUS or POSSIBLE_SN, or a free-form tag
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .:/+\-]{0,63}$")
MAX_COMMENT = 2000

def _big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("a BigInt is an integer or a string of decimal digits")
    try:
        return int(value)
    except ValueError:
        raise ValueError("a BigInt is an integer or a string of decimal digits") from None


BigInt = strawberry.scalar(
    NewType("BigInt", int),
    serialize=lambda v: str(v),
    parse_value=lambda v: _big_int(v),
    description="64-bit integer (ZTF candid, pid, rfid), serialised as a decimal string",
)


class Loaders:
    """Per-request DataLoaders: one store read per list field for all objects of a page."""

    def __init__(self, store: NightjarStore):
        def grouped(read: Any) -> DataLoader[str, Any]:
            async def load(oids: list[str]) -> list[Any]:
                found = await read(oids)
                return [found.get(oid) for oid in oids]
            return DataLoader(load_fn=load)

        self.detections = grouped(lambda oids: store.light_curves(DETECTIONS, oids))
        self.non_detections = grouped(lambda oids: store.light_curves(NON_DETECTIONS, oids))
        self.forced_photometry = grouped(
            lambda oids: store.light_curves(FORCED_PHOTOMETRY, oids))
        self.probabilities = grouped(store.probabilities_of)
        self.features = grouped(store.features_of)
        self.labels = grouped(store.labels_of)
        self.objects = grouped(store.objects_by_id)


@dataclass
class GatewayContext:
    """What resolvers reach: the store, the gRPC channel, the live hub, the caller."""

    store: NightjarStore
    #: channel to Nightjar's gRPC services (catalogues, TNS, stamps); None = not configured
    grpc_channel: grpc.aio.Channel | None = None
    hub: LiveHub | None = None
    registry: ModelRegistry | None = None
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    #: the API key's owner, None for an anonymous caller
    user: str | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.store)


GatewayInfo = Info[GatewayContext, None]


def _channel(info: GatewayInfo) -> grpc.aio.Channel:
    channel = info.context.grpc_channel
    if channel is None:
        raise GatewayError(UNAVAILABLE, "this gateway has no gRPC services configured "
                                        "(run `nightjar serve`, or set NIGHTJAR_GRPC_TARGET)")
    return channel


def _pick(cls: type, doc: Mapping[str, Any], **extra: Any) -> Any:
    """Build a strawberry type from a document: its declared fields, missing ones null."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{n: doc.get(n) for n in names if n not in extra}, **extra)


def _cone(cone: ConeInput | None) -> Cone | None:
    if cone is None or cone.ra is None or cone.dec is None or cone.radius is None:
        return None
    try:
        return Cone(cone.ra, cone.dec, cone.radius)
    except ValueError as exc:
        raise GatewayError(BAD_USER_INPUT, str(exc)) from exc


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


def _source(src: catalog_pb2.Source) -> CatalogSource:
    return CatalogSource(catalog=src.catalog, source_id=src.source_id, ra=src.ra, dec=src.dec,
                         distance_arcsec=src.distance_arcsec,
                         columns=MessageToDict(src.columns))


@strawberry.enum(description="Which magnitude a light-curve point is (all AB magnitudes)")
class MagnitudeKind(Enum):
    DIFFERENCE = strawberry.enum_value("difference",
                                       description=KIND_DESCRIPTIONS["difference"])
    CORRECTED = strawberry.enum_value("corrected", description=KIND_DESCRIPTIONS["corrected"])
    FORCED = strawberry.enum_value("forced", description=KIND_DESCRIPTIONS["forced"])
    UPPER_LIMIT = strawberry.enum_value("upper_limit",
                                        description=KIND_DESCRIPTIONS["upper_limit"])


@strawberry.type(description="One point of a light curve, saying which magnitude it is")
class LightcurvePoint:
    mjd: float = strawberry.field(description="Modified Julian Date [d]")
    fid: int = strawberry.field(description="ZTF filter id (1 = g, 2 = r, 3 = i)")
    band: str
    kind: MagnitudeKind
    mag: float = strawberry.field(description="magnitude [mag] of the given kind")
    mag_err: float | None = strawberry.field(description="1-sigma error [mag]; null for an "
                                                         "upper limit")
    unit: str = strawberry.field(description='always "mag" (AB)')
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="the detection's candid; null for upper limits and forced photometry")
    isdiffpos: str | None = strawberry.field(description="t: positive difference, f: negative")


@strawberry.type(description="A user's label on an object (addLabel), apart from the "
                             "classifiers' output")
class Label:
    oid: str
    candid: BigInt | None  # type: ignore[valid-type]
    label: str
    comment: str | None
    user: str = strawberry.field(description="owner of the API key that added it")
    created: str = strawberry.field(description="when, ISO 8601 UTC")


def _label(doc: Mapping[str, Any]) -> Label:
    created = doc["created"]
    if isinstance(created, dt.datetime):
        created = created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return Label(oid=doc["oid"], candid=doc.get("candid"), label=doc["label"],
                 comment=doc.get("comment"), user=doc["user"], created=str(created))


@strawberry.type(description="An alert with cutouts (stamps service), and its downloads")
class Stamp:
    candid: BigInt  # type: ignore[valid-type]
    mjd: float
    fid: int
    kinds: list[str] = strawberry.field(description="science, template, difference")
    oid: strawberry.Private[str]

    @strawberry.field(description="relative URL of a cutout: KIND = science, template or "
                                  "difference, FORMAT = fits or png")
    def url(self, kind: str = "science", format: str = "png") -> str:
        return stamp_path(self.oid, self.candid, kind, format)

    @strawberry.field(description="relative URL of the alert packet (Avro)")
    def avro_url(self) -> str:
        return avro_path(self.oid, self.candid)


@strawberry.type(description="Download links of an object (relative to the gateway)")
class Downloads:
    oid: strawberry.Private[str]

    @strawberry.field(description="light curve as CSV")
    def lightcurve_csv(self) -> str:
        return lightcurve_path(self.oid, "csv")

    @strawberry.field(description="light curve as a VOTable, with units")
    def lightcurve_votable(self) -> str:
        return lightcurve_path(self.oid, "xml")

    @strawberry.field(description="light-curve plot (PNG)")
    def lightcurve_png(self) -> str:
        return lightcurve_path(self.oid, "png")

    @strawberry.field(description="finding chart (PDF)")
    def finding_chart(self) -> str:
        return finding_chart_path(self.oid)


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
    async def tns(self, info: GatewayInfo) -> TnsObject | None:
        stub = tns_pb2_grpc.TnsServiceStub(_channel(info))
        found = await stub.Search(tns_pb2.SearchRequest(
            ra=self.meanra, dec=self.meandec, radius_arcsec=MATCH_RADIUS_ARCSEC, limit=1))
        return _tns(found.objects[0]) if found.objects else None

    @strawberry.field(description="classifier probabilities, by classifier then ranking; "
                                  "CLASSIFIER (e.g. lc_classifier) keeps one classifier")
    async def probabilities(self, info: GatewayInfo,
                            classifier: str | None = None) -> list[Probability]:
        rows = await info.context.loaders.probabilities.load(self.oid)
        return [_pick(Probability, r) for r in rows
                if classifier is None or r["classifier_name"] == classifier]

    @strawberry.field(description="the light-curve features behind the latest classification "
                                  "(empty until the object is classified)")
    async def features(self, info: GatewayInfo) -> list[Feature]:
        doc = await info.context.loaders.features.load(self.oid)
        if doc is None:
            return []
        return [Feature(name=k, value=v) for k, v in doc.get("values", {}).items()]

    @strawberry.field(description="detections in time order")
    async def detections(self, info: GatewayInfo) -> list[Detection]:
        docs = await info.context.loaders.detections.load(self.oid)
        return [_pick(Detection, d) for d in docs]

    @strawberry.field(description="upper limits in time order")
    async def non_detections(self, info: GatewayInfo) -> list[NonDetection]:
        docs = await info.context.loaders.non_detections.load(self.oid)
        return [_pick(NonDetection, d) for d in docs]

    @strawberry.field(description="forced photometry in time order")
    async def forced_photometry(self, info: GatewayInfo) -> list[ForcedPhotometry]:
        docs = await info.context.loaders.forced_photometry.load(self.oid)
        return [_pick(ForcedPhotometry, d) for d in docs]

    @strawberry.field(description="every light-curve point in time order, each saying which "
                                  "magnitude it is: difference, corrected apparent, forced "
                                  "photometry or upper limit (KINDS keeps some)")
    async def lightcurve(self, info: GatewayInfo,
                         kinds: list[MagnitudeKind] | None = None) -> list[LightcurvePoint]:
        loaders = info.context.loaders
        points = lightcurve_points(self.oid, await loaders.detections.load(self.oid),
                                   await loaders.non_detections.load(self.oid),
                                   await loaders.forced_photometry.load(self.oid))
        wanted = {k.value for k in kinds} if kinds else None
        return [LightcurvePoint(mjd=p["mjd"], fid=p["fid"], band=p["band"],
                                kind=MagnitudeKind(p["kind"]), mag=p["mag"],
                                mag_err=p["e_mag"], unit=MAG_UNIT, candid=p["candid"],
                                isdiffpos=p["isdiffpos"])
                for p in points if wanted is None or p["kind"] in wanted]

    @strawberry.field(description="users' labels (addLabel), oldest first")
    async def labels(self, info: GatewayInfo) -> list[Label]:
        return [_label(d) for d in await info.context.loaders.labels.load(self.oid)]

    @strawberry.field(description="alerts of this object with cutouts (stamps service), "
                                  "in time order")
    async def stamps(self, info: GatewayInfo) -> list[Stamp]:
        stub = stamps_pb2_grpc.StampServiceStub(_channel(info))
        listed = await stub.ListStamps(stamps_pb2.ListStampsRequest(oid=self.oid))
        return [Stamp(candid=s.candid, mjd=s.mjd, fid=s.fid, kinds=list(s.kinds), oid=self.oid)
                for s in listed.stamps]

    @strawberry.field(description="download links (light curve, finding chart)")
    def downloads(self) -> Downloads:
        return Downloads(oid=self.oid)


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


@strawberry.input(description="An inclusive range; a null bound is open")
class IntRange:
    min: int | None = None
    max: int | None = None


@strawberry.input(description="An inclusive range; a null bound is open")
class FloatRange:
    min: float | None = None
    max: float | None = None


@strawberry.input(description="Filters of `objects`; every field is optional and a null "
                              "means no constraint")
class ObjectFilterInput:
    oids: list[str] | None = strawberry.field(default=None, description="these objects only")
    classifier: str | None = strawberry.field(
        default=None, description="e.g. lc_classifier, lc_classifier_top, stamp_classifier")
    classifier_version: str | None = None
    class_name: str | None = strawberry.field(default=None, description="e.g. SNIa, VS")
    probability_min: float | None = strawberry.field(
        default=None, description="the class's probability at least this")
    ranking: int | None = strawberry.field(
        default=None, description="the class's ranking; null = 1 when a class is given, "
                                  "0 = any ranking")
    ndet: IntRange | None = None
    firstmjd: FloatRange | None = None
    lastmjd: FloatRange | None = None
    cone: ConeInput | None = None


@strawberry.enum(description="What `objects` can be ordered by")
class ObjectOrderField(Enum):
    OID = "oid"
    NDET = "ndet"
    FIRSTMJD = "firstmjd"
    LASTMJD = "lastmjd"
    DELTAJD = "deltajd"
    MEANRA = "meanra"
    MEANDEC = "meandec"
    SIGMARA = "sigmara"
    SIGMADEC = "sigmadec"
    G_R_MAX = "g_r_max"
    G_R_MAX_CORR = "g_r_max_corr"
    G_R_MEAN = "g_r_mean"
    G_R_MEAN_CORR = "g_r_mean_corr"
    PROBABILITY = strawberry.enum_value(PROBABILITY, description=(
        "the probability of the filtered class (needs filter.classifier and className)"))


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(description="Order of `objects`: null field = OID; null direction = DESC "
                              "for PROBABILITY, else ASC.  Objects lacking a nullable "
                              "statistic (gRMax...) come last; ties are broken by oid")
class ObjectOrderInput:
    field: ObjectOrderField | None = None
    direction: OrderDirection | None = None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class ObjectEdge:
    cursor: str
    node: AstroObject
    matched_probability: Probability | None = strawberry.field(
        default=None, description="the probability row that passed the class filter")


@strawberry.type(description="A page of objects (Relay connection)")
class ObjectConnection:
    edges: list[ObjectEdge]
    page_info: PageInfo
    flt: strawberry.Private[ObjectFilter]

    @strawberry.field
    def nodes(self) -> list[AstroObject]:
        return [e.node for e in self.edges]

    @strawberry.field(description="how many objects pass the filter (computed only when "
                                  "selected)")
    async def total_count(self, info: GatewayInfo) -> int:
        return await info.context.store.count_objects(self.flt)


def encode_cursor(order: ObjectOrder, key: PageKey) -> str:
    payload = {"f": order.field, "d": order.descending, "v": key.value, "o": key.oid}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, order: ObjectOrder) -> PageKey:
    """The key a cursor encodes; an oid alone (the older cursors) for the default order."""
    try:
        text = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(BAD_USER_INPUT, f"invalid cursor {cursor!r}") from exc
    if not text:
        raise GatewayError(BAD_USER_INPUT, f"invalid cursor {cursor!r}")
    if not text.startswith("{"):
        payload = {"f": "oid", "d": False, "v": text, "o": text}
    else:
        try:
            payload = json.loads(text)
            payload["o"] = str(payload["o"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayError(BAD_USER_INPUT, f"invalid cursor {cursor!r}") from exc
    if payload.get("f") != order.field or bool(payload.get("d")) != order.descending:
        raise GatewayError(BAD_USER_INPUT, "this cursor belongs to another order; use the "
                                           "same orderBy as the page it came from")
    return PageKey(payload.get("v"), str(payload["o"]))


def _range(value: Any) -> tuple[Any, Any]:
    return (None, None) if value is None else (value.min, value.max)


def object_filter(flt: ObjectFilterInput | None, **legacy: Any) -> ObjectFilter:
    """The store filter of the GraphQL input (nulls = defaults) and the deprecated args."""
    f = flt or ObjectFilterInput()
    (ndet_min, ndet_max), (first_min, first_max), (last_min, last_max) = (
        _range(f.ndet), _range(f.firstmjd), _range(f.lastmjd))
    ranking = f.ranking
    if ranking is None and f.class_name is not None:
        ranking = 1
    if f.probability_min is not None and not 0.0 <= f.probability_min <= 1.0:
        raise GatewayError(BAD_USER_INPUT, "probabilityMin must be within [0, 1]")
    return ObjectFilter(
        ndet_min=legacy.get("ndet_min") if ndet_min is None else ndet_min,
        ndet_max=legacy.get("ndet_max") if ndet_max is None else ndet_max,
        firstmjd_min=legacy.get("firstmjd_min") if first_min is None else first_min,
        firstmjd_max=legacy.get("firstmjd_max") if first_max is None else first_max,
        lastmjd_min=last_min, lastmjd_max=last_max,
        cone=_cone(f.cone) or _cone(legacy.get("cone")),
        oids=list(f.oids) if f.oids is not None else None,
        classifier=f.classifier, classifier_version=f.classifier_version,
        class_name=f.class_name, probability_min=f.probability_min,
        ranking=None if ranking == 0 else ranking)


def object_order(order: ObjectOrderInput | None) -> ObjectOrder:
    field_ = (order.field if order and order.field else ObjectOrderField.OID).value
    direction = order.direction if order else None
    if direction is None:
        direction = OrderDirection.DESC if field_ == PROBABILITY else OrderDirection.ASC
    return ObjectOrder(field_, descending=direction is OrderDirection.DESC)


@strawberry.type(description="A classifier, its registered versions and classes")
class Classifier:
    name: str
    versions: list[str] = strawberry.field(description="registered versions, newest first")
    classes: list[str]
    description: str
    parent_classifier: str | None = strawberry.field(
        description="for a branch of the hierarchical classifier: the top-level classifier")
    parent_class: str | None = strawberry.field(
        description="the top-level class this branch refines")


@strawberry.type(description="A class of the light-curve taxonomy (Sánchez-Sáez et al. 2021)")
class TaxonomyNode:
    name: str
    level: str = strawberry.field(description='"top" (Transient, Stochastic, Periodic) or '
                                              '"class"')
    parent: str | None
    children: list[str]


def _classifiers(registry: ModelRegistry | None) -> list[Classifier]:
    registry = registry or ModelRegistry([])

    def versions(name: str) -> list[str]:
        return [m.version for m in registry.versions(name)]

    def classes(name: str, default: tuple[str, ...]) -> list[str]:
        found = registry.versions(name)
        return list(found[0].card.get("classes", default)) if found else list(default)

    lc = versions(FULL_CLASSIFIER)
    out = [
        Classifier(name=FULL_CLASSIFIER, versions=lc,
                   classes=classes(FULL_CLASSIFIER,
                                   tuple(c for cs in HIERARCHY.values() for c in cs)),
                   description="hierarchical light-curve classifier, 15 classes (ALeRCE's "
                               "lc_classifier: top-level probability x branch probability)",
                   parent_classifier=None, parent_class=None),
        Classifier(name=TOP_CLASSIFIER, versions=lc, classes=list(HIERARCHY),
                   description="top level of the light-curve classifier",
                   parent_classifier=None, parent_class=None),
    ]
    out += [Classifier(name=name, versions=lc, classes=list(HIERARCHY[top]),
                       description=f"{top} branch of the light-curve classifier",
                       parent_classifier=TOP_CLASSIFIER, parent_class=top)
            for top, name in BRANCH_CLASSIFIERS.items()]
    out.append(Classifier(name=STAMP_CLASSIFIER, versions=versions(STAMP_CLASSIFIER),
                          classes=classes(STAMP_CLASSIFIER,
                                          ("AGN", "SN", "VS", "asteroid", "bogus")),
                          description="stamp classifier: the first alert's cutouts and "
                                      "metadata", parent_classifier=None, parent_class=None))
    return out


# ---------------------------------------------------------------------------- live types
@strawberry.input(description="Which classifications a subscription receives; null = any")
class ClassificationFilterInput:
    classifier: str | None = None
    class_name: str | None = None
    probability_min: float | None = None
    ranking: int | None = strawberry.field(default=None, description="e.g. 1: only the "
                                                                     "most probable class")
    cone: ConeInput | None = None


@strawberry.input(description="Which alerts a subscription receives; null = any")
class AlertFilterInput:
    cone: ConeInput | None = None
    fid: int | None = None
    magpsf_min: float | None = strawberry.field(default=None, description="[mag]")
    magpsf_max: float | None = strawberry.field(default=None, description="[mag]")
    oids: list[str] | None = None


_MISSED = ("events this subscription lost before this one because it read too slowly "
           "(its queue keeps the newest; 0 normally)")


@strawberry.type(description="A new or changed classification (one class of one object)")
class LiveClassification:
    oid: str
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="the alert the stamp classifier used; null for light-curve classifiers")
    classifier_name: str
    classifier_version: str
    class_name: str
    probability: float
    ranking: int
    ra: float = strawberry.field(description="object's mean RA [deg]")
    dec: float = strawberry.field(description="object's mean Dec [deg]")
    stored_at: float = strawberry.field(description="when the pipeline stored it [Unix s]")
    missed: int = strawberry.field(description=_MISSED)


@strawberry.type(description="A newly stored alert detection")
class LiveAlert:
    oid: str
    candid: BigInt  # type: ignore[valid-type]
    mjd: float
    fid: int
    magpsf: float = strawberry.field(description="difference magnitude [mag]")
    sigmapsf: float | None
    magpsf_corr: float | None = strawberry.field(description="corrected apparent magnitude "
                                                             "[mag], null if uncorrected")
    isdiffpos: str
    ra: float
    dec: float
    stored_at: float = strawberry.field(description="when the pipeline stored it [Unix s]")
    missed: int = strawberry.field(description=_MISSED)


def _hub(info: GatewayInfo) -> LiveHub:
    if info.context.hub is None:
        raise GatewayError(UNAVAILABLE, "this gateway has no live feed configured")
    return info.context.hub


# ---------------------------------------------------------------------------- root types
@strawberry.type
class Query:
    @strawberry.field(description="one object by its ZTF objectId")
    async def object(self, info: GatewayInfo, oid: str) -> AstroObject | None:
        doc = await info.context.loaders.objects.load(oid)
        return None if doc is None else _object(doc)

    @strawberry.field(description="objects passing FILTER in ORDERBY, FIRST at a time after "
                                  "the cursor AFTER (Relay); stable under ingestion for an "
                                  "order whose value does not change (oid, firstmjd, "
                                  "probability)")
    async def objects(
        self, info: GatewayInfo,
        filter: ObjectFilterInput | None = None,
        order_by: ObjectOrderInput | None = None,
        first: int | None = None,
        after: str | None = None,
        ndet_min: Annotated[int | None, strawberry.argument(
            deprecation_reason="use filter: {ndet: {min}}")] = None,
        ndet_max: Annotated[int | None, strawberry.argument(
            deprecation_reason="use filter: {ndet: {max}}")] = None,
        firstmjd_min: Annotated[float | None, strawberry.argument(
            deprecation_reason="use filter: {firstmjd: {min}}")] = None,
        firstmjd_max: Annotated[float | None, strawberry.argument(
            deprecation_reason="use filter: {firstmjd: {max}}")] = None,
        cone: Annotated[ConeInput | None, strawberry.argument(
            deprecation_reason="use filter: {cone}")] = None,
    ) -> ObjectConnection:
        limits = info.context.limits
        first = DEFAULT_PAGE if first is None else first
        if first < 1:
            raise GatewayError(BAD_USER_INPUT, "first must be at least 1")
        if first > limits.max_page:
            raise limit_error(f"first is {first}; the largest page is {limits.max_page}",
                              "page_size", max=limits.max_page)
        flt = object_filter(filter, ndet_min=ndet_min, ndet_max=ndet_max,
                            firstmjd_min=firstmjd_min, firstmjd_max=firstmjd_max, cone=cone)
        order = object_order(order_by)
        if order.field == PROBABILITY and (flt.classifier is None or flt.class_name is None):
            raise GatewayError(BAD_USER_INPUT, "orderBy PROBABILITY needs filter.classifier "
                                               "and filter.className")
        key = decode_cursor(after, order) if after else None
        if key is not None and key.value is None and order.field not in NULLABLE_ORDER_FIELDS:
            raise GatewayError(BAD_USER_INPUT, f"invalid cursor {after!r}")
        page = await info.context.store.find_objects(flt, order, after=key, limit=first)
        edges = [ObjectEdge(cursor=encode_cursor(order, k), node=_object(d),
                            matched_probability=(_pick(Probability, page.matched[d["_id"]])
                                                 if d["_id"] in page.matched else None))
                 for d, k in zip(page.docs, page.keys, strict=True)]
        return ObjectConnection(edges=edges, flt=flt, page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None))

    @strawberry.field(description="the classifiers, their versions and classes")
    def classifiers(self, info: GatewayInfo) -> list[Classifier]:
        return _classifiers(info.context.registry)

    @strawberry.field(description="the light-curve taxonomy: top classes and their classes")
    def taxonomy(self) -> list[TaxonomyNode]:
        tops = [TaxonomyNode(name=top, level="top", parent=None, children=list(classes))
                for top, classes in HIERARCHY.items()]
        return tops + [TaxonomyNode(name=c, level="class", parent=top, children=[])
                       for top, classes in HIERARCHY.items() for c in classes]

    @strawberry.field(description="the catalogues of coneSearch and crossmatch "
                                  "(catalogue service)")
    async def catalogs(self, info: GatewayInfo) -> list[Catalog]:
        stub = catalog_pb2_grpc.CatalogServiceStub(_channel(info))
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
        stub = catalog_pb2_grpc.CatalogServiceStub(_channel(info))
        request = catalog_pb2.ConeSearchRequest(catalog=catalog, ra=ra, dec=dec,
                                                radius_arcsec=radius, limit=limit)
        return [_source(src) async for chunk in stub.ConeSearch(request)
                for src in chunk.sources]

    @strawberry.field(description="the nearest source of each catalogue (all when CATALOGS "
                                  "is null) within RADIUS arcsec (catalogue service)")
    async def crossmatch(self, info: GatewayInfo, ra: float, dec: float,
                         radius: float | None = None,
                         catalogs: list[str] | None = None) -> list[CatalogSource]:
        stub = catalog_pb2_grpc.CatalogServiceStub(_channel(info))
        found = await stub.Crossmatch(catalog_pb2.CrossmatchRequest(
            catalogs=catalogs or [], ra=ra, dec=dec, radius_arcsec=radius))
        return [_source(src) for src in found.matches]

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
        stub = tns_pb2_grpc.TnsServiceStub(_channel(info))
        found = await stub.Search(tns_pb2.SearchRequest(
            ra=ra, dec=dec, radius_arcsec=radius or MATCH_RADIUS_ARCSEC, limit=20))
        return [_tns(o) for o in found.objects]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Label an object (e.g. BOGUS, POSSIBLE_SN, or a free "
                                     "tag), optionally one of its alerts, with a comment; "
                                     "needs an API key.  Stored with who and when, apart "
                                     "from the classifiers' output")
    async def add_label(self, info: GatewayInfo, oid: str, label: str,
                        candid: BigInt | None = None,  # type: ignore[valid-type]
                        comment: str | None = None) -> Label:
        ctx = info.context
        if ctx.user is None:
            raise GatewayError(UNAUTHENTICATED, "addLabel needs an API key (header X-API-Key "
                                                "or Authorization: Bearer)")
        if not LABEL_PATTERN.match(label):
            raise GatewayError(BAD_USER_INPUT, "a label is 1-64 letters, digits, spaces or "
                                               "_ . : / + -, starting with a letter or digit")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise GatewayError(BAD_USER_INPUT, f"comment longer than {MAX_COMMENT} characters")
        if await ctx.loaders.objects.load(oid) is None:
            raise GatewayError(NOT_FOUND, f"no object {oid}")
        if candid is not None:
            known = {d["_id"] for d in await ctx.loaders.detections.load(oid)}
            if candid not in known:
                raise GatewayError(BAD_USER_INPUT, f"candid {candid} is not a detection of {oid}")
        doc = await ctx.store.add_label(oid, candid, label, comment, ctx.user)
        return _label(doc)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="every new or changed classification passing FILTER, "
                                         "one message per class row")
    async def classifications(self, info: GatewayInfo,
                              filter: ClassificationFilterInput | None = None
                              ) -> AsyncGenerator[LiveClassification, None]:
        f = filter or ClassificationFilterInput()
        selected = live.ClassificationFilter(f.classifier, f.class_name, f.probability_min,
                                             f.ranking, _cone(f.cone))
        async with _hub(info).subscribe(lambda e: [(e, r) for r in selected.rows(e)]) as sub:
            while True:
                (event, row), missed = await sub.get()
                yield LiveClassification(
                    oid=event["oid"], candid=event.get("candid"),
                    classifier_name=event["classifier_name"],
                    classifier_version=event["classifier_version"],
                    class_name=row["class_name"], probability=row["probability"],
                    ranking=row["ranking"], ra=event["ra"], dec=event["dec"],
                    stored_at=event["stored_ms"] / 1000.0, missed=missed)

    @strawberry.subscription(description="every newly stored alert detection passing FILTER")
    async def alerts(self, info: GatewayInfo, filter: AlertFilterInput | None = None
                     ) -> AsyncGenerator[LiveAlert, None]:
        f = filter or AlertFilterInput()
        selected = live.AlertFilter(_cone(f.cone), f.fid, f.magpsf_min, f.magpsf_max,
                                    frozenset(f.oids) if f.oids is not None else None)
        async with _hub(info).subscribe(lambda e: [e] if selected.passes(e) else []) as sub:
            while True:
                event, missed = await sub.get()
                yield LiveAlert(
                    oid=event["oid"], candid=event["candid"], mjd=event["mjd"],
                    fid=event["fid"], magpsf=event["magpsf"], sigmapsf=event["sigmapsf"],
                    magpsf_corr=event["magpsf_corr"], isdiffpos=event["isdiffpos"],
                    ra=event["ra"], dec=event["dec"], stored_at=event["stored_ms"] / 1000.0,
                    missed=missed)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """Log nothing here: :class:`ErrorCodes` logs internal errors (with their id); the
        users' own mistakes are answered, not logged as server errors."""


def make_schema(limits: GatewayLimits | None = None,
                on_error: Callable[[str], None] | None = None) -> strawberry.Schema:
    """The schema with its query limits and error codes (``on_error`` sees each code).

    Extensions are given as factories: each operation gets its own instance.
    """
    chosen = limits or GatewayLimits()
    # a fresh instance per operation (strawberry shares QueryLimits' validation cache
    # between instances)
    return _Schema(query=Query, mutation=Mutation, subscription=Subscription,
                   extensions=[lambda: QueryLimits(chosen), lambda: ErrorCodes(on_error)])


schema = make_schema()
