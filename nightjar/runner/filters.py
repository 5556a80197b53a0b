"""Users' filters on the stream and over the archive.

* :class:`FilterService` creates, edits, pauses and deletes filters (each edit a new
  version), dry-runs and backfills them: what the CLI and the GraphQL resolvers call,
  with ownership checked here, once.
* :class:`FilterEngine` evaluates the active filters on each stored batch (embedded
  runner and Kafka worker alike), at the first stage where what a filter reads exists:
  filters of the *alert* stage on every stored alert, right after the store; filters of
  the *classification* stage on every classification event, after the classifier's
  rows are stored.

Live and backfill evaluation share one path (:func:`alert_inputs`,
:func:`classification_inputs`): the object's statistics are recomputed as of the alert
(:func:`nightjar.core.filters.context.object_as_of`) and classifications are read from
the stored classification events as of the event, so a backfill over alerts stored
before a filter existed gives exactly the matches live evaluation would have given.

A filter that breaks never slows the others: every evaluation is timed, errors and
overruns are counted, and a filter that keeps failing (or overruns its CPU budget) is
muted with a notice to its owner; quotas (matches and bytes per user per day) mute the
same way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cel

from ml.lc_classifier.taxonomy import (
    BRANCH_CLASSIFIERS,
    CLASSES,
    FULL_CLASSIFIER,
    HIERARCHY,
    TOP_CLASSES,
    TOP_CLASSIFIER,
)
from ml.stamp_classifier import CLASSES as STAMP_CLASSES
from ml.stamp_classifier import NAME as STAMP_CLASSIFIER
from nightjar.core.filters.context import (
    ERROR,
    MATCH,
    UNDEFINED,
    FilterInputs,
    Outcome,
    build_context,
    failed,
    object_as_of,
    outcome_of,
    read_values,
)
from nightjar.core.filters.language import (
    CLASSIFICATION_STAGE,
    CheckedFilter,
    FilterEnvironment,
    FilterError,
    check,
    compile_filter,
)
from nightjar.runner.delivery import Deliverer, validate_delivery
from nightjar.settings import Settings
from nightjar.sky import ANCHOR_MARGIN_ARCSEC, Cone
from nightjar.store.filters import ACTIVE, EXPIRED, MUTED, PAUSED, FilterStore
from nightjar.store.mongo import NightjarStore, ObjectFilter
from nightjar.store.schema import DETECTIONS, NON_DETECTIONS

if TYPE_CHECKING:
    from nightjar.runner.ingest import BatchResult

log = logging.getLogger(__name__)

Doc = dict[str, Any]

#: who the CLI acts as without an API key: the local operator, who may act on any filter
OPERATOR = "operator"
#: when to deliver a match: on every alert or event, the first per object, or when the
#: object's top class changed since the filter's last match of it
NOTIFY_MODES = ("every", "first", "class_change")
#: the classifier whose top class ``class_change`` follows when a filter names none
DEFAULT_CLASS_CLASSIFIER = FULL_CLASSIFIER
#: how often the engine looks for e-mail digests that are due [s]
DIGEST_CHECK_S = 30.0


@dataclass(frozen=True)
class FilterLimits:
    """Quotas and safety limits (from settings)."""

    max_filters_per_user: int = 100
    matches_per_day: int = 10_000  #: per user
    bytes_per_day: int = 50_000_000  #: per user, of stored match records
    lifetime_days: int = 180  #: expiry unless renewed
    budget_ms: float = 1.0  #: CPU budget of one evaluation
    #: muted after this many overruns, or errors that are also most of its evaluations
    max_overruns: int = 10
    max_errors: int = 20


class FilterAccessError(PermissionError):
    """The caller may not read or change this filter."""


class WatchLookup(Protocol):
    """Where an alert falls among the watchlists and watchmaps (ids) filters name
    (:class:`nightjar.runner.watch.WatchIndexes`)."""

    def watchlists_at(self, ra: float, dec: float, names: Iterable[str]) -> frozenset[str]: ...

    def watchmaps_at(self, ra: float, dec: float, mjd: float,
                     names: Iterable[str]) -> dict[str, float]: ...

    def names_for(self, owner: str) -> tuple[dict[str, str], dict[str, str]]: ...

    def prime(self, positions: Sequence[tuple[float, float]], list_ids: Iterable[str]
              ) -> None: ...

    async def refresh(self, *, force: bool = False) -> None: ...

    async def on_batch(self, result: BatchResult) -> list[Doc]: ...


class TnsLookup(Protocol):
    def __call__(self, ra: float, dec: float) -> Doc | None: ...


def classifier_classes() -> dict[str, frozenset[str]]:
    """Every classifier a filter may name, with its classes (both surveys' rows keep
    these names)."""
    out = {STAMP_CLASSIFIER: frozenset(STAMP_CLASSES), FULL_CLASSIFIER: frozenset(CLASSES),
           TOP_CLASSIFIER: frozenset(TOP_CLASSES)}
    out.update({BRANCH_CLASSIFIERS[top]: frozenset(classes)
                for top, classes in HIERARCHY.items()})
    return out


# -- inputs, shared by live and backfill evaluation ------------------------------------
def classifications_as_of(events: Sequence[Doc], upto: Doc) -> dict[str, dict[str, float]]:
    """Per classifier, its probabilities in the latest event up to and including
    ``upto`` (events ordered by mjd, then id)."""
    out: dict[str, dict[str, float]] = {}
    key = (upto["mjd"], upto["_id"])
    for event in events:
        if (event["mjd"], event["_id"]) > key:
            break
        for name, entry in event.get("classifiers", {}).items():
            out[name] = dict(entry["probabilities"])
    return out


def _latest_with(events: Sequence[Doc], upto: Doc, key: str) -> Doc | None:
    found = None
    limit = (upto["mjd"], upto["_id"])
    for event in events:
        if (event["mjd"], event["_id"]) > limit:
            break
        if event.get(key) is not None:
            found = event[key]
    return found


@dataclass(frozen=True)
class ObjectData:
    """What the store holds of one object, as filters read it."""

    oid: str
    survey: str
    object_doc: Mapping[str, Any]
    detections: Sequence[Doc]  #: corrected, every version merged
    non_detections: Sequence[Doc]
    events: Sequence[Doc] = ()  #: classification events, oldest first
    #: the statistics over every detection and limit when already computed (the
    #: pipeline's), so the latest alert's are not computed again
    statistics: Mapping[str, Any] | None = None


def alert_inputs(data: ObjectData, detection: Doc, *, tns: TnsLookup | None = None,
                 watch: WatchLookup | None = None, watchlists: Iterable[str] = (),
                 watchmaps: Iterable[str] = ()) -> FilterInputs:
    """The inputs of an alert-stage evaluation of one alert's detection."""
    stats = object_as_of(data.oid, data.detections, data.non_detections, detection["mjd"],
                         data.statistics)
    return _inputs(data, detection, stats, tns, watch, watchlists, watchmaps)


