"""The context of one alert, as a filter sees it (:mod:`.schema`), and its evaluation.

Pure functions: the runner gathers :class:`FilterInputs` from what the pipeline just
computed (live) or from the store (backfill); both go through :func:`object_as_of` and
:func:`build_context`, which is why a backfill gives exactly what live evaluation gave.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cel

from nightjar.core.magstats import object_statistics
from nightjar.sky import separation_arcsec

Doc = dict[str, Any]

#: outcomes of one evaluation
MATCH, NO_MATCH, UNDEFINED, ERROR = "match", "no_match", "undefined", "error"


@dataclass(frozen=True)
class FilterInputs:
    """Everything a filter may read about one alert.

    Parameters
    ----------
    survey : str
        "ZTF" or "LSST".
    detection : dict
        The alert's own stored (corrected) detection document.
    statistics : dict
        The object's statistics as of the alert (:func:`object_as_of`).
    xmatch : dict
        Nearest source per catalogue (``{catalogue: {source_id, distance_arcsec,
        columns}}``).
    classifications : dict
        Per classifier, ``{class: probability}`` (classification stage).
    anomaly, surprise : dict, optional
        The latest anomaly score and forecast surprise (classification stage).
    tns : dict, optional
        The TNS object near the object (``name``, ``type``, ``distance_arcsec``).
    watchlists : set of str
        Watchlists with a row whose radius contains the alert.
    watchmaps : dict of str to float
        Per watchmap containing the alert (within its time window), the credible level
        of the alert's position: 0 for a MOC, the smallest credible region holding it
        for a sky map [0-1].
    """

    survey: str
    detection: Mapping[str, Any]
    statistics: Mapping[str, Any]
    xmatch: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    classifications: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    anomaly: Mapping[str, Any] | None = None
    surprise: Mapping[str, Any] | None = None
    tns: Mapping[str, Any] | None = None
    watchlists: frozenset[str] = frozenset()
    watchmaps: Mapping[str, float] = field(default_factory=dict)


def object_as_of(oid: str, detections: Sequence[Doc], non_detections: Sequence[Doc],
                 mjd: float, latest: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """The object's statistics from its detections and upper limits up to ``mjd`` [MJD],
    inclusive: what the pipeline computed when the alert at ``mjd`` was the latest.

    ``latest``, the statistics over every detection and limit (the pipeline's own, the
    same function of the same lists), is returned as it is when nothing is later than
    ``mjd``: the usual live case, which then costs no recomputation."""
    if latest is not None and all(d["mjd"] <= mjd for d in detections) and all(
            n["mjd"] <= mjd for n in non_detections):
        return latest
    return object_statistics(oid, [d for d in detections if d["mjd"] <= mjd],
                             [n for n in non_detections if n["mjd"] <= mjd])


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _put(out: Doc, key: str, value: Any) -> None:
    """Set a number unless it is missing (an absent field: ``has()`` is false)."""
    number = _number(value)
    if number is not None:
        out[key] = number


def alert_part(detection: Mapping[str, Any], first: bool) -> Doc:
    """The ``alert`` message of a stored detection (either survey)."""
    flux, err = _number(detection.get("psfFlux")), _number(detection.get("psfFluxErr"))
    positive = detection.get("isdiffpos")
    out: Doc = {
        "id": str(detection["candid"]), "mjd": float(detection["mjd"]),
        "band": str(detection["band"]), "ra": float(detection["ra"]),
        "dec": float(detection["dec"]), "first": first,
        "positive": positive in ("t", "1", 1, True) if positive is not None else (
            flux is not None and flux > 0),
    }
    _put(out, "flux_diff", flux)
    _put(out, "flux_diff_err", err)
    if flux is not None and err:
        out["snr"] = abs(flux) / err
    _put(out, "mag_diff", detection.get("magpsf"))
    _put(out, "mag_diff_err", detection.get("sigmapsf"))
    if detection.get("corrected"):
        _put(out, "mag", detection.get("magpsf_corr"))
        _put(out, "mag_err", detection.get("sigmapsf_corr"))
    reliability = detection.get("drb")
    if _number(reliability) is None:
        reliability = detection.get("rb") if "rb" in detection else detection.get("reliability")
    _put(out, "reliability", reliability)
    return out


def _band_part(stats: Mapping[str, Any]) -> Doc:
    out: Doc = {"ndet": int(stats["ndet"])}
    for key, name in (("firstmjd", "first_mjd"), ("lastmjd", "last_mjd"),
                      ("magfirst", "mag_first"), ("maglast", "mag_last"),
                      ("magmin", "mag_min"), ("magmax", "mag_max"), ("magmean", "mag_mean"),
                      ("magsigma", "mag_sigma"), ("dmdt_first", "dmdt_first")):
        _put(out, name, stats.get(key))
    if stats.get("corrected"):
        _put(out, "mag_last_app", stats.get("maglast_corr"))
    return out


def object_part(statistics: Mapping[str, Any]) -> Doc:
    """The ``object`` message of an object's statistics (as stored or :func:`object_as_of`)."""
    out: Doc = {
        "id": str(statistics["oid"]), "ndet": int(statistics["ndet"]),
        "first_mjd": float(statistics["firstmjd"]), "last_mjd": float(statistics["lastmjd"]),
        "age": float(statistics["lastmjd"]) - float(statistics["firstmjd"]),
        "ra": float(statistics["meanra"]), "dec": float(statistics["meandec"]),
        "band": {str(b["band"]): _band_part(b) for b in statistics.get("magstats", ())},
    }
    _put(out, "g_r_max", statistics.get("g_r_max"))
    _put(out, "g_r_mean", statistics.get("g_r_mean"))
    if isinstance(statistics.get("stellar"), bool):
        out["stellar"] = statistics["stellar"]
    return out


