"""Live events: what the gateway's subscriptions push, built from what the pipeline stores.

Pure functions.  Three kinds of event, as plain JSON-able dicts:

* an **alert** event per newly stored alert detection (oid, candid, mjd, fid, magpsf,
  magpsf_corr, position);
* a **classification** event per object and classifier whose rows were written (the
  classifier, its version, every class with probability and ranking, the object's mean
  position and, for the stamp classifier, the candid it classified);
* an **anomaly** event per new anomaly score of an object (score, raw score, model, the
  last detection scored, the object's mean position).

They reach a gateway in another process by one of two feeds: the store's ``live_events``
collection (the embedded default, written by the one writer path, read by sequence
number) or the ``nightjar-classifications`` Kafka topic, whose output records
:func:`events_from_output_record` turns into the same events.  :class:`AlertFilter` and
:class:`ClassificationFilter` select what one subscription receives.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nightjar.sky import Cone

Event = dict[str, Any]

ALERT = "alert"
CLASSIFICATION = "classification"
ANOMALY = "anomaly"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def alert_event(oid: str, detection: Mapping[str, Any], stored_ms: int) -> Event:
    """The event of one stored alert detection.

    Parameters
    ----------
    oid : str
        ZTF objectId.
    detection : mapping
        The stored detection document (``mjd`` [MJD], ``magpsf`` and ``magpsf_corr`` [mag],
        ``ra``/``dec`` [deg]).
    stored_ms : int
        When the pipeline stored it [ms since the Unix epoch].
    """
    corrected = bool(detection.get("corrected"))
    return {
        "kind": ALERT, "oid": oid, "candid": int(detection["candid"]),
        "survey": str(detection.get("survey") or "ZTF"),
        "band": detection.get("band"), "psf_flux": _finite(detection.get("psfFlux")),
        "mjd": float(detection["mjd"]), "fid": int(detection["fid"]),
        "ra": float(detection["ra"]), "dec": float(detection["dec"]),
        "magpsf": float(detection["magpsf"]), "sigmapsf": _finite(detection.get("sigmapsf")),
        "magpsf_corr": _finite(detection.get("magpsf_corr")) if corrected else None,
        "isdiffpos": str(detection.get("isdiffpos", "t")),
        "stored_ms": stored_ms,
    }


def classification_event(oid: str, ra: float, dec: float, rows: Sequence[Mapping[str, Any]],
                         stored_ms: int, survey: str = "ZTF") -> Event:
    """The event of one classifier's rows for one object (all rows of one classifier).

    ``ra``/``dec`` are the object's mean position [deg]; rows carry ``classifier_name``,
    ``classifier_version``, ``class_name``, ``probability``, ``ranking`` and optionally
    ``candid`` (the stamp classifier's alert).
    """
    first = rows[0]
    candid = first.get("candid")
    return {
        "kind": CLASSIFICATION, "oid": oid, "ra": float(ra), "dec": float(dec),
        "survey": survey,
        "classifier_name": str(first["classifier_name"]),
        "classifier_version": str(first["classifier_version"]),
        "candid": int(candid) if candid is not None else None,
        "classes": sorted(({"class_name": str(r["class_name"]),
                            "probability": float(r["probability"]),
                            "ranking": int(r["ranking"])} for r in rows),
                          key=lambda c: c["ranking"]),
        "stored_ms": stored_ms,
    }


def anomaly_event(oid: str, ra: float, dec: float, anomaly: Mapping[str, Any],
                  stored_ms: int, survey: str = "ZTF") -> Event:
    """The event of one new anomaly score of an object (``ra``/``dec``: its mean position
    [deg]; ``anomaly``: score, raw, model_name, model_version, mjd [MJD])."""
    return {"kind": ANOMALY, "oid": oid, "ra": float(ra), "dec": float(dec), "survey": survey,
            "score": float(anomaly["score"]), "raw": float(anomaly["raw"]),
            "model_name": str(anomaly["model_name"]),
            "model_version": str(anomaly["model_version"]), "mjd": float(anomaly["mjd"]),
            "stored_ms": stored_ms}


def _by_classifier(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        out.setdefault(str(row["classifier_name"]), []).append(row)
    return out


def events_from_write(oid: str, object_doc: Mapping[str, Any], detections: Sequence[Mapping],
                      probabilities: Sequence[Mapping[str, Any]], stored_ms: int,
                      anomaly: Mapping[str, Any] | None = None) -> list[Event]:
    """The events of one object's write: its new alert detections, its classifications,
    then its new anomaly score.

    ``detections`` are the detection documents the write inserts or replaces; only the
    alerts' own candidates (``has_stamp``) are alerts (a prv_candidate is history).
    """
    events = [alert_event(oid, d, stored_ms) for d in detections if d.get("has_stamp")]
    ra, dec = object_doc.get("meanra"), object_doc.get("meandec")
    if ra is None or dec is None:
        return events
    survey = str(object_doc.get("survey") or "ZTF")
    events += [classification_event(oid, ra, dec, rows, stored_ms, survey)
               for rows in _by_classifier(probabilities).values()]
    if anomaly is not None:
        events.append(anomaly_event(oid, ra, dec, anomaly, stored_ms, survey))
    return events


def events_from_output_record(record: Mapping[str, Any], received_ms: int) -> list[Event]:
    """The events of one output record of the ``nightjar-classifications`` topic.

    A record with ``trigger = "alert"`` reports one processed alert (an alert event);
    its ``probabilities`` (any trigger) are classifications.  ``stored_ms`` is the
    record's ``processed_time`` (when the worker stored it), else ``received_ms``.
    """
    processed = record.get("processed_time")  # timestamp-millis: a datetime when decoded
    if isinstance(processed, dt.datetime):
        processed = round(processed.timestamp() * 1000)
    stored_ms = int(processed or received_ms)
    oid = str(record["oid"])
    events: list[Event] = []
    if record.get("trigger") == "alert":  # the record carries the detection's fields
        events.append(alert_event(oid, {
            **record, "corrected": record.get("magpsf_corr") is not None,
            "psfFlux": record.get("psf_flux"),
            "isdiffpos": "t" if record.get("isdiffpos", 1) > 0 else "f"}, stored_ms))
    summary = record.get("object") or {}
    ra, dec = summary.get("meanra", record["ra"]), summary.get("meandec", record["dec"])
    for rows in _by_classifier({"classifier_name": p["classifier"], **p}
                               for p in record.get("probabilities") or ()).values():
        event = classification_event(oid, ra, dec, rows, stored_ms,
                                     str(record.get("survey") or "ZTF"))
        if str(rows[0]["classifier_name"]) == "stamp_classifier":
            event["candid"] = int(record["candid"])
        events.append(event)
    # a score is new on the classify agent's records (the classification made it); an
    # alert record repeats the object's latest
    if record.get("trigger") == "lc_classifier" and record.get("anomaly"):
        events.append(anomaly_event(oid, ra, dec, record["anomaly"], stored_ms,
                                    str(record.get("survey") or "ZTF")))
    return events


# ---------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class ClassificationFilter:
    """Which classification rows a subscription receives; None = any."""

    classifier: str | None = None
    class_name: str | None = None
    probability_min: float | None = None
    ranking: int | None = None
    cone: Cone | None = None
    survey: str | None = None

    def rows(self, event: Event) -> list[Mapping[str, Any]]:
        """The rows of a classification event this filter passes (empty: none)."""
        if event["kind"] != CLASSIFICATION:
            return []
        if self.survey is not None and event.get("survey", "ZTF") != self.survey:
            return []
        if self.classifier is not None and event["classifier_name"] != self.classifier:
            return []
        if self.cone is not None and not self.cone.contains(event["ra"], event["dec"]):
            return []
        return [c for c in event["classes"]
                if (self.class_name is None or c["class_name"] == self.class_name)
                and (self.probability_min is None or c["probability"] >= self.probability_min)
                and (self.ranking is None or c["ranking"] == self.ranking)]


@dataclass(frozen=True)
class AnomalyFilter:
    """Which anomaly scores a subscription receives: a lowest score, survey, sky cone."""

    score_min: float | None = None
    survey: str | None = None
    cone: Cone | None = None

    def passes(self, event: Event) -> bool:
        return (event["kind"] == ANOMALY
                and (self.score_min is None or event["score"] >= self.score_min)
                and (self.survey is None or event.get("survey", "ZTF") == self.survey)
                and (self.cone is None or self.cone.contains(event["ra"], event["dec"])))


@dataclass(frozen=True)
class AlertFilter:
    """Which alert events a subscription receives: sky cone, band, magnitude limits [mag]."""

    cone: Cone | None = None
    fid: int | None = None
    magpsf_min: float | None = None
    magpsf_max: float | None = None
    oids: frozenset[str] | None = None
    survey: str | None = None
    band: str | None = None

    def passes(self, event: Event) -> bool:
        if event["kind"] != ALERT:
            return False
        mag = event["magpsf"]
        return ((self.oids is None or event["oid"] in self.oids)
                and (self.survey is None or event.get("survey", "ZTF") == self.survey)
                and (self.band is None or event.get("band") == self.band)
                and (self.fid is None or event["fid"] == self.fid)
                and (self.magpsf_min is None or mag >= self.magpsf_min)
                and (self.magpsf_max is None or mag <= self.magpsf_max)
                and (self.cone is None or self.cone.contains(event["ra"], event["dec"])))