def classification_inputs(data: ObjectData, event: Doc, *, tns: TnsLookup | None = None,
                          watch: WatchLookup | None = None, watchlists: Iterable[str] = (),
                          watchmaps: Iterable[str] = ()) -> FilterInputs | None:
    """The inputs of a classification-stage evaluation of one classification event
    (None when the detection it names is not stored)."""
    by_key = {d["_id"]: d for d in data.detections}
    detection = by_key.get(event["candid"])
    if detection is None:
        return None
    stats = object_as_of(data.oid, data.detections, data.non_detections, detection["mjd"],
                         data.statistics)
    base = _inputs(data, detection, stats, tns, watch, watchlists, watchmaps)
    return FilterInputs(
        survey=base.survey, detection=base.detection, statistics=base.statistics,
        xmatch=base.xmatch, tns=base.tns, watchlists=base.watchlists,
        watchmaps=base.watchmaps,
        classifications=classifications_as_of(data.events, event),
        anomaly=_latest_with(data.events, event, "anomaly"),
        surprise=_latest_with(data.events, event, "surprise"))


def _inputs(data: ObjectData, detection: Doc, stats: Mapping[str, Any], tns: TnsLookup | None,
            watch: WatchLookup | None, watchlists: Iterable[str],
            watchmaps: Iterable[str]) -> FilterInputs:
    ra, dec = float(detection["ra"]), float(detection["dec"])
    lists, maps = list(watchlists), list(watchmaps)
    return FilterInputs(
        survey=data.survey, detection=detection, statistics=stats,
        xmatch=data.object_doc.get("xmatch") or {},
        tns=tns(float(stats["meanra"]), float(stats["meandec"])) if tns else None,
        watchlists=watch.watchlists_at(ra, dec, lists) if watch and lists else frozenset(),
        watchmaps=watch.watchmaps_at(ra, dec, float(detection["mjd"]), maps)
        if watch and maps else {})


async def stored_data(filters: FilterStore, oids: Sequence[str], *, need_events: bool
                      ) -> dict[str, ObjectData]:
    """What the store holds of these objects, as filters read it (backfill, and the
    classify agent's events)."""
    store = filters.store
    objects = await store.objects_by_id(list(oids))
    detections = await store.light_curves(DETECTIONS, list(oids))
    limits = await store.light_curves(NON_DETECTIONS, list(oids))
    events = await filters.store.classification_events(list(oids)) if need_events else {}
    return {oid: ObjectData(oid, str(doc.get("survey", "ZTF")), doc, detections[oid],
                            limits[oid], events.get(oid, []))
            for oid, doc in objects.items() if detections.get(oid)}


# -- compiled filters --------------------------------------------------------------------
def fields_read(filters: Sequence[ActiveFilter]) -> frozenset[str]:
    """Every context field these filters read (the union of their references), with
    ``<path>.**`` where one of them reads a value whole (``object.band`` iterated, or
    compared as a map): another filter's deeper paths must not narrow it then."""
    out: set[str] = set()
    for flt in filters:
        fields = flt.checked.references.fields
        out |= fields
        out |= {f"{p}.**" for p in fields if not any(q.startswith(f"{p}.") for q in fields)}
    return frozenset(out)



@dataclass
class ActiveFilter:
    """One filter as the engine runs it."""

    doc: Doc
    checked: CheckedFilter
    program: cel.Program

    @property
    def id(self) -> str:
        return str(self.doc["_id"])

    @property
    def stage(self) -> str:
        return self.checked.stage

    @property
    def class_classifier(self) -> str:
        named = sorted(self.checked.references.classifiers)
        return named[0] if named else DEFAULT_CLASS_CLASSIFIER


def top_class(classifications: Mapping[str, Mapping[str, float]], classifier: str) -> str | None:
    rows = classifications.get(classifier)
    return max(rows, key=lambda k: rows[k]) if rows else None


def match_record(flt: ActiveFilter, inputs: FilterInputs, *, source: str,
                 permalink_base: str = "") -> Doc:
    """The stored record of one match: the filter and its version, the object, the alert,
    the survey, what the filter read, a permalink (ids as strings)."""
    detection = inputs.detection
    alert_id = str(detection["candid"])
    read = read_values(inputs, flt.checked.references.fields)
    for name in sorted(flt.checked.references.classifiers):
        rows = inputs.classifications.get(name)
        if rows:
            best = max(rows, key=lambda k: rows[k])
            read[f"class_of({name})"] = best
            read[f"prob({name}, {best})"] = rows[best]
    for name in sorted(flt.checked.references.watchlists):
        read[f"in_watchlist({name})"] = name in inputs.watchlists
    for name in sorted(flt.checked.references.watchmaps):
        level = inputs.watchmaps.get(name)
        if level is not None:
            read[f"watchmap_level({name})"] = level
    oid = str(inputs.statistics["oid"])
    return {
        "_id": f"{flt.id}:{flt.doc['version']}:{alert_id}",
        "filter_id": flt.id, "filter_name": flt.doc["name"], "owner": flt.doc["owner"],
        "version": int(flt.doc["version"]), "stage": flt.stage, "oid": oid,
        "survey": inputs.survey, "alert_id": alert_id, "mjd": float(detection["mjd"]),
        "ra": float(detection["ra"]), "dec": float(detection["dec"]), "read": read,
        # what notify=class_change follows: a classification-stage filter's class
        "top_class": top_class(inputs.classifications, flt.class_classifier)
        if flt.stage == CLASSIFICATION_STAGE else None,
        "source": source, "permalink": f"{permalink_base}/explorer/object/{oid}",
    }


