"""The pure core of ingestion: merge new alerts into an object's stored history.

Given what the store holds of an object (:class:`ObjectHistory`) and the new alerts
of that object, :func:`plan_object_write` returns exactly the writes that bring the
store up to date (:class:`ObjectWrite`): new or replaced documents and changed
derived fields, nothing else.  Re-ingesting alerts therefore writes nothing, and the
result does not depend on the order alerts arrive in.

Precedence for a detection seen several times (same ``_id``, that is same survey and
id): the version that was an alert's own detection (``has_stamp``) always wins; a copy
from an alert's history never overwrites it; among history copies the one carried by
the earliest alert (smallest ``parent_candid``) is kept, so the outcome is
order-independent.  A withdrawal is never lost: when any version of a detection says
Rubin withdrew it (``withdrawn``), the kept version says so too.

Nothing here knows a survey: alerts arrive normalised
(:mod:`nightjar.surveys.interface`) and each survey's :class:`PhotometryRules` turn
difference into apparent photometry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nightjar.core.magstats import object_statistics
from nightjar.sky import hpx_index
from nightjar.surveys.interface import ParsedAlert, PhotometryRules

Doc = dict[str, Any]
DetectionKey = int | str


@dataclass
class ObjectHistory:
    """What the store holds of one object (detections as projections, see
    :func:`nightjar.surveys.interface.history_fields`)."""

    oid: str
    object_doc: Doc | None = None
    detections: dict[DetectionKey, Doc] = field(default_factory=dict)
    non_detections: dict[str, Doc] = field(default_factory=dict)
    forced_ids: set[str] = field(default_factory=set)
    #: ids of the object's stored probability rows and features document
    attached_ids: dict[str, set[Any]] = field(default_factory=dict)
    #: stored classifier outputs: (classifier_name, class_name) -> probability
    stored_probabilities: dict[tuple[str, str], float] = field(default_factory=dict)
    #: keep a light-curve index for this object (its packets repeat their history)
    indexed: bool = False
    #: the stored light-curve index (:func:`light_curve_index`), None when there is none
    index: Doc | None = None

    @property
    def hpx(self) -> int | None:
        return None if self.object_doc is None else self.object_doc["hpx"]


@dataclass
class ObjectWrite:
    """The writes that bring one object up to date; empty when nothing changed."""

    oid: str
    hpx: int
    moved_from_hpx: int | None = None  #: old anchor when an earlier detection moved it
    moved_ids: dict[str, list[Any]] = field(default_factory=dict)  #: collection -> _ids
    object_doc: Doc | None = None  #: full replacement, or None when unchanged
    #: fields set on the stored object document without replacing it (a step that does
    #: not own the statistics, such as the Kafka classify agent, must not rewrite them)
    object_set: Doc = field(default_factory=dict)
    detections: list[Doc] = field(default_factory=list)  #: full new/replacement documents
    detection_updates: list[tuple[DetectionKey, Doc]] = field(
        default_factory=list)  #: _id, $set
    non_detections: list[Doc] = field(default_factory=list)
    forced_photometry: list[Doc] = field(default_factory=list)
    #: classifier output rows (replacing the object's rows of the same classifiers)
    probabilities: list[Doc] = field(default_factory=list)
    features: Doc | None = None
    #: one anomaly score, added to the object's score history
    anomaly: Doc | None = None
    #: the object's light-curve index after this write (full replacement), None if unchanged
    light_curve_index: Doc | None = None
    #: the classification event of this write (:func:`classification_event`)
    classification_event: Doc | None = None
    new_detections: int = 0
    #: the object's document after this write (also when unchanged): what is published
    current: Doc = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.moved_from_hpx is not None or self.object_doc or self.detections
                    or self.detection_updates or self.non_detections or self.forced_photometry
                    or self.probabilities or self.features or self.anomaly
                    or self.object_set or self.classification_event
                    or self.light_curve_index)


def _wins(new: Doc, old: Doc) -> bool:
    """Whether detection version ``new`` replaces ``old`` (same candid)."""
    if old["has_stamp"]:
        return False
    if new["has_stamp"]:
        return True
    return bool(new["parent_candid"] < old["parent_candid"])


def _kept(cur: Doc, new: Doc) -> Doc:
    """The version of one detection that is kept, carrying a withdrawal either has."""
    winner, loser = (new, cur) if _wins(new, cur) else (cur, new)
    if loser.get("withdrawn") and not winner.get("withdrawn"):
        winner = {**winner, "withdrawn": True,
                  "timeWithdrawnMjdTai": loser.get("timeWithdrawnMjdTai")}
    return winner


def collect(alerts: Iterable[ParsedAlert]) -> tuple[dict[DetectionKey, Doc], dict[str, Doc],
                                                  dict[str, Doc]]:
    """Detections, non-detections and forced photometry carried by a set of alerts of one object.

    Each detection appears once, chosen by the precedence rule of this module.
    """
    dets: dict[DetectionKey, Doc] = {}
    nds: dict[str, Doc] = {}
    fps: dict[str, Doc] = {}

    def offer(doc: Doc) -> None:
        cur = dets.get(doc["_id"])
        dets[doc["_id"]] = doc if cur is None else _kept(cur, doc)

    for alert in alerts:
        offer(alert.detection)
        for prv in alert.prv_detections:
            offer(prv)
        for nd in alert.non_detections:
            nds.setdefault(nd["_id"], nd)
        for fp in alert.forced_photometry:
            fps.setdefault(fp["_id"], fp)
    return dets, nds, fps


def anchor_hpx(detections: Iterable[Mapping[str, Any]]) -> int:
    """HEALPix anchor of an object: the pixel of its earliest detection (by mjd, id)."""
    first = min(detections, key=lambda d: (d["mjd"], d["candid"]))
    return hpx_index(first["ra"], first["dec"])


@dataclass
class ObjectState:
    """One object as it moves through the per-object steps of the topology.

    :func:`merge_alerts` creates it from the stored history and the new alerts; each
    later step (:func:`correct_object`, :func:`aggregate_object`, the xmatch and
    classification hooks) returns an updated copy; :func:`plan_write` turns it into
    the writes the store needs.
    """

    history: ObjectHistory
    alerts: Sequence[ParsedAlert]
    rules: PhotometryRules  #: the object's survey's photometry rules
    detections: dict[DetectionKey, Doc]  #: merged history + new, one version per detection
    replaced: set[DetectionKey]  #: detections whose stored version the alerts add or replace
    new_non_detections: dict[str, Doc]
    new_forced: dict[str, Doc]
    corrected: list[Doc] = field(default_factory=list)
    statistics: Doc = field(default_factory=dict)
    #: nearest source per catalogue, filled by the xmatch hooks
    xmatch: dict[str, Doc] = field(default_factory=dict)
    #: classifier output rows ({classifier_name, classifier_version, class_name,
    #: probability, ranking}), set by a classification hook when it (re)classifies
    probabilities: list[Doc] = field(default_factory=list)
    #: the features behind them ({"classifier_version", "values": {name: float | None},
    #: "missing": {group: reason}})
    features: Doc | None = None
    #: the anomaly score of this classification ({model_name, model_version, score, raw,
    #: branches, top_features, mjd, ndet}), set with the probabilities
    anomaly: Doc | None = None
    #: the latest detection's forecast surprise ({mjd, fid, band, value, model,
    #: branch}), set with the probabilities
    surprise: Doc | None = None
    #: set by the Kafka-mode classify hook: hand this object to the classify agent
    classify_requested: bool = False

    @property
    def oid(self) -> str:
        return self.history.oid

    @property
    def survey(self) -> str:
        """The survey of the object (every alert of one object comes from one survey)."""
        if self.alerts:
            return self.alerts[0].survey
        return str((self.history.object_doc or {}).get("survey", "ZTF"))

    @property
    def non_detections(self) -> list[Doc]:
        return list({**self.new_non_detections, **self.history.non_detections}.values())


def merge_alerts(history: ObjectHistory, alerts: Sequence[ParsedAlert],
                 rules: PhotometryRules) -> ObjectState:
    """Merge new alerts of one object with its stored history (precedence rules above).

    Parameters
    ----------
    history : ObjectHistory
        What the store holds of the object (empty for a new object).
    alerts : sequence of ParsedAlert
        New alerts of this object, in any order, duplicates allowed.
    rules : PhotometryRules
        The photometry rules of the object's survey.
    """
    new_dets, new_nds, new_fps = collect(alerts)
    merged: dict[DetectionKey, Doc] = dict(history.detections)
    replaced: set[DetectionKey] = set()
    for key, doc in new_dets.items():
        old = merged.get(key)
        if old is None or _wins(doc, old):
            merged[key] = doc if old is None else _kept(old, doc)
            replaced.add(key)
        elif doc.get("withdrawn") and not old.get("withdrawn"):
            merged[key] = _kept(old, doc)  # updated in place: a derived field changed
    return ObjectState(history=history, alerts=alerts, rules=rules, detections=merged,
                       replaced=replaced, new_non_detections=new_nds, new_forced=new_fps)


def correct_object(state: ObjectState) -> ObjectState:
    """Step *correct*: difference to apparent photometry over the whole light curve, by
    the rules of the object's survey."""
    return replace(state, corrected=state.rules.apparent(state.detections.values()))


