"""Objects and their light curves: detections, upper limits, forced photometry, labelled
light-curve points of every survey, statistics, stamps, downloads, counterparts, and the
``objects`` / ``object`` / ``solarSystemObject`` queries."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Annotated, Any

import numpy as np
import strawberry

from nightjar.context import MATCH_RADIUS_ARCSEC
from nightjar.core.lightcurve_table import KIND_DESCRIPTIONS, MAG_UNIT, lightcurve_points
from nightjar.minor_planets import designation_keys, display_designation
from nightjar.runner.classify import object_forecast
from nightjar.store.mongo import (
    ANOMALY_SCORE,
    NULLABLE_ORDER_FIELDS,
    PROBABILITY,
    ObjectFilter,
    ObjectOrder,
    PageKey,
)
from nightjar.v1 import stamps_pb2, stamps_pb2_grpc, tns_pb2, tns_pb2_grpc
from services.gateway.downloads import (
    avro_path,
    finding_chart_path,
    lightcurve_path,
    stamp_path,
)
from services.gateway.errors import BAD_USER_INPUT, GatewayError, limit_error
from services.gateway.schema.anomaly import anomaly_model, ranked_by_user, user_of
from services.gateway.schema.catalogs import CrossMatch, TnsObject, tns_object
from services.gateway.schema.classification import (
    Anomaly,
    ClassProbability,
    Feature,
    Probability,
    anomaly_of,
)
from services.gateway.schema.context import (
    BigInt,
    ConeInput,
    FloatRange,
    GatewayInfo,
    IntRange,
    Survey,
    channel_of,
    cone_of,
    pick,
    survey_of,
)
from services.gateway.schema.forecast import (
    MAX_FORECAST_TIMES,
    ObjectForecast,
    Surprise,
    object_forecast_of,
    surprise_of,
)
from services.gateway.schema.labels import Label, label_of
from services.gateway.schema.tns_reports import TnsReport, tns_report_of

DEFAULT_PAGE = 50


_NJY = "[nJy]"


@strawberry.type(description="One classifier's probabilities of an object when it was "
                             "(re)classified")
class ClassificationSnapshot:
    mjd: float = strawberry.field(description="the latest detection it saw [MJD]")
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="that detection's id")
    classifier_name: str
    classifier_version: str
    probabilities: list[ClassProbability] = strawberry.field(
        description="most probable first")


@strawberry.type(description="A detection: an alert's own (ZTF candidate, LSST diaSource) or "
                             "one from an alert's history (prv_candidates, prvDiaSources)")
class Detection:
    candid: BigInt = strawberry.field(  # type: ignore[valid-type]
        description="the survey's detection id: ZTF candid, LSST diaSourceId")
    oid: str
    mjd: float = strawberry.field(description="observation time, MJD in UTC [d]")
    fid: int = strawberry.field(description="filter id: ZTF 1 = g, 2 = r, 3 = i; LSST g r i z "
                                            "y = 1..5, u = 6 (band says which)")
    ra: float
    dec: float
    magpsf: float = strawberry.field(description="difference magnitude [AB mag] (LSST: "
                                                 "31.4 - 2.5 log10|psfFlux|)")
    sigmapsf: float
    isdiffpos: str = strawberry.field(description="t: positive difference flux, f: negative")
    corrected: bool = strawberry.field(description="an apparent magnitude exists (ZTF: the "
                                                   "correction applied; LSST: scienceFlux > 0)")
    dubious: bool
    stellar: bool
    magpsf_corr: float | None = strawberry.field(description="apparent magnitude [mag]: ZTF "
                                                             "corrected, LSST from scienceFlux")
    sigmapsf_corr: float | None = strawberry.field(description="its error, eq. A28 [mag]")
    sigmapsf_corr_ext: float | None = strawberry.field(description="its error, eq. A29 [mag]")
    survey: Survey = Survey.ZTF
    band: str | None = strawberry.field(default=None, description="g r i (ZTF), u g r i z y "
                                                                   "(LSST)")
    psf_flux: float | None = strawberry.field(default=None, description=(
        f"signed difference flux {_NJY} (ZTF: from magpsf and isdiffpos)"))
    psf_flux_err: float | None = strawberry.field(default=None, description=_NJY)
    science_flux: float | None = strawberry.field(default=None, description=(
        f"apparent flux on the science image {_NJY} (ZTF: from magpsfCorr)"))
    science_flux_err: float | None = strawberry.field(default=None, description=_NJY)
    reliability: float | None = strawberry.field(default=None, description=(
        "LSST: Rubin's real/bogus probability"))
    withdrawn: bool = strawberry.field(default=False, description=(
        "LSST: Rubin withdrew this source (timeWithdrawnMjdTai); left out of statistics"))
    midpoint_mjd_tai: float | None = strawberry.field(default=None, description=(
        "LSST: the observation time as Rubin gives it, MJD in TAI [d]"))
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


@strawberry.type(description="An upper limit: ZTF, a prv_candidate without candid; LSST, a "
                             "forced-photometry point below S/N 3 (derived) or a 7.x packet's "
                             "diaNondetectionLimit")
class NonDetection:
    oid: str
    fid: int
    mjd: float
    diffmaglim: float | None = strawberry.field(description="5-sigma limiting magnitude [mag]")
    survey: Survey = Survey.ZTF
    band: str | None = None
    derived: bool = strawberry.field(default=False, description=(
        "computed by Nightjar (LSST: 31.4 - 2.5 log10(5 psfFluxErr) of a forced-photometry "
        "point below S/N 3), not sent by the survey"))


@strawberry.type(description="A forced-photometry point (ZTF fp_hists, LSST prvDiaForcedSources), "
                             "kept apart from detections")
class ForcedPhotometry:
    oid: str
    pid: BigInt = strawberry.field(  # type: ignore[valid-type]
        description="ZTF processing id; LSST diaForcedSourceId")
    fid: int
    mjd: float
    forcediffimflux: float | None
    forcediffimfluxunc: float | None
    magzpsci: float | None
    mag: float | None = strawberry.field(description="magnitude of a positive difference flux "
                                                     "[mag]")
    e_mag: float | None
    forced: bool
    survey: Survey = Survey.ZTF
    band: str | None = None
    psf_flux: float | None = strawberry.field(default=None, description=(
        f"difference flux at the object's position {_NJY}"))
    psf_flux_err: float | None = strawberry.field(default=None, description=_NJY)
    science_flux: float | None = strawberry.field(default=None, description=(
        f"LSST: flux on the science image {_NJY}"))


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



@strawberry.enum(description="Which magnitude a light-curve point is (all AB magnitudes)")
class MagnitudeKind(Enum):
    DIFFERENCE = strawberry.enum_value("difference",
                                       description=KIND_DESCRIPTIONS["difference"])
    CORRECTED = strawberry.enum_value("corrected", description=KIND_DESCRIPTIONS["corrected"])
    FORCED = strawberry.enum_value("forced", description=KIND_DESCRIPTIONS["forced"])
    UPPER_LIMIT = strawberry.enum_value("upper_limit",
                                        description=KIND_DESCRIPTIONS["upper_limit"])


@strawberry.type(description="One point of a light curve, saying which magnitude it is, of "
                             "which survey and band")
class LightcurvePoint:
    mjd: float = strawberry.field(description="Modified Julian Date, UTC [d]")
    fid: int = strawberry.field(description="filter id: ZTF 1 = g, 2 = r, 3 = i; LSST g r i z y "
                                            "= 1..5, u = 6")
    band: str
    kind: MagnitudeKind
    mag: float = strawberry.field(description="magnitude [mag] of the given kind")
    mag_err: float | None = strawberry.field(description="1-sigma error [mag]; null for an "
                                                         "upper limit")
    unit: str = strawberry.field(description='always "mag" (AB)')
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="the detection's id (candid, diaSourceId); null for upper limits and "
                    "forced photometry")
    isdiffpos: str | None = strawberry.field(description="t: positive difference, f: negative")
    survey: Survey = Survey.ZTF
    oid: str = strawberry.field(default="", description="the object the point belongs to (a "
                                                        "counterpart's in a combined curve)")
    flux: float | None = strawberry.field(default=None, description=(
        "flux of the kind [nJy]: difference (signed psfFlux), corrected (scienceFlux), forced "
        "(psfFlux), upper limit (the limiting flux)"))
    flux_err: float | None = strawberry.field(default=None, description="[nJy]")
    derived: bool | None = strawberry.field(default=None, description=(
        "for an upper limit: computed by Nightjar (LSST) rather than sent by the survey"))



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


@strawberry.type(description="The same source seen by another survey: an object of that "
                             "survey within 1.5 arcsec, linked when either was first stored")
class Counterpart:
    oid: str
    survey: Survey
    separation: float = strawberry.field(description="between the mean positions [arcsec]")

    @strawberry.field(description="the counterpart object")
    async def object(self, info: GatewayInfo) -> AstroObject | None:
        doc = await info.context.loaders.objects.load(self.oid)
        return None if doc is None else object_of(doc)


@strawberry.type(name="Object", description="An astronomical object (of one survey) and its "
                                            "statistics")
class AstroObject:
    oid: str = strawberry.field(description="ZTF objectId; LSST diaObjectId as a decimal "
                                            "string")
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
    survey: Survey = Survey.ZTF
    dia_object: strawberry.scalars.JSON | None = strawberry.field(default=None, description=(
        "LSST: Rubin's own diaObject summary as the latest alert sent it (null for ZTF)"))
    surprise: Surprise | None = strawberry.field(default=None, description=(
        "the latest classified detection's deviation from the forecast made from the "
        "detections before it; null until a valid forecast could be made"))

    @strawberry.field(description="objects of other surveys within 1.5 arcsec (the same "
                                  "source), nearest first")
    async def counterparts(self, info: GatewayInfo) -> list[Counterpart]:
        links = await info.context.loaders.counterparts.load(self.oid)
        return [Counterpart(oid=d["other_oid"], survey=Survey(d["other_survey"]),
                            separation=d["separation_arcsec"]) for d in links]

    @strawberry.field(description=f"the TNS object within {MATCH_RADIUS_ARCSEC:g} arcsec of the "
                      "mean position, if any (TNS service)")
    async def tns(self, info: GatewayInfo) -> TnsObject | None:
        stub = tns_pb2_grpc.TnsServiceStub(channel_of(info))
        found = await stub.Search(tns_pb2.SearchRequest(
            ra=self.meanra, dec=self.meandec, radius_arcsec=MATCH_RADIUS_ARCSEC, limit=1))
        return tns_object(found.objects[0]) if found.objects else None

    @strawberry.field(description="classifier probabilities, by classifier then ranking; "
                                  "CLASSIFIER (e.g. lc_classifier) keeps one classifier")
    async def probabilities(self, info: GatewayInfo,
                            classifier: str | None = None) -> list[Probability]:
        rows = await info.context.loaders.probabilities.load(self.oid)
        return [pick(Probability, r) for r in rows
                if classifier is None or r["classifier_name"] == classifier]

    @strawberry.field(description="the light-curve features behind the latest classification "
                                  "(empty until the object is classified)")
    async def features(self, info: GatewayInfo) -> list[Feature]:
        doc = await info.context.loaders.features.load(self.oid)
        if doc is None:
            return []
        return [Feature(name=k, value=v) for k, v in doc.get("values", {}).items()]

    @strawberry.field(description="how unusual the object is (anomaly score, why, history); "
                                  "null until it is classified by a model with a score")
    async def anomaly(self, info: GatewayInfo) -> Anomaly | None:
        return anomaly_of(await info.context.loaders.anomaly.load(self.oid) or [])

    @strawberry.field(description="the forecast of band BAND (ZTF g r i; LSST u g r i z y) "
                                  "at the times MJD [MJD, at most "
                                  f"{MAX_FORECAST_TIMES}], with 68 and 95 % intervals")
    async def forecast(self, info: GatewayInfo, band: str,
                       mjd: list[float]) -> ObjectForecast:
        if not 1 <= len(mjd) <= MAX_FORECAST_TIMES:
            raise limit_error(f"{len(mjd)} forecast times; between 1 and "
                              f"{MAX_FORECAST_TIMES} may be asked", "forecast_times")
        if not all(math.isfinite(t) for t in mjd):
            raise GatewayError(BAD_USER_INPUT, "forecast times must be finite MJDs")
        loaders = info.context.loaders
        doc = {"survey": self.survey.value, "corrected": self.corrected}
        try:
            result, branch = object_forecast(
                await loaders.detections.load(self.oid),
                await loaders.non_detections.load(self.oid), doc,
                await loaders.probabilities.load(self.oid),
                await loaders.features.load(self.oid), band, np.array(mjd, dtype=np.float64))
        except ValueError as exc:
            raise GatewayError(BAD_USER_INPUT, str(exc)) from exc
        return object_forecast_of(result, band, branch)

    @strawberry.field(description="detections in time order")
    async def detections(self, info: GatewayInfo) -> list[Detection]:
        docs = await info.context.loaders.detections.load(self.oid)
        return [detection_of(d) for d in docs]

    @strawberry.field(description="upper limits in time order")
    async def non_detections(self, info: GatewayInfo) -> list[NonDetection]:
        docs = await info.context.loaders.non_detections.load(self.oid)
        return [pick(NonDetection, d, survey=survey_of(d), derived=bool(d.get("derived")))
                for d in docs]

    @strawberry.field(description="forced photometry in time order")
    async def forced_photometry(self, info: GatewayInfo) -> list[ForcedPhotometry]:
        docs = await info.context.loaders.forced_photometry.load(self.oid)
        return [pick(ForcedPhotometry, d, survey=survey_of(d),
                     pid=d.get("pid") if d.get("pid") is not None else d.get(
                         "diaForcedSourceId"), psf_flux=d.get("psfFlux"),
                     psf_flux_err=d.get("psfFluxErr"), science_flux=d.get("scienceFlux"))
                for d in docs]

    @strawberry.field(description="every light-curve point in time order, each saying which "
                                  "magnitude it is (difference, corrected apparent, forced "
                                  "photometry or upper limit; KINDS keeps some), of which "
                                  "survey and band, with its flux [nJy].  SURVEYS combines "
                                  "the points of those surveys from this object and its "
                                  "counterparts (null: this object's own).  Forced "
                                  "photometry without a magnitude (a negative flux) is in "
                                  "forcedPhotometry only")
    async def lightcurve(self, info: GatewayInfo, kinds: list[MagnitudeKind] | None = None,
                         surveys: list[Survey] | None = None) -> list[LightcurvePoint]:
        loaders = info.context.loaders
        members = [(self.oid, self.survey)]
        if surveys:
            links = await loaders.counterparts.load(self.oid)
            members += [(d["other_oid"], Survey(d["other_survey"])) for d in links]
            members = [(oid, survey) for oid, survey in members if survey in surveys]
        points = []
        for oid, survey in members:
            points += lightcurve_points(oid, await loaders.detections.load(oid),
                                        await loaders.non_detections.load(oid),
                                        await loaders.forced_photometry.load(oid),
                                        survey.value)
        points.sort(key=lambda p: (p["mjd"], p["survey"], p["oid"]))
        wanted = {k.value for k in kinds} if kinds else None
        return [LightcurvePoint(mjd=p["mjd"], fid=p["fid"], band=p["band"],
                                kind=MagnitudeKind(p["kind"]), mag=p["mag"],
                                mag_err=p["e_mag"], unit=MAG_UNIT, candid=p["candid"],
                                isdiffpos=p["isdiffpos"], survey=Survey(p["survey"]),
                                oid=p["oid"], flux=p["flux"], flux_err=p["e_flux"],
                                derived=p["derived"])
                for p in points
                if (wanted is None or p["kind"] in wanted) and p["mag"] is not None]

    @strawberry.field(description="every classification of the object as its light curve "
                                  "grew (each classifier's probabilities at each detection "
                                  "it was classified on), oldest first; CLASSIFIER keeps one")
    async def classification_history(self, info: GatewayInfo, classifier: str | None = None
                                     ) -> list[ClassificationSnapshot]:
        docs = (await info.context.store.classification_events([self.oid]))[self.oid]
        return [ClassificationSnapshot(
                    mjd=d["mjd"], candid=d.get("candid"), classifier_name=name,
                    classifier_version=str(entry.get("version") or ""),
                    probabilities=[ClassProbability(class_name=c, probability=p) for c, p in
                                   sorted(entry["probabilities"].items(), key=lambda kv: -kv[1])])
                for d in docs for name, entry in sorted(d.get("classifiers", {}).items())
                if classifier is None or name == classifier]

    @strawberry.field(description="AT reports sent to TNS about this object (sendTnsReport), "
                                  "oldest first, with TNS's report ids and answers")
    async def tns_reports(self, info: GatewayInfo) -> list[TnsReport]:
        return [tns_report_of(d)
                for d in (await info.context.store.tns_reports_of([self.oid]))[self.oid]]

    @strawberry.field(description="users' labels (addLabel), oldest first")
    async def labels(self, info: GatewayInfo) -> list[Label]:
        return [label_of(d) for d in await info.context.loaders.labels.load(self.oid)]

    @strawberry.field(description="alerts of this object with cutouts (stamps service), "
                                  "in time order")
    async def stamps(self, info: GatewayInfo) -> list[Stamp]:
        stub = stamps_pb2_grpc.StampServiceStub(channel_of(info))
        listed = await stub.ListStamps(stamps_pb2.ListStampsRequest(oid=self.oid))
        return [Stamp(candid=s.candid, mjd=s.mjd, fid=s.fid, kinds=list(s.kinds), oid=self.oid)
                for s in listed.stamps]

    @strawberry.field(description="download links (light curve, finding chart)")
    def downloads(self) -> Downloads:
        return Downloads(oid=self.oid)


def object_of(doc: Mapping[str, Any]) -> AstroObject:
    stats = [pick(MagStats, m) for m in doc.get("magstats", [])]
    matches = sorted((pick(CrossMatch, m, catalog=name)
                      for name, m in doc.get("xmatch", {}).items()),
                     key=lambda m: m.distance_arcsec)
    summary = doc.get("summary") or {}
    return pick(AstroObject, doc, magstats=stats, xmatch=matches, survey=survey_of(doc),
                dia_object=summary.get("record") if doc.get("survey") == "LSST" else None,
                surprise=surprise_of(doc.get("surprise")))


def detection_of(doc: Mapping[str, Any]) -> Detection:
    return pick(Detection, doc, survey=survey_of(doc), psf_flux=doc.get("psfFlux"),
                psf_flux_err=doc.get("psfFluxErr"), science_flux=doc.get("scienceFlux"),
                science_flux_err=doc.get("scienceFluxErr"),
                withdrawn=bool(doc.get("withdrawn")),
                midpoint_mjd_tai=doc.get("midpointMjdTai"))



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
    survey: Survey | None = strawberry.field(default=None, description="ZTF or LSST objects "
                                                                       "only")
    anomaly_score: FloatRange | None = strawberry.field(default=None, description=(
        "the latest anomaly score (the shared model's percentile, [0, 1]) within this range; "
        "objects without a score are left out"))


#: the MY_ANOMALY order's name in cursors (computed by the gateway, not the store)
MY_ANOMALY_ORDER = "my_anomaly"


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
    ANOMALY = strawberry.enum_value(ANOMALY_SCORE, description=(
        "the latest anomaly score (the shared model's); objects not scored come last"))
    MY_ANOMALY = strawberry.enum_value(MY_ANOMALY_ORDER, description=(
        "YOUR anomaly model's score (needs an API key): the scored ZTF objects passing "
        "the filter, most unusual by your model first (unscored and LSST objects are not "
        "listed). Scores every scored object on each call (~0.5 ms each), like "
        "myAnomalies: for a group's store, not a survey's archive"))


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(description="Order of `objects`: null field = OID; null direction = DESC "
                              "for PROBABILITY and ANOMALY, else ASC.  Objects lacking a nullable "
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
    my_anomaly_score: float | None = strawberry.field(default=None, description=(
        "YOUR model's anomaly score of the object (orderBy MY_ANOMALY; null otherwise)"))


@strawberry.type(description="A page of objects (Relay connection)")
class ObjectConnection:
    edges: list[ObjectEdge]
    page_info: PageInfo
    flt: strawberry.Private[ObjectFilter]

    @strawberry.field
    def nodes(self) -> list[AstroObject]:
        return [e.node for e in self.edges]

    @strawberry.field(description="how many objects pass the filter (computed only when "
                                  "selected, and reused for NIGHTJAR_GATEWAY_COUNT_TTL "
                                  "seconds: it may lag the store by that much)")
    async def total_count(self, info: GatewayInfo) -> int:
        store = info.context.store
        return await info.context.counts.get(f"objects {self.flt!r}",
                                             lambda: store.count_objects(self.flt))


@dataclass(frozen=True)
class CursorOrder:
    """An order computed by the gateway rather than the store (MY_ANOMALY)."""

    field: str
    descending: bool


def encode_cursor(order: ObjectOrder | CursorOrder, key: PageKey) -> str:
    payload = {"f": order.field, "d": order.descending, "v": key.value, "o": key.oid}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, order: ObjectOrder | CursorOrder) -> PageKey:
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
        cone=cone_of(f.cone) or cone_of(legacy.get("cone")),
        oids=list(f.oids) if f.oids is not None else None,
        survey=f.survey.value if f.survey is not None else None,
        classifier=f.classifier, classifier_version=f.classifier_version,
        class_name=f.class_name, probability_min=f.probability_min,
        ranking=None if ranking == 0 else ranking,
        anomaly_min=_range(f.anomaly_score)[0], anomaly_max=_range(f.anomaly_score)[1])


def object_order(order: ObjectOrderInput | None) -> ObjectOrder:
    field_ = (order.field if order and order.field else ObjectOrderField.OID).value
    direction = order.direction if order else None
    if direction is None:
        direction = OrderDirection.DESC if field_ in (PROBABILITY, ANOMALY_SCORE) \
            else OrderDirection.ASC
    return ObjectOrder(field_, descending=direction is OrderDirection.DESC)



async def _by_my_anomaly(info: GatewayInfo, flt: ObjectFilter,
                         direction: OrderDirection | None, first: int,
                         after: str | None) -> ObjectConnection:
    """``objects`` ordered by the caller's anomaly model: every scored ZTF object ranked
    by it (as ``myAnomalies``), those passing the filter paged in that order."""
    user = user_of(info, "orderBy MY_ANOMALY")
    model = anomaly_model(info)
    order = CursorOrder(MY_ANOMALY_ORDER, direction is not OrderDirection.ASC)
    key = decode_cursor(after, order) if after else None
    if key is not None and not isinstance(key.value, (int, float)):
        raise GatewayError(BAD_USER_INPUT, f"invalid cursor {after!r}")
    store = info.context.store
    oids = await store.scored_oids("ZTF")  # the users' models refine the ZTF one
    if flt.oids is not None:
        wanted = set(flt.oids)
        oids = [o for o in oids if o in wanted]
    ranked = await ranked_by_user(info, model, user, oids)
    score = {r.oid: r.score for r in ranked}
    raw = {r.oid: r.raw for r in ranked}
    passing = await store.find_objects(replace(flt, oids=sorted(score)), ObjectOrder(),
                                       limit=max(len(score), 1))

    def place(oid: str, value: float) -> tuple[float, str]:
        return (-value, oid)  # myAnomalies' order; ASC is its exact reverse

    docs = sorted(passing.docs, key=lambda d: place(d["_id"], raw[d["_id"]]),
                  reverse=not order.descending)
    if key is not None:
        mark = place(key.oid, float(key.value))
        docs = [d for d in docs if (place(d["_id"], raw[d["_id"]]) > mark) == order.descending
                and place(d["_id"], raw[d["_id"]]) != mark]
    page = docs[:first]
    edges = [ObjectEdge(cursor=encode_cursor(order, PageKey(raw[d["_id"]], d["_id"])),
                        node=object_of(d), my_anomaly_score=score[d["_id"]],
                        matched_probability=(pick(Probability, passing.matched[d["_id"]])
                                             if d["_id"] in passing.matched else None))
             for d in page]
    listed = replace(flt, oids=sorted(score))  # totalCount counts what this order lists
    return ObjectConnection(edges=edges, flt=listed, page_info=PageInfo(
        has_next_page=len(docs) > first, end_cursor=edges[-1].cursor if edges else None))


@strawberry.type
class ObjectQueries:
    @strawberry.field(description="one object by its id (ZTF objectId, LSST diaObjectId)")
    async def object(self, info: GatewayInfo, oid: str) -> AstroObject | None:
        doc = await info.context.loaders.objects.load(oid)
        return None if doc is None else object_of(doc)

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
        if order_by is not None and order_by.field is ObjectOrderField.MY_ANOMALY:
            return await _by_my_anomaly(info, flt, order_by.direction, first, after)
        order = object_order(order_by)
        if order.field == PROBABILITY and (flt.classifier is None or flt.class_name is None):
            raise GatewayError(BAD_USER_INPUT, "orderBy PROBABILITY needs filter.classifier "
                                               "and filter.className")
        key = decode_cursor(after, order) if after else None
        if key is not None and key.value is None and order.field not in NULLABLE_ORDER_FIELDS:
            raise GatewayError(BAD_USER_INPUT, f"invalid cursor {after!r}")
        page = await info.context.store.find_objects(flt, order, after=key, limit=first)
        edges = [ObjectEdge(cursor=encode_cursor(order, k), node=object_of(d),
                            matched_probability=(pick(Probability, page.matched[d["_id"]])
                                                 if d["_id"] in page.matched else None))
                 for d, k in zip(page.docs, page.keys, strict=True)]
        return ObjectConnection(edges=edges, flt=flt, page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None))


    @strawberry.field(description="a known minor planet and its detections by every survey "
                                  "(LSST ssSources, ZTF candidates whose ssnamenr names it), "
                                  "in time order; DESIGNATION in any form: packed (K01S97B), "
                                  "unpacked (2001 SB97), a number (433) or ZTF's "
                                  "(53786)2000EM97")
    async def solar_system_object(self, info: GatewayInfo,
                                  designation: str) -> SolarSystemObject | None:
        keys = designation_keys(designation)
        if not keys:
            raise GatewayError(BAD_USER_INPUT, f"{designation!r} is not a designation")
        objects, detections = await info.context.store.solar_system(keys)
        if not objects and not detections:
            return None
        first = objects[0] if objects else {}
        names = sorted({k.partition(":")[2] for doc in (*objects, *detections)
                        for k in doc.get("designation_keys", ())})
        return SolarSystemObject(
            designation=display_designation(designation), designations=names,
            ss_object_id=first.get("ssObjectId"), orbit=first.get("mpc_orbits"),
            first_mjd=min(d["mjd"] for d in detections) if detections else None,
            last_mjd=max(d["mjd"] for d in detections) if detections else None,
            detections=[pick(SolarSystemDetection, d, survey=survey_of(d),
                             psf_flux=d.get("psfFlux"), ss_object_id=d.get("ssObjectId"))
                        for d in detections])


@strawberry.type(description="A detection of a known minor planet")
class SolarSystemDetection:
    survey: Survey
    candid: BigInt  # type: ignore[valid-type]
    oid: str | None = strawberry.field(description="the survey object it was also stored as "
                                                   "(ZTF); null for LSST ssSources")
    ss_object_id: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="LSST ssObjectId")
    designation: str | None = strawberry.field(description="as the survey wrote it")
    mjd: float = strawberry.field(description="MJD, UTC [d]")
    band: str | None
    fid: int | None
    ra: float
    dec: float
    magpsf: float | None = strawberry.field(description="difference magnitude [mag]")
    sigmapsf: float | None
    psf_flux: float | None = strawberry.field(description="[nJy]")
    isdiffpos: str | None


@strawberry.type(description="A known minor planet (a solar-system object)")
class SolarSystemObject:
    designation: str = strawberry.field(description="as people write it (2001 SB97, 433)")
    designations: list[str] = strawberry.field(description="every form it is known by")
    ss_object_id: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="LSST ssObjectId, when LSST saw it")
    orbit: strawberry.scalars.JSON | None = strawberry.field(
        description="LSST mpc_orbits (MPC orbit) from the latest LSST detection")
    first_mjd: float | None
    last_mjd: float | None
    detections: list[SolarSystemDetection]