@dataclass
class FilterStats:
    """Counters of one filter since the last flush (added to its document)."""

    evaluations: int = 0
    matches: int = 0
    undefined: int = 0
    errors: int = 0
    overruns: int = 0
    seconds: float = 0.0
    last_error: str | None = None

    def add(self, outcome: Outcome, budget_s: float) -> None:
        self.evaluations += 1
        self.seconds += outcome.seconds
        if outcome.result == MATCH:
            self.matches += 1
        elif outcome.result == UNDEFINED:
            self.undefined += 1
        elif outcome.result == ERROR:
            self.errors += 1
            self.last_error = outcome.error
        if outcome.seconds > budget_s:
            self.overruns += 1

    def increments(self) -> Doc:
        return {f"stats.{k}": v for k, v in (
            ("evaluations", self.evaluations), ("matches", self.matches),
            ("undefined", self.undefined), ("errors", self.errors),
            ("overruns", self.overruns), ("seconds", self.seconds)) if v}


def evaluate_one(flt: ActiveFilter, context: cel.Context, stats: FilterStats,
                 budget_s: float) -> bool:
    """Evaluate one filter and count the outcome (the common case, a boolean, without
    building an :class:`Outcome`: this runs for every filter on every alert)."""
    start = time.perf_counter()
    try:
        value = flt.program.execute(context)
    except Exception as exc:  # undefined or an error
        stats.add(failed(exc, time.perf_counter() - start), budget_s)
        return False
    seconds = time.perf_counter() - start
    if value is not True and value is not False:
        stats.add(outcome_of(value, seconds), budget_s)
        return False
    stats.evaluations += 1
    stats.seconds += seconds
    if seconds > budget_s:
        stats.overruns += 1
    if value:
        stats.matches += 1
    return bool(value)


def _notify_ok(flt: ActiveFilter, record: Doc, last: Doc | None) -> bool:
    mode = flt.doc.get("notify", "every")
    if mode == "first":
        return last is None
    if mode == "class_change":
        return last is None or last.get("top_class") != record.get("top_class")
    return True