def aggregate_object(state: ObjectState) -> ObjectState:
    """Step *statistics*: object statistics and per-band ``magstats``."""
    return replace(state, statistics=object_statistics(state.oid, state.corrected,
                                                       state.non_detections))


def latest_summary(history: ObjectHistory, alerts: Iterable[ParsedAlert]) -> Doc | None:
    """The survey's own object summary from the latest alert (by mjd, then id) that sent
    one, stored or new: ``{"record": {...as it came}, "candid", "mjd", "schema_id"}``."""
    best = (history.object_doc or {}).get("summary")
    for alert in alerts:
        if alert.object_summary is None:
            continue
        offered = {"record": alert.object_summary, "candid": alert.candid, "mjd": alert.mjd,
                   "schema_id": alert.schema_id}
        if best is None or (offered["mjd"], offered["candid"]) > (best["mjd"], best["candid"]):
            best = offered
    return best


def object_document(state: ObjectState, hpx: int) -> Doc:
    """The object's document as stored (statistics, anchor, the survey's own summary and
    any hook results)."""
    doc: Doc = {"_id": state.oid, "hpx": hpx, "survey": state.survey, **state.statistics}
    summary = latest_summary(state.history, state.alerts)
    if summary is not None:
        doc["summary"] = summary
    if state.xmatch:
        doc["xmatch"] = state.xmatch
    anomaly = anomaly_summary(state.anomaly) if state.anomaly is not None \
        else (state.history.object_doc or {}).get("anomaly")
    if anomaly is not None:  # the latest score stands until the object is scored again
        doc["anomaly"] = anomaly
    surprise = state.surprise if state.surprise is not None \
        else (state.history.object_doc or {}).get("surprise")
    if surprise is not None:  # likewise the latest surprise
        doc["surprise"] = surprise
    verdict = (state.history.object_doc or {}).get(ARTEFACT_VERDICT)
    if verdict is not None:  # users' artefact votes outlive every new alert
        doc[ARTEFACT_VERDICT] = verdict
    return doc


