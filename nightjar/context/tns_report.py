"""AT reports to the Transient Name Server: the bulk-report JSON built from an object's
light curve (pure), and the calls that send it and read TNS's answer.

TNS's bulk-report API (TNS 2.0 bulk-report manual): ``POST <api>/set/bulk-report`` with
the bot's ``api_key`` and ``data`` = ``{"at_report": {"0": {...}}}`` answers a
``report_id``; ``POST <api>/get/bulk-report-reply`` with that id answers 404 while TNS is
still processing, then the feedback: one entry per report, each a map from TNS's message
code to ``{"message": ..., "objname": ...}`` (100: a new AT, 101: the object already
exists; both name it).  Photometry is in AB magnitudes (``flux_units`` "1"), times in
UTC as ``YYYY-MM-DD HH:MM:SS.sss``, and instruments and filters by TNS's ids (ZTF-Cam
196; ZTF g, r, i 110, 111, 112).

The report follows what ALeRCE sends for its young supernovae: the discovery date is
the first positive detection, the non-detection is the last one before it, and the
photometry is every positive detection.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from astropy.time import Time

from nightjar.context.tns import TnsClient, TnsError
from nightjar.settings import Settings

SUBMIT_PATH = "/set/bulk-report"
REPLY_PATH = "/get/bulk-report-reply"
#: TNS's AT types (the values list): what a report may call the transient
AT_TYPES: dict[int, str] = {0: "Other", 1: "PSN", 2: "PNV", 3: "AGN", 4: "NUC"}
AB_MAGNITUDE = "1"  #: TNS flux_units id of AB magnitudes
#: the SN Hunter labels (the explorer's vetting buttons); the latest one decides
SN_HUNTER_LABELS = ("POSSIBLE_SN", "NOT_SN", "BOGUS")
VETTED_LABEL = "POSSIBLE_SN"
MAX_REMARKS = 1000
#: astrometric error floor of a reported position [arcsec]
MIN_POSITION_ERROR = 0.1
ZTF_BANDS = {1: "g", 2: "r", 3: "i"}


@dataclass(frozen=True)
class ReportConfig:
    """Who reports and how TNS names the instruments (settings ``tns_*``)."""

    reporting_group_id: int | None
    discovery_data_source_id: int | None
    reporter: str
    instruments: Mapping[str, int]  #: survey -> TNS instrument id
    filters: Mapping[str, Mapping[str, int]]  #: survey -> band -> TNS filter id
    exposure_s: Mapping[str, float]  #: survey -> exposure of a visit [s]


@dataclass(frozen=True)
class ReportDraft:
    """An AT report ready for review: the JSON TNS gets, and why it cannot go yet."""

    oid: str
    at_report: dict[str, Any]  #: one report: what goes under ``at_report["0"]``
    problems: list[str]  #: empty = it can be sent
    digest: str  #: identifies this exact report (sending checks the reviewed one is sent)

    @property
    def ready(self) -> bool:
        return not self.problems

    def payload(self) -> dict[str, Any]:
        """The bulk-report ``data`` document."""
        return {"at_report": {"0": self.at_report}}


@dataclass(frozen=True)
class ReportFeedback:
    """TNS's answer to a processed report."""

    accepted: bool
    objname: str | None  #: the TNS name (e.g. 2026abc) when accepted
    messages: list[str] = field(default_factory=list)


def _iso_utc(mjd: float) -> str:
    return str(Time(mjd, format="mjd", scale="utc").iso)