#: catalogue columns that carry a source's type, in order of preference
TYPE_COLUMNS = ("type", "Type", "vartype", "VarType", "otype", "main_type", "class", "Class")


def xmatch_part(xmatch: Mapping[str, Mapping[str, Any]]) -> Doc:
    out: Doc = {}
    for catalogue, match in xmatch.items():
        entry: Doc = {"id": str(match.get("source_id")),
                      "dist": float(match["distance_arcsec"])}
        columns = match.get("columns") or {}
        for column in TYPE_COLUMNS:
            if columns.get(column) not in (None, ""):
                entry["type"] = str(columns[column])
                break
        out[catalogue] = entry
    return out


#: a prune plan: key -> the plan below it, or None for "keep the whole value"
Plan = dict[str, "Plan | None"]


def _merge_plans(a: Plan | None, b: Plan | None) -> Plan | None:
    if a is None or b is None:
        return None
    out: Plan = dict(a)
    for key, sub in b.items():
        out[key] = _merge_plans(out[key], sub) if key in out else sub
    return out


@functools.lru_cache(maxsize=256)
def prune_plan(fields: frozenset[str]) -> Plan:
    """The tree of what ``fields`` reach (see :func:`pruned`), built once per set."""
    root: dict[str, Any] = {}
    for path in fields:
        if path.endswith(".**"):
            continue
        node = root
        for part in path.split("."):
            node = node.setdefault(part, {})

    def finish(node: dict[str, Any], prefix: str) -> Plan | None:
        if not node or f"{prefix}**" in fields:
            return None
        plan: Plan = {key: finish(sub, f"{prefix}{key}.") for key, sub in node.items()}
        if "*" in plan:  # a key named literally also gets what any key gets
            for key in plan:
                if key != "*":
                    plan[key] = _merge_plans(plan[key], plan["*"])
        return plan

    return finish(root, "") or {}


def pruned(tree: Mapping[str, Any], fields: frozenset[str]) -> Doc:
    """The parts of a context tree that the dotted ``fields`` reach: a field named with
    nothing below it (``object.band`` iterated by a comprehension) keeps its whole
    subtree, as does ``<path>.**`` (a union of several filters' fields marks so what one
    of them reads whole); ``*`` stands for any key (``object.band.*.ndet`` keeps every
    band's ``ndet``).  Handing the evaluator only these costs less (it converts every
    value it is given, ~2 us a number, and copies a map each time one is selected) and
    changes no result: a filter reads only the fields the checker found in it."""
    return _apply(tree, prune_plan(fields))


def _apply(tree: Mapping[str, Any], plan: Plan) -> Doc:
    out: Doc = {}
    for key, value in tree.items():
        if key in plan:
            sub = plan[key]
        elif "*" in plan:
            sub = plan["*"]
        else:
            continue
        out[key] = value if sub is None or not isinstance(value, dict) else _apply(value, sub)
    return out