#: object field with the users' artefact votes: {"votes": n, "flagged": bool}; flagged
#: objects count as bogus for the shared anomaly score (:func:`artefact_flagged`)
ARTEFACT_VERDICT = "artefact"


def artefact_flagged(object_doc: Mapping[str, Any] | None) -> bool:
    """Whether enough users labelled the object ARTEFACT for the shared score to treat it
    as bogus."""
    return bool(((object_doc or {}).get(ARTEFACT_VERDICT) or {}).get("flagged"))


def anomaly_summary(anomaly: Doc) -> Doc:
    """The part of an anomaly score kept on the object document (sorting, filters)."""
    return {k: anomaly[k] for k in ("score", "raw", "model_name", "model_version", "mjd")}


def anomaly_doc(oid: str, hpx: int, anomaly: Doc) -> Doc:
    """The score-history document of one anomaly score: one per object, model version
    and last detection scored, so scoring the same light curve again rewrites it."""
    return {"_id": f"{oid}:{anomaly['model_version']}:{anomaly['mjd']:.6f}", "oid": oid,
            "hpx": hpx, **anomaly}


def probability_id(oid: str, classifier_name: str, class_name: str) -> str:
    return f"{oid}:{classifier_name}:{class_name}"


def classification_docs(oid: str, hpx: int, probabilities: Sequence[Doc],
                        features: Doc | None) -> tuple[list[Doc], Doc | None]:
    """Store documents for one object's classifier rows and features."""
    rows = [{"_id": probability_id(oid, p["classifier_name"], p["class_name"]), "oid": oid,
             "hpx": hpx, **p} for p in probabilities]
    feature_doc = None if features is None else {"_id": oid, "oid": oid, "hpx": hpx,
                                                 **features}
    return rows, feature_doc


def classification_event(oid: str, survey: str, corrected: Sequence[Doc],
                         probabilities: Sequence[Doc], anomaly: Doc | None,
                         surprise: Doc | None) -> Doc | None:
    """One (re)classification of an object, as filters of the classification stage read it:
    per classifier its version and ``{class: probability}``, the anomaly score and the
    forecast surprise, and the latest detection they saw (``mjd`` [MJD], ``candid``)."""
    if not probabilities or not corrected:
        return None
    latest = max(corrected, key=lambda d: (d["mjd"], str(d["_id"])))
    classifiers: Doc = {}
    for row in probabilities:
        entry = classifiers.setdefault(row["classifier_name"], {
            "version": row.get("classifier_version"), "probabilities": {}})
        entry["probabilities"][row["class_name"]] = float(row["probability"])
    event: Doc = {"_id": f"{oid}:{latest['mjd']:.6f}", "oid": oid, "survey": survey,
                  "mjd": latest["mjd"], "candid": latest["_id"], "classifiers": classifiers}
    if anomaly is not None:
        event["anomaly"] = {"score": anomaly.get("score"),
                            "model": f"{anomaly.get('model_name')} {anomaly.get('model_version')}"}
    if surprise is not None:
        event["surprise"] = {"value": surprise.get("value"), "band": surprise.get("band")}
    return event