class FilterEngine:
    """Evaluate the active filters on each stored batch and store their matches.

    Parameters
    ----------
    filters : FilterStore
        Where filters are read and matches written.
    env : callable
        The :class:`FilterEnvironment` of an owner (re-checks each filter on load: a
        watchlist deleted since it was saved mutes the filters that name it).
    limits : FilterLimits
    tns, watch : optional
        Look-ups of the TNS snapshot and the watchlists and watchmaps.
    refresh_s : float
        How often the set of active filters is re-read [s].
    """

    def __init__(self, filters: FilterStore, env: Callable[[str], FilterEnvironment],
                 limits: FilterLimits = FilterLimits(), *, tns: TnsLookup | None = None,
                 watch: WatchLookup | None = None, refresh_s: float = 2.0,
                 permalink_base: str = "", deliverer: Deliverer | None = None):
        self.filters = filters
        self.deliverer = deliverer
        self._digests_at = 0.0
        self.env = env
        self.limits = limits
        self.tns = tns
        self.watch = watch
        self.refresh_s = refresh_s
        self.permalink_base = permalink_base
        self.active: list[ActiveFilter] = []
        #: the watchlist matches of the last batch
        self.watch_matches: list[Doc] = []
        self._loaded_at = -1e9
        #: seconds spent evaluating since creation (the pipeline's filter stage)
        self.seconds = 0.0
        self._prepared_for: dict[tuple[int, ...], tuple[frozenset[str], Doc]] = {}
        #: compiled filters by (id, version, expression, what the owner may name), so a
        #: refresh compiles only what changed
        self._compiled: dict[tuple[Any, ...], ActiveFilter] = {}

    async def refresh(self, *, force: bool = False) -> list[ActiveFilter]:
        if not force and time.monotonic() - self._loaded_at < self.refresh_s:
            return self.active
        self._loaded_at = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        out: list[ActiveFilter] = []
        compiled_now: dict[tuple[Any, ...], ActiveFilter] = {}
        for doc in await self.filters.active():
            expires = _aware(doc.get("expires"))
            if expires is not None and expires < now:
                await self._set_state(doc, EXPIRED, f"expired on {expires:%Y-%m-%d}: renew "
                                                    f"it to run it again")
                continue
            env = self.env(doc["owner"])
            key = (doc["_id"], doc["version"], doc["expression"], env.catalogues,
                   tuple(sorted(env.watchlists.items())), tuple(sorted(env.watchmaps.items())))
            compiled = self._compiled.get(key)
            if compiled is None:
                try:
                    checked = check(doc["expression"], env)
                except FilterError as exc:
                    await self._set_state(doc, MUTED, f"no longer valid: {exc}")
                    continue
                compiled = ActiveFilter(doc, checked, compile_filter(checked))
            compiled_now[key] = compiled
            out.append(ActiveFilter(doc, compiled.checked, compiled.program))
        self._compiled = compiled_now
        self.active = out
        return out

    async def _set_state(self, doc: Doc, state: str, reason: str) -> None:
        """Mute or expire a filter, with a notice to its owner: kept on the filter (the
        last 20) and e-mailed where the filter has an address."""
        notice = {"time": dt.datetime.now(dt.UTC), "state": state, "reason": reason}
        log.warning("filter %s (%s/%s) %s: %s", doc["_id"], doc["owner"], doc["name"],
                    state, reason)
        notices = [*(doc.get("notices") or [])[-19:], notice]
        doc.update(state=state, state_reason=reason, notices=notices)
        await self.filters.set_fields(doc["_id"], {"state": state, "state_reason": reason,
                                                   "notices": notices})
        if self.deliverer is not None:  # and by e-mail, where the filter has one
            await self.deliverer.notify_owner(doc, notice)

    async def on_batch(self, result: BatchResult) -> list[Doc]:
        """Match the batch's alerts against the watchlists, then evaluate the active
        filters on it; store both kinds of match; return the filters' new matches."""
        if self.watch is not None:
            self.watch_matches = await self.watch.on_batch(result)
        active = await self.refresh()
        if not active or not result.alerts:
            return []
        start = time.perf_counter()
        alert_stage = [f for f in active if f.stage != CLASSIFICATION_STAGE]
        class_stage = [f for f in active if f.stage == CLASSIFICATION_STAGE]
        data = await self._live_data(result, need_events=bool(class_stage))
        candidates: list[tuple[ActiveFilter, Doc]] = []
        stats: dict[str, FilterStats] = defaultdict(FilterStats)
        keys_of: dict[str, list[Any]] = defaultdict(list)
        for a in result.alerts:
            keys_of[a.oid].append(a.key)
        events = {w.oid: w.classification_event for w in result.writes
                  if w.classification_event} if class_stage else {}
        # what each set of filters reads and looks up: once per batch, not per alert
        alert_fields, alert_lookups = self._prepared(alert_stage)
        class_fields, _ = self._prepared(class_stage)
        all_fields, all_lookups = self._prepared(active)
        for oid, obj in data.items():
            detections = sorted((result.detections[k] for k in dict.fromkeys(keys_of[oid])
                                 if k in result.detections),
                                key=lambda d: (d["mjd"], str(d["_id"])))
            event = events.get(oid) if oid in result.probabilities else None
            class_inputs = (classification_inputs(obj, event, **all_lookups)
                            if event is not None else None)
            # the detection the classification saw is evaluated once, with one context
            # for both stages (alert-stage filters read nothing a classification adds)
            shared = (class_inputs.detection["_id"] if class_inputs is not None
                      and alert_stage and any(d["_id"] == class_inputs.detection["_id"]
                                              for d in detections) else None)
            if alert_stage:
                for det in detections:
                    if shared is None or det["_id"] != shared:
                        candidates += self._run(alert_stage, alert_inputs(
                            obj, det, **alert_lookups), stats, alert_fields)
            if class_inputs is not None:
                candidates += self._run(
                    class_stage if shared is None else active, class_inputs, stats,
                    class_fields if shared is None else all_fields)
        new = await self._store(candidates, stats, source="live")
        self.seconds += time.perf_counter() - start
        return new

    async def on_classified(self, events: Sequence[Doc]) -> list[Doc]:
        """Evaluate the classification-stage filters on classification events stored
        outside the pipeline's batch (the Kafka classify agent's light-curve
        classifications and anomaly scores); return the new matches.

        The object's light curve and events are read back from the store, the same
        inputs a backfill reads, so live and backfill agree here too."""
        if self.watch is not None:  # lists and maps made since (no batch refreshes them here)
            await self.watch.refresh()
        active = await self.refresh()
        class_stage = [f for f in active if f.stage == CLASSIFICATION_STAGE]
        if not class_stage or not events:
            return []
        start = time.perf_counter()
        data = await stored_data(self.filters, sorted({str(e["oid"]) for e in events}),
                                need_events=True)
        candidates: list[tuple[ActiveFilter, Doc]] = []
        stats: dict[str, FilterStats] = defaultdict(FilterStats)
        for event in events:
            obj = data.get(str(event["oid"]))
            inputs = classification_inputs(obj, event, **self._lookups(class_stage)
                                           ) if obj is not None else None
            if inputs is not None:
                candidates += self._run(class_stage, inputs, stats)
        new = await self._store(candidates, stats, source="live")
        self.seconds += time.perf_counter() - start
        return new

    def _prepared(self, filters: Sequence[ActiveFilter]) -> tuple[frozenset[str], Doc]:
        """(the fields these filters read, the look-ups they need), once per set of
        filters, not once per alert."""
        key = tuple(id(f) for f in filters)
        found = self._prepared_for.get(key)
        if found is None:
            refs = [f.checked.references for f in filters]
            lookups = {"tns": self.tns if any(r.tns for r in refs) else None,
                       "watch": self.watch,
                       "watchlists": sorted({n for r in refs for n in r.watchlists}),
                       "watchmaps": sorted({n for r in refs for n in r.watchmaps})}
            if len(self._prepared_for) > 64:
                self._prepared_for.clear()
            found = self._prepared_for[key] = (fields_read(filters), lookups)
        return found

    def _lookups(self, filters: Sequence[ActiveFilter]) -> Doc:
        return self._prepared(filters)[1]

    def _run(self, filters: Sequence[ActiveFilter], inputs: FilterInputs,
             stats: dict[str, FilterStats], fields: frozenset[str] | None = None
             ) -> list[tuple[ActiveFilter, Doc]]:
        context = build_context(inputs, fields if fields is not None
                                else self._prepared(filters)[0])
        budget = self.limits.budget_ms / 1000.0
        out = []
        for flt in filters:
            if evaluate_one(flt, context, stats[flt.id], budget):
                out.append((flt, match_record(flt, inputs, source="",
                                              permalink_base=self.permalink_base)))
        return out

    async def _live_data(self, result: BatchResult, *, need_events: bool
                         ) -> dict[str, ObjectData]:
        oids = list(dict.fromkeys(a.oid for a in result.alerts if a.oid in result.objects))
        events = await self.filters.store.classification_events(
            [o for o in oids if o in result.probabilities]) if need_events else {}
        out = {}
        for oid in oids:
            state = result.states.get(oid)
            if state is None:
                continue
            out[oid] = ObjectData(oid, state.survey, result.objects[oid], state.corrected,
                                  state.non_detections, events.get(oid, []),
                                  state.statistics or None)
        return out

    async def _store(self, candidates: list[tuple[ActiveFilter, Doc]],
                     stats: dict[str, FilterStats], *, source: str) -> list[Doc]:
        """Apply notify modes and quotas, store the matches, flush counters, mute."""
        by_filter: dict[str, list[Doc]] = defaultdict(list)
        filters = {f.id: f for f, _ in candidates}
        for flt, record in candidates:
            by_filter[flt.id].append({**record, "source": source})
        kept: list[Doc] = []
        usage = await self._usage()
        for fid, records in by_filter.items():
            flt = filters[fid]
            mode = flt.doc.get("notify", "every")
            last = (await self.filters.last_matches(fid, sorted({r["oid"] for r in records}))
                    if mode != "every" else {})
            owner = flt.doc["owner"]
            for record in records:
                if not _notify_ok(flt, record, last.get(record["oid"])):
                    continue
                size = len(json.dumps(record, default=str))
                used = usage[owner]
                if (used["matches"] + 1 > self.limits.matches_per_day
                        or used["bytes"] + size > self.limits.bytes_per_day):
                    stats[fid].last_error = "quota"
                    await self._mute_for_quota(flt, used)
                    break
                used["matches"] += 1
                used["bytes"] += size
                last[record["oid"]] = record
                kept.append(record)
        new = await self.filters.put_matches(kept)
        if self.deliverer is not None and source == "live":  # first: latency counts
            await self.deliverer.deliver(new, {f.id: f.doc for f in self.active})
        await self._flush(stats, new)
        if (self.deliverer is not None and source == "live"
                and time.monotonic() - self._digests_at > DIGEST_CHECK_S):
            self._digests_at = time.monotonic()
            try:
                await self.deliverer.send_digests()
            except OSError:  # the SMTP server away: the digest goes out next time
                log.warning("e-mail digests not sent", exc_info=True)
        return new

    async def _usage(self) -> dict[str, Doc]:
        """Per owner, today's matches and bytes (from the filters' day counters)."""
        today = dt.datetime.now(dt.UTC).date().isoformat()
        usage: dict[str, Doc] = defaultdict(lambda: {"matches": 0, "bytes": 0})
        for flt in self.active:
            day = flt.doc.get("day") or {}
            if day.get("date") == today:
                usage[flt.doc["owner"]]["matches"] += int(day.get("matches", 0))
                usage[flt.doc["owner"]]["bytes"] += int(day.get("bytes", 0))
        return usage

    async def _mute_for_quota(self, flt: ActiveFilter, used: Doc) -> None:
        if flt.doc.get("state") == MUTED:
            return
        flt.doc["state"] = MUTED
        await self._set_state(flt.doc, MUTED, (
            f"daily quota reached ({used['matches']} matches, {used['bytes']} bytes today; "
            f"limits {self.limits.matches_per_day} and {self.limits.bytes_per_day}): resume "
            f"it tomorrow or ask the operator for more"))

    async def _flush(self, stats: dict[str, FilterStats], new: Sequence[Doc]) -> None:
        today = dt.datetime.now(dt.UTC).date().isoformat()
        per_filter: dict[str, Doc] = defaultdict(lambda: {"matches": 0, "bytes": 0})
        for record in new:
            per_filter[record["filter_id"]]["matches"] += 1
            per_filter[record["filter_id"]]["bytes"] += len(json.dumps(record, default=str))
        updates: dict[str, Doc] = {}
        for flt in self.active:
            fid = flt.id
            inc = stats[fid].increments() if fid in stats else {}
            stored = per_filter.get(fid)
            if stored:
                day = flt.doc.setdefault("day", {})
                if day.get("date") != today:
                    day.clear()
                    day.update(date=today, matches=0, bytes=0)
                    await self.filters.set_fields(fid, {"day": dict(day)})
                day["matches"] += stored["matches"]
                day["bytes"] += stored["bytes"]
                inc["day.matches"] = stored["matches"]
                inc["day.bytes"] = stored["bytes"]
                inc["stats.stored"] = stored["matches"]
            if inc:
                updates[fid] = inc
        await self.filters.add_counters(updates)
        for flt in self.active:
            s = stats.get(flt.id)
            if s is None or flt.doc.get("state") == MUTED:
                continue
            total = flt.doc.setdefault("window", {"errors": 0, "overruns": 0, "evaluations": 0})
            total["errors"] += s.errors
            total["overruns"] += s.overruns
            total["evaluations"] += s.evaluations
            if total["overruns"] >= self.limits.max_overruns:
                flt.doc["state"] = MUTED
                await self._set_state(flt.doc, MUTED, (
                    f"{total['overruns']} evaluations took longer than its budget of "
                    f"{self.limits.budget_ms} ms"))
            elif (total["errors"] >= self.limits.max_errors
                  and total["errors"] * 2 >= total["evaluations"]):
                flt.doc["state"] = MUTED
                await self._set_state(flt.doc, MUTED, (
                    f"{total['errors']} of {total['evaluations']} evaluations failed; the "
                    f"last: {s.last_error}"))
        if any(f.doc.get("state") == MUTED for f in self.active):
            self.active = [f for f in self.active if f.doc.get("state") != MUTED]


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