def build_context(inputs: FilterInputs, fields: frozenset[str] | None = None
                  ) -> cel.Context:
    """The evaluator's context of one alert: variables and the filter functions.

    ``fields``: the dotted paths the filters to run read (their checker's references);
    only those are handed to the evaluator (:func:`pruned`).  None: everything."""
    first = int(inputs.statistics["ndet"]) == 1
    variables: Doc = {"survey": inputs.survey}
    wanted = fields if fields is not None else frozenset({"alert", "object", "xmatch"})
    if "alert" in wanted:
        variables["alert"] = alert_part(inputs.detection, first)
    if "object" in wanted:
        variables["object"] = object_part(inputs.statistics)
    if "xmatch" in wanted:
        variables["xmatch"] = xmatch_part(inputs.xmatch)
    if inputs.anomaly is not None and _number(inputs.anomaly.get("score")) is not None:
        variables["anomaly"] = {"score": float(inputs.anomaly["score"]),
                                "model": str(inputs.anomaly.get("model", ""))}
    if inputs.surprise is not None and _number(inputs.surprise.get("value")) is not None:
        variables["surprise"] = {"value": float(inputs.surprise["value"]),
                                 "band": str(inputs.surprise.get("band", ""))}
    if inputs.tns is not None:
        tns: Doc = {"name": str(inputs.tns["name"]),
                    "dist": float(inputs.tns.get("distance_arcsec") or 0.0)}
        if inputs.tns.get("type"):
            tns["type"] = str(inputs.tns["type"])
        variables["tns"] = tns
    if fields is not None:
        variables = {"survey": inputs.survey, **pruned(variables, fields)}
    for optional in ("alert", "object", "xmatch", "anomaly", "surprise", "tns"):
        variables.setdefault(optional, {})  # absent: has(anomaly.score) is false
    context = cel.Context(variables)
    classes = inputs.classifications
    matches = xmatch_part(inputs.xmatch) if inputs.xmatch else {}

    def prob(classifier: str, class_name: str) -> float | None:
        rows = classes.get(classifier)
        return None if rows is None else float(rows.get(class_name, 0.0))

    def class_of(classifier: str) -> str | None:
        rows = classes.get(classifier)
        return max(rows, key=lambda k: rows[k]) if rows else None

    def has_match(_receiver: Any, catalogue: str, radius: float) -> bool:
        match = matches.get(catalogue)
        return match is not None and match["dist"] <= float(radius)

    def in_watchmap(name: str, level: float) -> bool:
        found = inputs.watchmaps.get(name)
        return found is not None and found <= float(level)

    context.add_function("prob", prob)
    context.add_function("class_of", class_of)
    context.add_function("classified", lambda classifier: classifier in classes)
    context.add_function("has", has_match)
    context.add_function("in_watchlist", lambda name: name in inputs.watchlists)
    context.add_function("in_watchmap", in_watchmap)
    alert_ra, alert_dec = float(inputs.detection["ra"]), float(inputs.detection["dec"])

    def in_cone(ra: float, dec: float, radius_arcsec: float) -> bool:
        return separation_arcsec(alert_ra, alert_dec, float(ra), float(dec)) <= float(
            radius_arcsec)

    context.add_function("in_cone", in_cone)
    return context


@dataclass(frozen=True)
class Outcome:
    """One evaluation: match, no_match, undefined (read an absent value) or error."""

    result: str
    seconds: float
    error: str | None = None


def evaluate(program: cel.Program, context: cel.Context) -> Outcome:
    """Evaluate one compiled filter on one context; never raises.

    A checked filter can fail at run time in two ways: it reads a value that is absent
    (a missing key, or a comparison with a function's undefined result): *undefined*,
    which does not match and is not the filter's fault; or an arithmetic fault (division
    by zero, overflow): *error*, which counts toward muting it.
    """
    start = time.perf_counter()
    try:
        value = program.execute(context)
    except Exception as exc:
        return failed(exc, time.perf_counter() - start)
    return outcome_of(value, time.perf_counter() - start)


def outcome_of(value: Any, seconds: float) -> Outcome:
    """The outcome of a value an evaluation gave."""
    if value is True:
        return Outcome(MATCH, seconds)
    if value is False:
        return Outcome(NO_MATCH, seconds)
    return Outcome(UNDEFINED, seconds, f"the filter gave {value!r}, not a bool")


def failed(exc: Exception, seconds: float) -> Outcome:
    """The outcome of an evaluation that raised: undefined (an absent value) or error."""
    if isinstance(exc, (KeyError, TypeError)):
        return Outcome(UNDEFINED, seconds, str(exc)[:200])
    if isinstance(exc, RuntimeError):
        if "Undefined variable" not in str(exc):  # names are checked: only absent values
            return Outcome(ERROR, seconds, f"RuntimeError: {exc}"[:200])
        return Outcome(UNDEFINED, seconds, str(exc)[:200])
    # the evaluator's own errors: the filter's fault
    return Outcome(ERROR, seconds, f"{type(exc).__name__}: {str(exc)[:200]}")


def read_values(inputs: FilterInputs, paths: Iterable[str]) -> Doc:
    """What the filter read: the values at its referenced leaf paths (for the match
    record), absent ones left out."""
    first = int(inputs.statistics["ndet"]) == 1
    tree: Doc = {"survey": inputs.survey, "alert": alert_part(inputs.detection, first),
                 "object": object_part(inputs.statistics), "xmatch": xmatch_part(inputs.xmatch)}
    if inputs.anomaly is not None:
        tree["anomaly"] = {"score": inputs.anomaly.get("score")}
    if inputs.surprise is not None:
        tree["surprise"] = {"value": inputs.surprise.get("value")}
    if inputs.tns is not None:
        tree["tns"] = {"name": inputs.tns.get("name"), "type": inputs.tns.get("type")}
    out: Doc = {}
    for path in sorted(paths):
        node: Any = tree
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, dict):
            out[path] = node
    return out
