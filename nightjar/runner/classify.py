"""The light-curve classification step: stored light curves in, probability rows out.

Pure cores (:func:`light_curve_of`, :func:`classify_light_curve`) with two thin users:
the per-object hook of the topology's *classify* step (embedded runner: inline), and
:func:`classify_history`, which the Kafka classify agent runs on objects the ingest
agent forwarded.  An object is (re)classified when new detections arrived and it has at
least six detections in one band (ZTF: g or r; LSST: any of u g r i z y).

Each survey has its own model (``lc_classifier`` for ZTF, trained on ZTF light curves
and cadences; ``lsst_lc_classifier`` for LSST, on LSST simulations): a model applied to
another survey's photometry would be worse than none, so an object is classified only
by its survey's model, and stays unclassified where none is registered.  The rows carry
the taxonomy's classifier names (``lc_classifier``, ``lc_classifier_top`` ...) for both,
so one query serves both surveys; the object's survey and the row's version say which
model made them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ml.anomaly import LSST_ANOMALY
from ml.anomaly import NAME as ANOMALY_MODEL
from ml.anomaly.model import AnomalyModel
from ml.features.extract import (
    MIN_DETECTIONS,
    LightCurve,
    enough_detections,
    extract,
    preprocess,
)
from ml.features.names import (
    FEATURE_NAMES,
    LSST_BANDS,
    LSST_FEATURE_NAMES,
    ZTF_BANDS,
    BandScheme,
)
from ml.forecast import Forecast, light_curve_forecast, light_curve_surprise
from ml.lc_classifier.model import HierarchicalModel, ModelMismatchError
from ml.lc_classifier.taxonomy import (
    FULL_CLASSIFIER,
    LSST_CLASSIFIER,
    TOP_CLASSES,
    TOP_CLASSIFIER,
)
from ml.registry import ModelRegistry
from ml.stamp_classifier import NAME as STAMP_CLASSIFIER
from nightjar.core.lightcurve import (
    ObjectHistory,
    ObjectState,
    ObjectWrite,
    anomaly_doc,
    anomaly_summary,
    artefact_flagged,
    classification_docs,
    classification_event,
)
from nightjar.settings import Settings
from nightjar.surveys.interface import LSST, ZTF, sign_of_isdiffpos

Doc = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)
BOGUS = "bogus"


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def light_curve_of(detections: Iterable[Mapping[str, Any]],
                   non_detections: Iterable[Mapping[str, Any]],
                   corrected: bool) -> LightCurve:
    """A :class:`LightCurve` from stored detection and non-detection documents.

    Magnitudes as ALeRCE's stream: ``magpsf_corr``/``sigmapsf_corr_ext`` when the
    object is corrected, else ``magpsf``/``sigmapsf``.
    """
    dets = sorted(detections, key=lambda d: (d["mjd"], d["candid"]))
    nds = list(non_detections)

    def col(name: str) -> np.ndarray:
        return np.array([_float(d.get(name)) for d in dets], dtype=np.float64)

    magpsf, sigmapsf = col("magpsf"), col("sigmapsf")
    if corrected:
        mag, err = col("magpsf_corr"), col("sigmapsf_corr_ext")
    else:
        mag, err = magpsf, sigmapsf
    sg = [float(d["sgscore1"]) for d in dets if d.get("sgscore1") is not None]
    return LightCurve(
        mjd=col("mjd"), fid=np.array([int(d["fid"]) for d in dets], dtype=np.int64),
        mag=mag, err=err, magpsf=magpsf, sigmapsf=sigmapsf,
        isdiffpos=np.array([float(sign_of_isdiffpos(d.get("isdiffpos", "t"))) for d in dets]),
        rb=col("rb"),
        ra=float(np.mean([d["ra"] for d in dets])) if dets else math.nan,
        dec=float(np.mean([d["dec"] for d in dets])) if dets else math.nan,
        sgscore1=float(np.median(sg)) if sg else math.nan,
        nd_mjd=np.array([_float(n.get("mjd")) for n in nds], dtype=np.float64),
        nd_fid=np.array([int(n["fid"]) for n in nds], dtype=np.int64),
        nd_diffmaglim=np.array([_float(n.get("diffmaglim")) for n in nds], dtype=np.float64))


#: nJy per mJy (SPM's flux unit, as ALeRCE's ZTF fits)
NJY_PER_MJY = 1e6


def lsst_light_curve_of(detections: Iterable[Mapping[str, Any]],
                        non_detections: Iterable[Mapping[str, Any]]) -> LightCurve:
    """A :class:`LightCurve` of an LSST object from its stored (corrected) detections.

    ``mag``/``err`` are the apparent magnitudes from ``scienceFlux`` where the packets
    carry it (schema 8.0 on; 7.x: the difference magnitudes); ``magpsf``/``sigmapsf``
    the difference magnitudes of ``|psfFlux|`` with its sign in ``isdiffpos``;
    ``diff_flux`` the difference flux itself (nJy -> mJy), negative values included, for
    SPM; ``rb`` Rubin's ``reliability``.  Withdrawn sources are left out.  Extract with
    :data:`ml.features.names.LSST_BANDS`.
    """
    dets = sorted((d for d in detections if not d.get("withdrawn")),
                  key=lambda d: (d["mjd"], d["candid"]))
    nds = list(non_detections)

    def col(name: str, scale: float = 1.0) -> np.ndarray:
        return np.array([_float(d.get(name)) / scale for d in dets], dtype=np.float64)

    magpsf, sigmapsf = col("magpsf"), col("sigmapsf")
    apparent = any(d.get("corrected") for d in dets)
    mag, err = (col("magpsf_corr"), col("sigmapsf_corr")) if apparent else (magpsf, sigmapsf)
    return LightCurve(
        mjd=col("mjd"), fid=np.array([int(d["fid"]) for d in dets], dtype=np.int64),
        mag=mag, err=err, magpsf=magpsf, sigmapsf=sigmapsf,
        isdiffpos=np.array([float(sign_of_isdiffpos(d.get("isdiffpos", "t"))) for d in dets]),
        rb=col("reliability"),
        ra=float(np.mean([d["ra"] for d in dets])) if dets else math.nan,
        dec=float(np.mean([d["dec"] for d in dets])) if dets else math.nan,
        nd_mjd=np.array([_float(n.get("mjd")) for n in nds], dtype=np.float64),
        nd_fid=np.array([int(n["fid"]) for n in nds], dtype=np.int64),
        nd_diffmaglim=np.array([_float(n.get("diffmaglim")) for n in nds], dtype=np.float64),
        diff_flux=col("psfFlux", NJY_PER_MJY), diff_flux_err=col("psfFluxErr", NJY_PER_MJY))


@dataclass(frozen=True)
class Classification:
    rows: list[Doc]  #: probability rows of every classifier level
    features: Doc  #: {"classifier_version", "values": {name: float | None}, "missing"}
    #: {model_name, model_version, score, raw, branches, top_features, mjd, ndet}, or
    #: None without an anomaly model
    anomaly: Doc | None = None
    #: the latest detection's surprise against the forecast from the ones before it
    #: ({mjd, fid, band, value, model}, :func:`surprise_of`), or None where no forecast
    #: could be made
    surprise: Doc | None = None


def stamp_bogus(rows: Iterable[Mapping[str, Any]], history: ObjectHistory) -> float | None:
    """The P(bogus) that gates an object's shared anomaly score: 1 when enough users
    labelled it ARTEFACT (:func:`nightjar.core.lightcurve.artefact_flagged`), else its
    stamp classification's, from this batch's rows or the stored ones; None when it was
    never stamp-classified."""
    if artefact_flagged(history.object_doc):
        return 1.0
    for row in rows:
        if row["classifier_name"] == STAMP_CLASSIFIER and row["class_name"] == BOGUS:
            return float(row["probability"])
    return history.stored_probabilities.get((STAMP_CLASSIFIER, BOGUS))


def anomaly_of(model: AnomalyModel, table: pd.DataFrame, class_probabilities: np.ndarray,
               bogus: float | None, lc: LightCurve) -> Doc:
    """The anomaly score of one classified light curve (its feature table row)."""
    scores = model.score(table, class_probabilities[:1],
                         None if bogus is None else np.array([bogus]))
    return {"model_name": str(model.card.get("name", ANOMALY_MODEL)),
            "model_version": model.version, "score": float(scores.score[0]),
            "raw": float(scores.raw[0]),
            "branches": {b: (None if not np.isfinite(v[0]) else float(v[0]))
                         for b, v in scores.branches.items()},
            "top_features": scores.top_features(0), "bogus": bogus,
            "mjd": float(np.max(lc.mjd)), "ndet": int(lc.mjd.shape[0])}


def surprise_of(lc: LightCurve, top_probabilities: np.ndarray, period: float,
                scheme: BandScheme = ZTF_BANDS) -> Doc | None:
    """The surprise of a preprocessed light curve's latest detection
    (:func:`ml.forecast.light_curve_surprise`) under the model of its most probable
    top-level class, or None.

    Parameters
    ----------
    lc : LightCurve
        The preprocessed light curve.
    top_probabilities : array
        The light-curve classifier's top-level probabilities, in ``TOP_CLASSES`` order.
    period : float
        ``Multiband_period`` [days] (the periodic model's period; NaN without one).
    scheme : BandScheme
        The survey's bands (band names).
    """
    branch = TOP_CLASSES[int(np.argmax(top_probabilities))]
    value = light_curve_surprise(lc, branch=branch, period=period)
    if value is None:
        return None
    return {**value, "band": scheme.band_names.get(int(value["fid"]), str(value["fid"])),
            "branch": branch}


def classify_light_curve(model: HierarchicalModel, lc: LightCurve,
                         anomaly_model: AnomalyModel | None = None,
                         bogus: float | None = None,
                         scheme: BandScheme = ZTF_BANDS) -> Classification | None:
    """Features, probabilities, the forecast surprise and (with an anomaly model) the
    anomaly score of one light curve of the survey of ``scheme``; None below the
    detection threshold."""
    lc = preprocess(lc, scheme)
    if not enough_detections(lc, scheme):
        return None
    vector = extract(lc, preprocessed=True, scheme=scheme)
    table = pd.DataFrame([vector.as_array(scheme.names)], columns=list(scheme.names))
    prediction = model.predict(table)
    rows = prediction.rows(0, model.version)
    values = {k: (None if not np.isfinite(v) else float(v)) for k, v in vector.values.items()}
    anomaly = None if anomaly_model is None else anomaly_of(
        anomaly_model, table, prediction.full, bogus, lc)
    surprise = surprise_of(lc, prediction.top[0],
                           float(vector.values.get("Multiband_period", math.nan)), scheme)
    return Classification(rows=rows, features={
        "classifier_version": model.version, "values": values, "missing": vector.missing},
        anomaly=anomaly, surprise=surprise)


def _survey_light_curve(survey: str, detections: Iterable[Mapping[str, Any]],
                        non_detections: Iterable[Mapping[str, Any]], corrected: bool
                        ) -> tuple[LightCurve, BandScheme]:
    if survey == LSST:
        return lsst_light_curve_of(detections, non_detections), LSST_BANDS
    return light_curve_of(detections, non_detections, corrected), ZTF_BANDS


def top_class(rows: Iterable[Mapping[str, Any]]) -> str | None:
    """The most probable top-level class of stored light-curve classifier rows, or None
    when the object has none."""
    best = [r for r in rows if r["classifier_name"] == TOP_CLASSIFIER]
    if not best:
        return None
    return str(max(best, key=lambda r: float(r["probability"]))["class_name"])


def object_forecast(detections: Iterable[Mapping[str, Any]],
                    non_detections: Iterable[Mapping[str, Any]], object_doc: Mapping[str, Any],
                    rows: Iterable[Mapping[str, Any]], features: Mapping[str, Any] | None,
                    band: str, at: np.ndarray) -> tuple[Forecast, str | None]:
    """A stored object's forecast of one band at times ``at`` [MJD], by the model of its
    most probable top-level class (:mod:`ml.forecast`), and that class.

    Parameters
    ----------
    detections, non_detections : iterable of mapping
        The object's stored light curve.
    object_doc : mapping
        Its object document (survey, ``corrected``).
    rows : iterable of mapping
        Its stored probability rows.
    features : mapping or None
        Its stored features document (``Multiband_period`` [days]).
    band : str
        A band of the object's survey (ZTF g r i; LSST u g r i z y).

    Raises
    ------
    ValueError
        ``band`` is not a band of the survey.
    """
    survey = str(object_doc.get("survey", ZTF))
    names = (LSST_BANDS if survey == LSST else ZTF_BANDS).band_names
    fids = {name: fid for fid, name in names.items()}
    if band not in fids:
        raise ValueError(f"{band!r} is not a {survey} band (one of {', '.join(fids)})")
    branch = top_class(rows)
    if branch is None:
        return Forecast.invalid(at, "none", "not classified yet: the forecast model "
                                            "follows the light-curve class"), None
    lc, scheme = _survey_light_curve(survey, detections, non_detections,
                                     bool(object_doc.get("corrected", False)))
    values = (features or {}).get("values") or {}
    period = values.get("Multiband_period")
    return light_curve_forecast(
        preprocess(lc, scheme), fids[band], at,
        branch=branch, period=math.nan if period is None else float(period)), branch


class LcClassifierHook:
    """The *classify* step's hook: reclassify (and score) objects that received new
    detections, each by its survey's model (a ZTF model never reads an LSST light curve,
    nor the reverse); objects of a survey without a model stay unclassified."""

    def __init__(self, model: HierarchicalModel, anomaly_model: AnomalyModel | None = None,
                 lsst_model: HierarchicalModel | None = None,
                 lsst_anomaly_model: AnomalyModel | None = None):
        model.check_features(FEATURE_NAMES)
        if lsst_model is not None:
            lsst_model.check_features(LSST_FEATURE_NAMES)
        self.model = model
        self.anomaly_model = anomaly_model
        self.lsst_model = lsst_model
        self.lsst_anomaly_model = lsst_anomaly_model

    def __call__(self, state: ObjectState) -> ObjectState:
        if not state.replaced:  # nothing new: the stored classification stands
            return state
        result = classify_for_survey(
            state.survey, state.corrected, state.non_detections,
            bool(state.statistics.get("corrected", False)), self.model, self.lsst_model,
            self.anomaly_model, stamp_bogus(state.probabilities, state.history),
            self.lsst_anomaly_model)
        if result is None:
            return state
        # after the rows of earlier hooks (the stamp classifier's), never instead of them
        return replace(state, probabilities=[*state.probabilities, *result.rows],
                       features=result.features, anomaly=result.anomaly,
                       surprise=result.surprise)


def classify_for_survey(survey: str, detections: Iterable[Mapping[str, Any]],
                        non_detections: Iterable[Mapping[str, Any]], corrected: bool,
                        model: HierarchicalModel, lsst_model: HierarchicalModel | None,
                        anomaly_model: AnomalyModel | None, bogus: float | None,
                        lsst_anomaly_model: AnomalyModel | None = None
                        ) -> Classification | None:
    """:func:`classify_light_curve` by the models of the object's survey: ZTF objects by
    ``model`` and ``anomaly_model``, LSST objects by ``lsst_model`` and
    ``lsst_anomaly_model``; either score gated by the object's stamp classification's
    ``bogus`` (its own survey's stamp model); None for a survey without a classifier."""
    if survey not in (ZTF, LSST) or (survey == LSST and lsst_model is None):
        return None
    lc, scheme = _survey_light_curve(survey, detections, non_detections, corrected)
    if survey == LSST:
        assert lsst_model is not None
        return classify_light_curve(lsst_model, lc, lsst_anomaly_model, bogus, scheme)
    return classify_light_curve(model, lc, anomaly_model, bogus, scheme)


def needs_classification(state: ObjectState) -> bool:
    """Whether the object got new detections and has enough to be classified (before
    preprocessing; the classifier applies the exact gate)."""
    if not state.replaced or state.survey not in (ZTF, LSST):
        return False
    fids = (LSST_BANDS if state.survey == LSST else ZTF_BANDS).fids
    counts = [sum(1 for d in state.corrected if d["fid"] == fid) for fid in fids]
    return max(counts) >= MIN_DETECTIONS


def request_classification(state: ObjectState) -> ObjectState:
    """The *classify* step's hook in Kafka mode: mark the object for the classify agent,
    which runs on its own topic and scales separately (feature extraction is the
    heaviest step of the pipeline)."""
    return replace(state, classify_requested=True) if needs_classification(state) else state


def classify_history(model: HierarchicalModel, history: ObjectHistory,
                     anomaly_model: AnomalyModel | None = None,
                     lsst_model: HierarchicalModel | None = None,
                     lsst_anomaly_model: AnomalyModel | None = None
                     ) -> tuple[ObjectWrite, Classification] | None:
    """The write that stores a stored object's classification, forecast surprise and
    anomaly score (Kafka classify agent)."""
    if history.object_doc is None or not history.detections:
        return None
    result = classify_for_survey(
        str(history.object_doc.get("survey", ZTF)), history.detections.values(),
        history.non_detections.values(), bool(history.object_doc.get("corrected", False)),
        model, lsst_model, anomaly_model, stamp_bogus((), history), lsst_anomaly_model)
    if result is None:
        return None
    hpx = history.object_doc["hpx"]
    write = ObjectWrite(oid=history.oid, hpx=hpx)
    write.probabilities, write.features = classification_docs(history.oid, hpx, result.rows,
                                                              result.features)
    write.current = history.object_doc
    write.classification_event = classification_event(
        history.oid, str(history.object_doc.get("survey", ZTF)),
        list(history.detections.values()), result.rows, result.anomaly, result.surprise)
    # $set, not a replacement: the pipeline agent may have stored newer statistics
    # since this history was read
    object_set: Doc = {}
    if result.anomaly is not None:
        write.anomaly = anomaly_doc(history.oid, hpx, result.anomaly)
        object_set["anomaly"] = anomaly_summary(result.anomaly)
    if result.surprise is not None:
        object_set["surprise"] = result.surprise
    if object_set:
        write.object_set = object_set
        write.current = {**history.object_doc, **object_set}
    return write, result


def _load_anomaly(home: Path, name: str, features: tuple[str, ...],
                  version: str | None) -> AnomalyModel:
    """A registered anomaly model that reads only ``features`` (its extractor's)."""
    model = AnomalyModel.load(ModelRegistry.default(home).get(name, version).path)
    unknown = [f for f in model.features if f not in set(features)]
    if unknown:
        raise ModelMismatchError(f"anomaly model {name} {model.version} reads features "
                                 f"its extractor does not produce, e.g. {unknown[:5]}")
    return model


def _load_classifier(home: Path, name: str, features: tuple[str, ...],
                     version: str | None) -> HierarchicalModel:
    """A registered light-curve classifier whose features its extractor produces."""
    model = HierarchicalModel.load(ModelRegistry.default(home).get(name, version).path)
    model.check_features(features)
    return model


def _optional(load: Callable[[], T], what: str) -> T | None:
    """``load()``, or None when nothing is registered (the pipeline runs without it and
    the log says so)."""
    try:
        return load()
    except LookupError as exc:
        log.warning("%s off: %s", what, exc)
        return None


def load_anomaly_model(home: Path, version: str | None = None) -> AnomalyModel:
    """The registered ZTF anomaly model (newest, or the pinned version); it must read
    features this extractor produces."""
    return _load_anomaly(home, ANOMALY_MODEL, FEATURE_NAMES, version)


def load_lsst_anomaly_model(home: Path, version: str | None = None) -> AnomalyModel:
    """The registered LSST anomaly model (newest, or the pinned version)."""
    return _load_anomaly(home, LSST_ANOMALY, LSST_FEATURE_NAMES, version)


def load_model(home: Path, version: str | None = None) -> HierarchicalModel:
    """The registered ZTF light-curve classifier (newest, or the pinned version)."""
    return _load_classifier(home, FULL_CLASSIFIER, FEATURE_NAMES, version)


def load_lsst_model(home: Path, version: str | None = None) -> HierarchicalModel:
    """The registered LSST light-curve classifier (newest, or the pinned version)."""
    return _load_classifier(home, LSST_CLASSIFIER, LSST_FEATURE_NAMES, version)


def optional_anomaly_model(settings: Settings) -> AnomalyModel | None:
    """The ZTF anomaly model the settings ask for, or None (off, or none registered: the
    pipeline then classifies without scoring, and says so)."""
    if not settings.anomaly:
        return None
    return _optional(lambda: load_anomaly_model(settings.home, settings.anomaly_version),
                     "anomaly score")


def optional_lsst_anomaly_model(settings: Settings) -> AnomalyModel | None:
    """The LSST anomaly model, or None (scores off, or none registered)."""
    if not settings.anomaly:
        return None
    return _optional(lambda: load_lsst_anomaly_model(settings.home,
                                                     settings.lsst_anomaly_version),
                     "LSST anomaly score")


def optional_lsst_model(settings: Settings) -> HierarchicalModel | None:
    """The LSST light-curve classifier the settings ask for, or None (none registered:
    LSST objects stay unclassified, and the log says so)."""
    return _optional(lambda: load_lsst_model(settings.home,
                                             settings.lsst_lc_classifier_version),
                     "LSST light-curve classifier")