# -- the service: create, edit, dry-run, backfill ---------------------------------------
@dataclass
class BackfillReport:
    """What a dry run or a backfill saw: objects read, alerts and events evaluated,
    matches (objects and alerts), undefined and failed evaluations, seconds."""

    objects: int = 0
    evaluations: int = 0
    matched_alerts: int = 0
    matched_objects: set[str] = field(default_factory=set)
    undefined: int = 0
    errors: int = 0
    stored: int = 0
    seconds: float = 0.0
    resumed_after: str | None = None
    done: bool = False
    samples: list[Doc] = field(default_factory=list)

    def as_dict(self) -> Doc:
        return {"objects": self.objects, "evaluations": self.evaluations,
                "matched_alerts": self.matched_alerts,
                "matched_objects": len(self.matched_objects), "undefined": self.undefined,
                "errors": self.errors, "stored": self.stored,
                "seconds": round(self.seconds, 3), "done": self.done}


def probability_conditions(checked: CheckedFilter) -> list[tuple[str, str, str, float]]:
    """(classifier, class, op, value) of the top-level ``prob(c, k) > v`` conditions a
    database query can narrow by (over the classification events: an object whose class
    was that likely at some event).  ``>= 0`` is left out: an absent class reads 0."""
    out = []
    for c in checked.conjuncts:
        if not c.target.startswith("prob:") or isinstance(c.value, bool) or not isinstance(
                c.value, (int, float)):
            continue
        _, classifier, class_name = c.target.split(":", 2)
        if any(ch in classifier + class_name for ch in ".$"):
            continue
        if (c.op == ">" and c.value >= 0) or (c.op == ">=" and c.value > 0):
            out.append((classifier, class_name, c.op, float(c.value)))
    return out