def _index_entries(entries: Iterable[list[Any]]) -> list[list[Any]]:
    return sorted(entries, key=lambda entry: str(entry[0]))


def light_curve_index(state: ObjectState, hpx: int) -> Doc:
    """What the store holds of an object's light curve once ``state`` is written.

    Enough to rebuild a stored detection from a packet's copy of it (the fields the
    precedence and the withdrawal read) and to know which upper limits and forced points
    are stored (:mod:`nightjar.core.packet_history`); sorted, so equal light curves
    give equal documents.
    """
    history = state.history
    return {
        "_id": state.oid, "oid": state.oid, "hpx": hpx, "survey": state.survey,
        "detections": _index_entries(
            [key, det["mjd"], bool(det["has_stamp"]), det["parent_candid"],
             bool(det.get("withdrawn")), det.get("timeWithdrawnMjdTai")]
            for key, det in state.detections.items()),
        "non_detections": _index_entries(
            [nd_id, nd["mjd"]] for nd_id, nd in
            {**state.new_non_detections, **history.non_detections}.items()),
        "forced_photometry": sorted({*history.forced_ids, *state.new_forced}, key=str),
    }


def plan_write(state: ObjectState) -> ObjectWrite:
    """The writes that bring the store from ``state.history`` to ``state`` (nothing if equal)."""
    history = state.history
    hpx = anchor_hpx(state.corrected)
    write = ObjectWrite(oid=state.oid, hpx=hpx)
    if history.hpx is not None and history.hpx != hpx:
        write.moved_from_hpx = history.hpx
        write.moved_ids = {
            "detections": sorted(history.detections),
            "non_detections": sorted(history.non_detections),
            "forced_photometry": sorted(history.forced_ids),
            **{coll: sorted(ids) for coll, ids in history.attached_ids.items()},
        }
        if history.index is not None:
            write.moved_ids["light_curve_index"] = [state.oid]
    derived = state.rules.derived_fields
    for det in state.corrected:
        key = det["_id"]
        if key in state.replaced:
            det = {**det, "hpx": hpx}
            write.detections.append(det)
            write.new_detections += key not in history.detections
        else:
            stored = history.detections[key]
            changed = {k: det[k] for k in derived if stored.get(k) != det[k]}
            if changed:
                write.detection_updates.append((key, changed))
    write.non_detections = [{**nd, "hpx": hpx} for nd_id, nd in state.new_non_detections.items()
                            if nd_id not in history.non_detections]
    write.forced_photometry = [{**fp, "hpx": hpx} for fp_id, fp in state.new_forced.items()
                               if fp_id not in history.forced_ids]
    write.probabilities, write.features = classification_docs(
        state.oid, hpx, state.probabilities, state.features)
    if state.anomaly is not None:
        write.anomaly = anomaly_doc(state.oid, hpx, state.anomaly)
    write.classification_event = classification_event(
        state.oid, state.survey, state.corrected, state.probabilities, state.anomaly,
        state.surprise)
    if history.indexed:
        index = light_curve_index(state, hpx)
        if index != history.index:
            write.light_curve_index = index
    write.current = object_document(state, hpx)
    if write.current != history.object_doc:
        write.object_doc = write.current
    return write


def plan_object_write(history: ObjectHistory, alerts: Sequence[ParsedAlert],
                      rules: PhotometryRules) -> ObjectWrite:
    """Merge, correct and aggregate one object without hooks; the writes it needs.

    The topology (:mod:`nightjar.runner.topology`) runs the same steps with the xmatch and
    classification hooks in between.
    """
    return plan_write(aggregate_object(correct_object(merge_alerts(history, alerts, rules))))


def group_by_object(alerts: Iterable[ParsedAlert]) -> dict[str, list[ParsedAlert]]:
    """Alerts grouped by object, preserving arrival order within each object (alerts of
    solar-system sources that belong to no object are left out)."""
    groups: dict[str, list[ParsedAlert]] = {}
    for alert in alerts:
        if alert.has_object:
            groups.setdefault(alert.oid, []).append(alert)
    return groups