def _band(doc: Mapping[str, Any]) -> str | None:
    band = doc.get("band")
    if band:
        return str(band)
    return ZTF_BANDS.get(int(doc.get("fid") or 0)) if doc.get("survey", "ZTF") == "ZTF" else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def positive_detections(detections: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Detections a discovery report may use, oldest first: positive difference flux, a
    finite magnitude, not withdrawn by the survey."""
    kept = [d for d in detections
            if str(d.get("isdiffpos", "t")) in ("t", "1") and not d.get("withdrawn")
            and _finite(d.get("magpsf")) and _finite(d.get("mjd"))]
    return sorted(kept, key=lambda d: float(d["mjd"]))


def is_vetted(labels: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the latest SN Hunter label on the object is POSSIBLE_SN (labels oldest
    first, as the store returns them)."""
    verdicts = [lab["label"] for lab in labels if lab.get("label") in SN_HUNTER_LABELS]
    return bool(verdicts) and verdicts[-1] == VETTED_LABEL


def _position_error_arcsec(points: Sequence[Mapping[str, Any]], dec_deg: float) -> float:
    """Scatter of the detections' positions about their mean [arcsec], floored."""
    ras = [float(p["ra"]) for p in points if _finite(p.get("ra"))]
    decs = [float(p["dec"]) for p in points if _finite(p.get("dec"))]
    if len(ras) < 2 or len(decs) < 2:
        return MIN_POSITION_ERROR
    cos_dec = math.cos(math.radians(dec_deg))
    mean_ra, mean_dec = sum(ras) / len(ras), sum(decs) / len(decs)
    var = (sum(((r - mean_ra) * cos_dec) ** 2 for r in ras) / len(ras)
           + sum((d - mean_dec) ** 2 for d in decs) / len(decs))
    return max(math.sqrt(var) * 3600.0, MIN_POSITION_ERROR)


def build_at_report(obj: Mapping[str, Any], detections: Sequence[Mapping[str, Any]],
                    non_detections: Sequence[Mapping[str, Any]],
                    labels: Sequence[Mapping[str, Any]], config: ReportConfig,
                    at_type: int = 1, remarks: str | None = None) -> ReportDraft:
    """The TNS AT report of one object, with every reason it cannot be sent yet.

    Parameters
    ----------
    obj : mapping
        The stored object (``_id`` or ``oid``, ``survey``, ``meanra``, ``meandec`` [deg]).
    detections, non_detections : sequences of mappings
        Its stored light curve: ``mjd`` [MJD, UTC], ``band`` or ZTF ``fid``,
        ``magpsf``/``sigmapsf`` [AB mag], ``isdiffpos``, ``diffmaglim`` [AB mag].
    labels : sequence of mappings
        Users' labels, oldest first (the SN Hunter verdict is the latest of them).
    config : ReportConfig
        Reporting group, reporter, TNS's instrument and filter ids.
    at_type : int
        TNS AT type (1 PSN, 2 PNV, 3 AGN, 4 NUC, 0 other).
    remarks : str, optional
        Free text for TNS; the default names the broker's vetting.

    Returns
    -------
    ReportDraft
        The report and its problems (empty when it can be sent).
    """
    oid = str(obj.get("oid") or obj["_id"])
    survey = str(obj.get("survey") or "ZTF")
    problems: list[str] = []
    if not is_vetted(labels):
        problems.append(f"{oid} is not vetted: its latest SN Hunter label must be "
                        f"{VETTED_LABEL}")
    if at_type not in AT_TYPES:
        problems.append(f"AT type {at_type} is not one of TNS's ({sorted(AT_TYPES)})")
    if config.reporting_group_id is None:
        problems.append("no reporting group: set NIGHTJAR_TNS_REPORTING_GROUP_ID")
    instrument = config.instruments.get(survey)
    if instrument is None:
        problems.append(f"no TNS instrument id for {survey}: set it in "
                        "NIGHTJAR_TNS_INSTRUMENTS (from TNS's values list)")
    bands = config.filters.get(survey, {})
    exposure = config.exposure_s.get(survey)
    points = positive_detections(detections)
    if not points:
        problems.append(f"{oid} has no positive detection to report")
    remarks = remarks if remarks is not None else (
        f"Nightjar alert broker: {survey} object {oid}, vetted {VETTED_LABEL}.")
    if len(remarks) > MAX_REMARKS:
        problems.append(f"remarks longer than {MAX_REMARKS} characters")

    def measurement(doc: Mapping[str, Any], limit_only: bool) -> dict[str, Any]:
        band = _band(doc)
        filter_id = bands.get(band) if band else None
        if filter_id is None:
            message = f"no TNS filter id for {survey} band {band}: set NIGHTJAR_TNS_FILTERS"
            if message not in problems:
                problems.append(message)
        out: dict[str, Any] = {"obsdate": _iso_utc(float(doc["mjd"]))}
        if not limit_only:
            out["flux"] = round(float(doc["magpsf"]), 3)
            out["flux_error"] = round(float(doc["sigmapsf"]), 3) if _finite(
                doc.get("sigmapsf")) else None
        if _finite(doc.get("diffmaglim")):
            out["limiting_flux"] = round(float(doc["diffmaglim"]), 3)
        out.update({"flux_units": AB_MAGNITUDE,
                    "filter_value": str(filter_id) if filter_id is not None else None,
                    "instrument_value": str(instrument) if instrument is not None else None,
                    "exptime": f"{exposure:g}" if exposure is not None else None,
                    "observer": "Robot", "comments": ""})
        return {k: v for k, v in out.items() if v is not None}

    ra, dec = float(obj["meanra"]), float(obj["meandec"])
    error = round(_position_error_arcsec(points, dec), 3)
    report: dict[str, Any] = {
        "ra": {"value": round(ra, 7), "error": error, "units": "arcsec"},
        "dec": {"value": round(dec, 7), "error": error, "units": "arcsec"},
        "reporting_group_id": str(config.reporting_group_id or ""),
        "discovery_data_source_id": str(config.discovery_data_source_id
                                        or config.reporting_group_id or ""),
        "reporter": config.reporter,
        "at_type": str(at_type),
        "internal_name": oid,
        "remarks": remarks,
    }
    if points:
        first = float(points[0]["mjd"])
        report["discovery_datetime"] = _iso_utc(first)
        before = [n for n in non_detections
                  if _finite(n.get("mjd")) and float(n["mjd"]) < first
                  and _finite(n.get("diffmaglim"))]
        if before:
            last = max(before, key=lambda n: float(n["mjd"]))
            report["non_detection"] = measurement(last, limit_only=True)
        else:
            report["non_detection"] = {
                "archiveid": "0",
                "archival_remarks": f"no {survey} non-detection before the first detection"}
        report["photometry"] = {"photometry_group": {
            str(i): measurement(p, limit_only=False) for i, p in enumerate(points)}}
    digest = hashlib.sha256(json.dumps(report, sort_keys=True,
                                       separators=(",", ":")).encode()).hexdigest()[:24]
    return ReportDraft(oid, report, problems, digest)


def report_id_of(answer: Any) -> str:
    """The report id in TNS's answer to ``set/bulk-report``; TnsError when there is none."""
    data = answer.get("data") if isinstance(answer, dict) else None
    report_id = data.get("report_id") if isinstance(data, dict) else None
    if report_id in (None, ""):
        message = answer.get("id_message") if isinstance(answer, dict) else None
        raise TnsError(f"TNS did not accept the report: {message or 'no report id'}")
    return str(report_id)


def feedback_of(answer: Any) -> ReportFeedback:
    """TNS's feedback on a processed report (``get/bulk-report-reply``)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    feedback = data.get("feedback") if isinstance(data, dict) else None
    entries = feedback.get("at_report") if isinstance(feedback, dict) else None
    if not isinstance(entries, list):
        raise TnsError("TNS's reply has no feedback on the report")
    messages: list[str] = []
    objname: str | None = None
    for entry in entries:
        for code, item in (entry.items() if isinstance(entry, dict) else []):
            if not isinstance(item, dict):
                continue
            text = str(item.get("message", "")).strip()
            messages.append(f"{code}: {text}" if text else str(code))
            if item.get("objname") and objname is None:
                objname = str(item["objname"])
    return ReportFeedback(objname is not None, objname, messages)


class TnsReporter:
    """Sends AT reports with the bot's credentials and reads TNS's replies.

    Parameters
    ----------
    client : TnsClient
        The bot's client (its credentials, rate-limit handling, HTTP client).
    config : ReportConfig
        What the builder needs (the gateway builds drafts through the reporter).
    target : str
        The report API's URL (``tns_report_url``), also shown to the user before sending.
    reply_attempts, reply_interval_s
        How often, and how far apart [s], a sender asks for TNS's answer before leaving
        the report SUBMITTED (TNS usually answers within seconds).
    """

    def __init__(self, client: TnsClient, config: ReportConfig, target: str,
                 reply_attempts: int = 5, reply_interval_s: float = 1.0):
        self.client, self.config, self.target = client, config, target
        self.reply_attempts, self.reply_interval_s = reply_attempts, reply_interval_s

    def _url(self, path: str) -> str:
        return self.target.rstrip("/") + path

    async def submit(self, draft: ReportDraft) -> str:
        """Send one report; return TNS's report id."""
        if not draft.ready:
            raise TnsError("; ".join(draft.problems))
        response = await self.client.post(
            self._url(SUBMIT_PATH), {"data": json.dumps(draft.payload())}, "the AT report")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200:
            detail = answer.get("id_message") if isinstance(answer, dict) else None
            raise TnsError(f"TNS refused the report ({response.status_code}"
                           f"{': ' + str(detail) if detail else ''})")
        return report_id_of(answer)

    async def reply(self, report_id: str) -> ReportFeedback | None:
        """TNS's feedback on a report; None while TNS is still processing it."""
        response = await self.client.post(self._url(REPLY_PATH), {"report_id": report_id},
                                          f"report {report_id}'s reply")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        code = answer.get("id_code") if isinstance(answer, dict) else None
        if response.status_code == 404 or code == 404:
            return None
        if response.status_code != 200:
            raise TnsError(f"TNS answered {response.status_code} for report {report_id}")
        return feedback_of(answer)


def reporter_from_settings(settings: Settings, http: httpx.AsyncClient) -> TnsReporter | None:
    """The broker's reporter, or None when no TNS bot is configured."""
    if (settings.tns_bot_id is None or not settings.tns_bot_name
            or settings.tns_api_key is None):
        return None
    config = ReportConfig(
        reporting_group_id=settings.tns_reporting_group_id,
        discovery_data_source_id=settings.tns_discovery_data_source_id,
        reporter=settings.tns_reporter, instruments=settings.tns_instruments,
        filters=settings.tns_filters, exposure_s=settings.tns_exposure_s)
    client = TnsClient(http, settings.tns_bot_id, settings.tns_bot_name,
                       settings.tns_api_key.get_secret_value())
    return TnsReporter(client, config, settings.tns_report_url)