def object_filter(checked: CheckedFilter, since: float | None, until: float | None
                  ) -> ObjectFilter:
    """The database query a filter's indexable conjuncts allow: survey, a cone, time range
    and detection counts (a superset of the objects it can match)."""
    flt = ObjectFilter()
    for c in checked.conjuncts:
        if c.target == "in_cone":
            # an alert within the cone belongs to an object whose mean position is within
            # it plus the scatter of one object's detections
            ra, dec, radius = c.value
            flt.cone = Cone(ra, dec, min(radius + ANCHOR_MARGIN_ARCSEC, 36_000.0))
        elif c.target == "survey" and c.op == "==" and isinstance(c.value, str):
            flt.survey = c.value
        elif c.target == "object.ndet" and isinstance(c.value, (int, float)):
            # ndet as of an alert is at most the object's ndet now: a lower bound holds
            if c.op in (">=", ">"):
                bound = math.ceil(c.value) if c.op == ">=" else math.floor(c.value) + 1
                flt.ndet_min = max(flt.ndet_min or 0, bound)
        elif c.target == "object.first_mjd" and isinstance(c.value, (int, float)):
            if c.op in (">", ">="):
                flt.firstmjd_min = float(c.value)
            elif c.op in ("<", "<="):
                flt.firstmjd_max = float(c.value)
        elif c.target == "alert.mjd" and isinstance(c.value, (int, float)):
            if c.op in (">", ">="):
                since = max(since, float(c.value)) if since is not None else float(c.value)
            elif c.op in ("<", "<="):
                until = min(until, float(c.value)) if until is not None else float(c.value)
    # an object with an alert in [since, until] was last seen after since, first before until
    if since is not None:
        flt.lastmjd_min = since
    if until is not None:
        flt.firstmjd_max = min(flt.firstmjd_max, until) if flt.firstmjd_max else until
    return flt


