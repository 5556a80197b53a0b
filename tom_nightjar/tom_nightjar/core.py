"""What the data service, the broker class and the stream share: the settings, the
client, Nightjar's results as the TOM's targets and photometry.

The TOM reaches Nightjar through ``nightjar_client`` only (GraphQL over HTTP and
WebSocket), so it runs anywhere that can reach the gateway.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from astropy.time import Time
from django.conf import settings
from nightjar_client import Nightjar
from tom_dataproducts.models import PhotometryReducedDatum
from tom_targets.models import Target

NAME = "Nightjar"
SURVEYS = (("", "Any survey"), ("ztf", "ZTF"), ("lsst", "Rubin LSST"))
ZTF_BANDS = {1: "g", 2: "r", 3: "i"}


def configuration() -> Mapping[str, Any]:
    """Where Nightjar is: ``DATA_SERVICES["Nightjar"]`` (TOM Toolkit 3's place), else
    ``BROKERS["Nightjar"]``: ``url`` and, for private saved filters, ``api_key``."""
    for group in ("DATA_SERVICES", "BROKERS"):
        found = (getattr(settings, group, None) or {}).get(NAME)
        if found:
            return found
    return {}


def client() -> Nightjar:
    config = configuration()
    return Nightjar(config.get("url"), config.get("api_key") or None, max_results=1000)


def object_url(oid: str) -> str:
    base = str(configuration().get("url") or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/explorer/object/{oid}"


def mjd_to_datetime(mjd: float) -> dt.datetime:
    """A UTC datetime of an MJD [days] (the TOM's timestamps are aware datetimes)."""
    return Time(mjd, format="mjd", scale="utc").to_datetime(timezone=dt.UTC)


# -- queries ------------------------------------------------------------------------------
def query_parameters(form: Mapping[str, Any]) -> dict[str, Any]:
    """A query form's fields as the query (JSON-safe; empty fields left out): either a
    saved filter (``saved_filter``) or the client's ``query_objects`` keywords."""
    limit = int(form.get("max_results") or 100)
    if form.get("saved_filter"):
        return {"saved_filter": str(form["saved_filter"]).strip(), "max_results": limit}
    out: dict[str, Any] = {"max_results": limit}
    if form.get("survey"):
        out["survey"] = str(form["survey"])
    if form.get("classifier") and form.get("class_name"):
        out["classifier"] = str(form["classifier"])
        out["class_name"] = str(form["class_name"])
        if form.get("probability") is not None:
            out["probability"] = float(form["probability"])
    if form.get("ndet_min"):
        out["ndet"] = int(form["ndet_min"])
    if form.get("radius") is not None and form.get("ra") is not None:
        out.update(ra=float(form["ra"]), dec=float(form["dec"]),
                   radius=float(form["radius"]))
    return out


def run_query(nj: Nightjar, query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The query's results as result dicts (:func:`object_result`, :func:`match_result`);
    the gateway's refusal raises :class:`nightjar_client.errors.APIError`."""
    limit = int(query.get("max_results") or 100)
    if query.get("saved_filter"):
        return [match_result(m) for m in nj.filter_matches(str(query["saved_filter"]),
                                                           max_results=limit)]
    keywords = {k: v for k, v in query.items() if k != "max_results"}
    rows = nj.query_objects(format="json", max_results=limit, page_size=min(limit, 500),
                            **keywords)
    return [object_result(r) for r in rows]


def object_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """An object row of ``query_objects`` as a result."""
    oid = str(row["oid"])
    return {"name": oid, "survey": str(row.get("survey", "")), "ra": float(row["meanra"]),
            "dec": float(row["meandec"]), "mjd": float(row["lastmjd"]),
            "ndet": row.get("ndet"), "classifier": row.get("classifier"),
            "class_name": row.get("class"), "probability": row.get("probability"),
            "url": object_url(oid)}


def match_result(match: Mapping[str, Any]) -> dict[str, Any]:
    """A saved filter's match as a result (what the filter read included)."""
    read = match.get("read") or {}
    mag = read.get("alert.mag_diff", read.get("alert.mag"))
    oid = str(match["oid"])
    return {"name": oid, "survey": str(match["survey"]), "ra": float(match["ra"]),
            "dec": float(match["dec"]), "mjd": float(match["mjd"]),
            "alert_id": str(match["alert_id"]), "seq": int(match["seq"]),
            "filter": match.get("filter_name"), "version": match.get("version"),
            "mag": mag if isinstance(mag, int | float) else None, "read": read,
            "url": match.get("permalink") or object_url(oid)}


# -- targets and photometry ----------------------------------------------------------------
def new_target(result: Mapping[str, Any]) -> Target:
    """A sidereal target named by the object id (not saved)."""
    return Target(name=result["name"], type="SIDEREAL", ra=float(result["ra"]),
                  dec=float(result["dec"]), epoch=2000.0)


def target_extras(result: Mapping[str, Any]) -> dict[str, Any]:
    """What Nightjar said of it, as the target's extras."""
    extras = {"nightjar_survey": result.get("survey", ""), "nightjar_url": result["url"]}
    if result.get("class_name"):
        extras["nightjar_class"] = f"{result['classifier']}: {result['class_name']}"
    if result.get("filter"):
        extras["nightjar_filter"] = str(result["filter"])
    return extras


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def photometry_points(curve: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A light curve (the client's ``query_lightcurve`` JSON) as photometry points:
    detections' difference magnitudes [mag] with errors, upper limits [mag], each with
    its survey and band; points without a magnitude (an LSST detection of negative flux)
    are left out."""
    points = []
    for det in curve.get("detections", []):
        brightness = _finite(det.get("magpsf"))
        if brightness is not None:
            points.append({"mjd": float(det["mjd"]), "survey": str(det["survey"]),
                           "band": det.get("band") or ZTF_BANDS.get(int(det.get("fid") or 0)),
                           "magnitude": brightness, "error": _finite(det.get("sigmapsf")),
                           "candid": str(det["candid"])})
    for limit in curve.get("non_detections", []):
        depth = _finite(limit.get("diffmaglim"))
        if depth is not None:
            points.append({"mjd": float(limit["mjd"]), "survey": str(limit["survey"]),
                           "band": limit.get("band")
                           or ZTF_BANDS.get(int(limit.get("fid") or 0)), "limit": depth})
    return points


def store_photometry(target: Target, points: Iterable[Mapping[str, Any]]
                     ) -> list[PhotometryReducedDatum]:
    """Photometry points on the target, per survey and band (``"ZTF g"``, ``"LSST r"``);
    a point already there is kept, not doubled.  Returns the datums (new and old)."""
    location = object_url(target.name)
    out = []
    for point in points:
        common = {"target": target, "bandpass": f"{point['survey']} {point['band']}",
                  "timestamp": mjd_to_datetime(point["mjd"]),
                  "instrument": point["survey"], "reduction_version": ""}
        defaults = {"unit": "AB mag", "telescope": point["survey"], "source_name": NAME,
                    "source_location": location}
        if "limit" in point:
            datum, _ = PhotometryReducedDatum.objects.get_or_create(
                limit=point["limit"], defaults=defaults, **common)
        else:
            datum, _ = PhotometryReducedDatum.objects.get_or_create(
                brightness=point["magnitude"], **common, defaults={
                    **defaults, "brightness_error": point["error"],
                    "value": {"candid": point["candid"]}})
        out.append(datum)
    return out


def refresh_photometry(nj: Nightjar, target: Target) -> int:
    """Bring the target's photometry up to date; returns how many points were added."""
    before = PhotometryReducedDatum.objects.filter(target=target).count()
    store_photometry(target, photometry_points(nj.query_lightcurve(target.name)))
    return PhotometryReducedDatum.objects.filter(target=target).count() - before