class FilterService:
    """Filters for one deployment: what the CLI and the gateway call.

    Parameters
    ----------
    filters : FilterStore
    env : callable
        An owner's :class:`FilterEnvironment`.
    limits : FilterLimits
    tns, watch : optional
        The same look-ups as the engine's (a backfill reads what live evaluation read).
    """

    def __init__(self, filters: FilterStore, env: Callable[[str], FilterEnvironment],
                 limits: FilterLimits = FilterLimits(), *, tns: TnsLookup | None = None,
                 watch: WatchLookup | None = None, permalink_base: str = "",
                 webhook_allow: Sequence[str] = (), topic_prefix: str = "nightjar-filter-"):
        self.filters = filters
        self.webhook_allow = list(webhook_allow)
        #: each filter's Kafka topic is this prefix and its id (shown to its owner)
        self.topic_prefix = topic_prefix
        self.env = env
        self.limits = limits
        self.tns = tns
        self.watch = watch
        self.permalink_base = permalink_base

    def check(self, owner: str, expression: str) -> CheckedFilter:
        return check(expression, self.env(owner))

    async def _fresh(self) -> None:
        """Re-read the watchlists and watchmaps (another process may have added one)."""
        if self.watch is not None:
            await self.watch.refresh()

    # -- ownership -------------------------------------------------------------------
    @staticmethod
    def _may_read(doc: Doc, actor: str) -> bool:
        return actor in (OPERATOR, doc["owner"]) or bool(doc.get("public"))

    @staticmethod
    def _may_edit(doc: Doc, actor: str) -> bool:
        return actor in (OPERATOR, doc["owner"])

    async def get(self, actor: str, ref: str, *, edit: bool = False) -> Doc:
        """A filter by id, by name among the actor's own, or as ``owner/name``; refused
        when the actor may not read (or, with ``edit``, change) it."""
        doc = await self.filters.get(ref)
        if doc is None:
            doc = await self.filters.by_name(actor, ref)
        if doc is None and "/" in ref:
            owner, name = ref.split("/", 1)
            doc = await self.filters.by_name(owner, name)
        if doc is None and actor == OPERATOR:
            named = [d for d in await self.filters.owned() if d["name"] == ref]
            doc = named[0] if len(named) == 1 else None
        allowed = doc is not None and (self._may_edit(doc, actor) if edit
                                       else self._may_read(doc, actor))
        if doc is None or not allowed:
            # the same answer for "absent" and "not yours": ids do not leak
            raise FilterAccessError(f"no filter {ref!r} that you may "
                                    f"{'change' if edit else 'read'}")
        return doc

    async def visible(self, actor: str) -> list[Doc]:
        if actor == OPERATOR:
            return await self.filters.owned()
        return await self.filters.owned(actor, public=True)

    # -- changes ---------------------------------------------------------------------
    async def create(self, actor: str, name: str, expression: str, *,
                     notify: str = "every", public: bool = False,
                     description: str = "", delivery: Doc | None = None,
                     now: dt.datetime | None = None) -> Doc:
        if not name or len(name) > 100 or not all(c.isalnum() or c in "-_. " for c in name):
            raise ValueError("a filter name has 1 to 100 letters, digits, spaces, '-', '_' "
                             "or '.'")
        if notify not in NOTIFY_MODES:
            raise ValueError(f"notify is one of {', '.join(NOTIFY_MODES)}, not {notify!r}")
        await self._fresh()
        owned = [d for d in await self.filters.owned(actor) if d["owner"] == actor]
        if actor != OPERATOR and len(owned) >= self.limits.max_filters_per_user:
            raise ValueError(f"you have {len(owned)} filters, the most allowed; delete one "
                             f"first")
        checked = self.check(actor, expression)
        stored_delivery = validate_delivery(delivery, self.webhook_allow)
        now = now or dt.datetime.now(dt.UTC)
        doc: Doc = {
            "_id": "f" + secrets.token_hex(8), "owner": actor, "name": name,
            "description": description, "expression": expression, "version": 1,
            "versions": [{"version": 1, "expression": expression, "created": now}],
            "stage": checked.stage, "notify": notify, "state": ACTIVE, "state_reason": None,
            "public": public, "delivery": stored_delivery, "created": now, "updated": now,
            "expires": now + dt.timedelta(days=self.limits.lifetime_days),
            "stats": {}, "notices": [],
        }
        return await self.filters.create(doc)

    async def update(self, actor: str, ref: str, *, expression: str | None = None,
                     notify: str | None = None, public: bool | None = None,
                     description: str | None = None, delivery: Doc | None = None,
                     now: dt.datetime | None = None) -> Doc:
        """Edit a filter: a new expression is a new version; any edit renews it."""
        doc = await self.get(actor, ref, edit=True)
        await self._fresh()
        now = now or dt.datetime.now(dt.UTC)
        if expression is not None and expression != doc["expression"]:
            checked = self.check(doc["owner"], expression)
            doc["version"] = int(doc["version"]) + 1
            doc["versions"] = [*doc.get("versions", []), {
                "version": doc["version"], "expression": expression, "created": now}]
            doc["expression"], doc["stage"] = expression, checked.stage
            doc["window"] = {"errors": 0, "overruns": 0, "evaluations": 0}
        if notify is not None:
            if notify not in NOTIFY_MODES:
                raise ValueError(f"notify is one of {', '.join(NOTIFY_MODES)}")
            doc["notify"] = notify
        if public is not None:
            doc["public"] = public
        if description is not None:
            doc["description"] = description
        if delivery is not None:
            previous = (doc.get("delivery") or {}).get("email") or {}
            doc["delivery"] = validate_delivery(delivery, self.webhook_allow)
            if "email" in doc["delivery"]:  # the digest goes on from where it was
                doc["delivery"]["email"].update(
                    {k: previous[k] for k in ("last_seq", "last_sent") if k in previous})
        doc["updated"] = now
        doc["expires"] = now + dt.timedelta(days=self.limits.lifetime_days)
        await self.filters.replace(doc)
        return doc

    async def set_state(self, actor: str, ref: str, state: str) -> Doc:
        """Pause or resume (resuming also clears a mute and renews the filter)."""
        if state not in (ACTIVE, PAUSED):
            raise ValueError("a filter is paused or resumed")
        doc = await self.get(actor, ref, edit=True)
        fields: Doc = {"state": state, "state_reason": None}
        if state == ACTIVE:
            self.check(doc["owner"], doc["expression"])  # still valid (lists may be gone)
            fields["window"] = {"errors": 0, "overruns": 0, "evaluations": 0}
            fields["expires"] = dt.datetime.now(dt.UTC) + dt.timedelta(
                days=self.limits.lifetime_days)
        out = await self.filters.set_fields(doc["_id"], fields)
        assert out is not None
        return out

    async def delete(self, actor: str, ref: str) -> bool:
        doc = await self.get(actor, ref, edit=True)
        return await self.filters.delete(doc["_id"])

    async def copy(self, actor: str, ref: str, name: str) -> Doc:
        """Copy a public (or one's own) filter into one's own filters."""
        source = await self.get(actor, ref)
        return await self.create(actor, name, source["expression"],
                                 notify=source.get("notify", "every"),
                                 description=f"copied from {source['owner']}/"
                                             f"{source['name']} v{source['version']}")

    async def matches(self, actor: str, ref: str, *, after: int = 0, first: int = 100
                      ) -> tuple[Doc, list[Doc]]:
        doc = await self.get(actor, ref)
        return doc, await self.filters.matches(doc["_id"], after=after, first=first)

    # -- over the archive ------------------------------------------------------------
    async def dry_run(self, actor: str, expression: str, *, since: float | None = None,
                      until: float | None = None, max_objects: int = 2000) -> BackfillReport:
        """How many alerts and objects an expression would match over stored data (the
        first ``max_objects`` candidate objects; ``done`` is false when there were more)."""
        await self._fresh()
        checked = self.check(actor, expression)
        flt = ActiveFilter({"_id": "dry-run", "name": "dry-run", "owner": actor,
                            "version": 0, "notify": "every"}, checked,
                           compile_filter(checked))
        return await self._over_archive(flt, since, until, store=False,
                                        max_objects=max_objects)

    async def backfill(self, actor: str, ref: str, *, since: float | None = None,
                       until: float | None = None, resume: bool = True,
                       progress: Callable[[BackfillReport], None] | None = None
                       ) -> BackfillReport:
        """Run a saved filter over stored alerts from ``since`` to ``until`` [MJD]; store
        the matches (never twice: a match already stored live is kept as it was).

        Resumable: progress (the last object done) is kept on the filter, and a backfill
        with the same range resumes after it.
        """
        doc = await self.get(actor, ref, edit=True)
        checked = self.check(doc["owner"], doc["expression"])
        flt = ActiveFilter(doc, checked, compile_filter(checked))
        state = doc.get("backfill") or {}
        after = (state.get("last_oid") if resume and not state.get("done")
                 and state.get("since") == since and state.get("until") == until
                 and state.get("version") == doc["version"] else None)
        report = await self._over_archive(flt, since, until, store=True, after_oid=after,
                                          progress=progress)
        return report

    async def _over_archive(self, flt: ActiveFilter, since: float | None,
                            until: float | None, *, store: bool, max_objects: int | None = None,
                            after_oid: str | None = None,
                            progress: Callable[[BackfillReport], None] | None = None
                            ) -> BackfillReport:
        start = time.perf_counter()
        report = BackfillReport(resumed_after=after_oid)
        query = object_filter(flt.checked, since, until)
        oids = await self._candidate_oids(query)
        for clf, cls, op, value in probability_conditions(flt.checked):
            # as of any event, not the current probability: a superset of what can match
            allowed = await self.filters.oids_with_probability(clf, cls, op, value)
            oids = [o for o in oids if o in allowed]
        oids = [o for o in oids if after_oid is None or o > after_oid]
        limit = len(oids) if max_objects is None else max_objects
        engine = FilterEngine(self.filters, self.env, self.limits, tns=self.tns,
                              watch=self.watch, permalink_base=self.permalink_base)
        engine.active = [flt]
        chunk = 50
        for i in range(0, min(len(oids), limit), chunk):
            part = oids[i:min(i + chunk, limit)]
            data = await stored_data(self.filters, part,
                                     need_events=flt.stage == CLASSIFICATION_STAGE)
            if self.watch is not None and flt.checked.references.watchlists:
                # every detection of the chunk against the lists at once, not one by one
                self.watch.prime([(float(d["ra"]), float(d["dec"])) for obj in data.values()
                                  for d in obj.detections], flt.checked.references.watchlists)
            stats: dict[str, FilterStats] = defaultdict(FilterStats)
            candidates: list[tuple[ActiveFilter, Doc]] = []
            for oid in part:
                obj = data.get(oid)
                if obj is None:
                    continue
                report.objects += 1
                for inputs in self._archive_inputs(flt, obj, since, until, engine):
                    candidates += engine._run([flt], inputs, stats)
            s = stats[flt.id]
            report.evaluations += s.evaluations
            report.undefined += s.undefined
            report.errors += s.errors
            report.matched_alerts += len(candidates)
            report.matched_objects.update(r["oid"] for _, r in candidates)
            if len(report.samples) < 20:
                report.samples += [r for _, r in candidates][:20 - len(report.samples)]
            if store:
                new = await engine._store(candidates, {}, source="backfill")
                report.stored += len(new)
                await self.filters.set_fields(flt.id, {"backfill": {
                    "since": since, "until": until, "version": flt.doc["version"],
                    "last_oid": part[-1], "done": False, "objects": report.objects,
                    "stored": report.stored}})
            report.seconds = time.perf_counter() - start
            if progress:
                progress(report)
        report.done = limit >= len(oids)
        if store:
            await self.filters.set_fields(flt.id, {"backfill.done": report.done})
        report.seconds = time.perf_counter() - start
        return report

    def _archive_inputs(self, flt: ActiveFilter, obj: ObjectData, since: float | None,
                        until: float | None, engine: FilterEngine) -> Iterable[FilterInputs]:
        lookups = engine._lookups([flt])

        def inside(mjd: float) -> bool:
            return (since is None or mjd >= since) and (until is None or mjd <= until)

        if flt.stage == CLASSIFICATION_STAGE:
            for event in obj.events:
                if inside(float(event["mjd"])):
                    inputs = classification_inputs(obj, event, **lookups)
                    if inputs is not None:
                        yield inputs
            return
        alerts = [d for d in obj.detections if d.get("parent_candid") is None
                  and inside(float(d["mjd"]))]
        for det in sorted(alerts, key=lambda d: (d["mjd"], str(d["_id"]))):
            yield alert_inputs(obj, det, **lookups)

    async def _candidate_oids(self, query: ObjectFilter) -> list[str]:
        store = self.filters.store
        out: list[str] = []
        after = None
        while True:
            page = await store.find_objects(query, limit=500, after=after)
            out += [d["_id"] for d in page.docs]
            if not page.has_next:
                return out
            after = page.keys[-1]

# -- a deployment's filters -----------------------------------------------------------------
def limits_from(settings: Settings) -> FilterLimits:
    return FilterLimits(max_filters_per_user=settings.filter_max_per_user,
                        matches_per_day=settings.filter_matches_per_day,
                        bytes_per_day=settings.filter_bytes_per_day,
                        lifetime_days=settings.filter_lifetime_days,
                        budget_ms=settings.filter_budget_ms)


def tns_lookup(settings: Settings, radius_arcsec: float = 2.0) -> TnsLookup | None:
    """The nearest TNS object within ``radius_arcsec`` from the local snapshot (None when
    there is no snapshot)."""
    from nightjar.context.tns import TnsIndex

    path = settings.tns_path
    try:
        index = TnsIndex.load(path)
    except (FileNotFoundError, OSError, ValueError):
        return None

    def lookup(ra: float, dec: float) -> Doc | None:
        found = index.search(ra, dec, radius_arcsec)
        if not found:
            return None
        best = found[0]
        return {"name": best.name, "type": best.type, "distance_arcsec": best.distance_arcsec}
    return lookup


@dataclass
class Deployment:
    """The filter service and engine of a deployment, sharing their look-ups."""

    service: FilterService
    engine: FilterEngine


def configured_filters(settings: Settings, store: NightjarStore,
                       watch: WatchLookup | None = None, *,
                       deliverer: Deliverer | None = None) -> Deployment:
    """Filters as a deployment runs them: limits from settings, the imported catalogues
    and every classifier's classes in the checker's environment."""
    from nightjar.context.catalogs import CatalogStore

    catalogues = frozenset(CatalogStore(settings.catalog_path).infos)
    classes = classifier_classes()

    def env(owner: str) -> FilterEnvironment:
        lists, maps = watch.names_for(owner) if watch is not None else ({}, {})
        return FilterEnvironment(classes, catalogues, lists, maps)

    filters = FilterStore(store)
    limits = limits_from(settings)
    tns = tns_lookup(settings)
    base = settings.public_url.rstrip("/")
    return Deployment(
        FilterService(filters, env, limits, tns=tns, watch=watch, permalink_base=base,
                      webhook_allow=settings.webhook_allow,
                      topic_prefix=settings.filter_topic_prefix),
        FilterEngine(filters, env, limits, tns=tns, watch=watch, permalink_base=base,
                     deliverer=deliverer))
