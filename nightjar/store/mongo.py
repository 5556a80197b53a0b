"""The MongoDB store: the one writer path and the read queries, on PyMongo's async API.

Queries stay within what both a real MongoDB and the embedded nx-27017 server answer:
equality, ``$in``, range operators, ``$or`` of ranges, sort, limit and projections.
Cone searches never use geo operators: they read HEALPix index ranges
(:func:`nightjar.sky.cone_ranges`) and filter by exact angular distance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import Binary
from pymongo import ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from nightjar.core.lightcurve import ARTEFACT_VERDICT, ObjectHistory, ObjectWrite
from nightjar.core.live import Event, events_from_write
from nightjar.core.packet_history import PacketWindow, older_than_window
from nightjar.core.solar_system import SolarSystemWrite
from nightjar.sky import ANCHOR_MARGIN_ARCSEC, Cone, cone_ranges
from nightjar.store.schema import (
    ANOMALY,
    ANOMALY_LABELS,
    ANOMALY_USERS,
    ATTACHED_COLLECTIONS,
    CLASSIFICATION_EVENTS,
    COLLECTIONS,
    COUNTERPARTS,
    COUNTERS,
    DEAD_LETTERS,
    DETECTIONS,
    FEATURES,
    FEED_COLLECTIONS,
    FORCED_PHOTOMETRY,
    LABELS,
    LIGHT_CURVE_COLLECTIONS,
    LIGHT_CURVE_INDEX,
    LIVE_EVENTS,
    NON_DETECTIONS,
    OBJECTS,
    PROBABILITIES,
    SOLAR_SYSTEM_DETECTIONS,
    SOLAR_SYSTEM_OBJECTS,
    TNS_REPORTS,
)
from nightjar.surveys.interface import (
    CORE_LIMIT_FIELDS,
    MAX_DEAD_LETTER_BYTES,
    ZTF,
    DeadLetter,
    detection_key,
)

Doc = dict[str, Any]


@dataclass
class ObjectFilter:
    """Filters of the object listing; every bound is inclusive and optional (None = any).

    The classification filters select objects with a probability row of
    ``class_name`` (of ``classifier``/``classifier_version`` when given) at ``ranking``
    and with at least ``probability_min``.
    """

    ndet_min: int | None = None
    ndet_max: int | None = None
    firstmjd_min: float | None = None
    firstmjd_max: float | None = None
    lastmjd_min: float | None = None
    lastmjd_max: float | None = None
    cone: Cone | None = None
    oids: list[str] | None = None
    survey: str | None = None  #: ZTF or LSST (documents stored before surveys: migrate)
    classifier: str | None = None
    classifier_version: str | None = None
    class_name: str | None = None
    probability_min: float | None = None
    ranking: int | None = None
    #: the latest anomaly score (the shared model's percentile) within these bounds
    anomaly_min: float | None = None
    anomaly_max: float | None = None

    @property
    def by_class(self) -> bool:
        return (self.class_name is not None or self.classifier is not None
                or self.classifier_version is not None or self.probability_min is not None
                or self.ranking is not None)


#: the object document's latest anomaly score (a dotted path)
ANOMALY_SCORE = "anomaly.score"
#: requests per bulk write of the writer (each a round trip the server answers in seconds)
WRITE_CHUNK = 5000
#: object statistics the listing can be ordered by (store field names)
ORDER_FIELDS = ("oid", "ndet", "firstmjd", "lastmjd", "deltajd", "meanra", "meandec",
                "sigmara", "sigmadec", "g_r_max", "g_r_max_corr", "g_r_mean", "g_r_mean_corr",
                ANOMALY_SCORE)
#: of those, the ones an object may lack (ordered after every object that has them)
NULLABLE_ORDER_FIELDS = frozenset({"g_r_max", "g_r_max_corr", "g_r_mean", "g_r_mean_corr",
                                   ANOMALY_SCORE})
#: ordering by the probability of the filtered class (needs classifier and class_name)
PROBABILITY = "probability"


@dataclass(frozen=True)
class ObjectOrder:
    """Order of the object listing: a field of :data:`ORDER_FIELDS` or ``probability``;
    ties are broken by oid, in the same direction."""

    field: str = "oid"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.field not in (*ORDER_FIELDS, PROBABILITY):
            raise ValueError(f"cannot order objects by {self.field!r}")


@dataclass(frozen=True)
class PageKey:
    """Where a page ends: the order field's value (None = among objects lacking it) and
    the oid; the next page starts strictly after it."""

    value: Any
    oid: str


@dataclass
class ObjectPage:
    docs: list[Doc]
    keys: list[PageKey]
    has_next: bool
    #: per object, the probability row that matched the class filter (when one is set)
    matched: dict[str, Doc] = field(default_factory=dict)

    def add(self, doc: Doc, key: PageKey, row: Doc | None, limit: int) -> bool:
        """Add one object; True (and ``has_next``) when the page was already full."""
        if len(self.docs) == limit:
            self.has_next = True
            return True
        self.docs.append(doc)
        self.keys.append(key)
        if row is not None:
            self.matched[doc["_id"]] = row
        return False


def _chunk(limit: int) -> int:
    """Candidates read at once while filling a page of ``limit`` objects."""
    return max(4 * limit, 200)


@dataclass
class WriteSummary:
    objects: int = 0
    detections: int = 0
    new_detections: int = 0
    detection_updates: int = 0
    non_detections: int = 0
    forced_photometry: int = 0
    moved_objects: int = 0
    probabilities: int = 0
    features: int = 0
    anomaly: int = 0
    dead_letters: int = 0
    solar_system_detections: int = 0
    counterparts: int = 0


def _path(doc: Doc, dotted: str) -> Any:
    """The value at a dotted path of a document (None where any step is missing)."""
    value: Any = doc
    for step in dotted.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    return value


_IDS_ONLY = {"_id": 1, "oid": 1}


def _key(oid: str, hpx: int, _id: Any) -> Doc:
    # the full shard key in every filter: writes are targeted on a sharded cluster
    return {"_id": _id, "hpx": hpx, "oid": oid}


class NightjarStore:
    """Objects, light curves and dead letters in one MongoDB database.

    Parameters
    ----------
    database : AsyncDatabase
        An open database handle (the client is owned and closed by the caller).
    """

    #: how long the live feed keeps events [s] (readers are seconds behind at most)
    LIVE_RETENTION_S = 120.0
    _PRUNE_EVERY_S = 30.0
    #: events per live-feed document (well under MongoDB's 16 MiB per document)
    LIVE_CHUNK = 500

    def __init__(self, database: AsyncDatabase[Doc], *, live_feed: bool = True):
        self.db = database
        #: write the live events of each batch (read by the gateway's subscriptions)
        self.live_feed = live_feed
        self._pruned_at = 0.0
        self._equality_reads: bool | None = None

    #: on nx-27017, at most this many keys are read by equality queries, more by one scan
    PER_KEY_MAX = 64

    async def _per_key_reads(self) -> bool:
        """Whether to read a few objects by one equality query each instead of ``$in``.

        MongoDB answers ``{oid: {$in: [...]}}`` from the index; the embedded nx-27017
        server scans the collection for ``$in`` (measured: 115 ms for one oid among 15,000
        detections, 2 ms by equality), so there concurrent equality reads are faster for
        a few keys (a GraphQL page, a small ingest batch), one scan for many (an ingest
        batch of 2,000 alerts: 2.8 s instead of 4.4 s on a small store).
        """
        if self._equality_reads is None:
            info = await self.db.command("buildInfo")
            self._equality_reads = info.get("process") == "nx_27017"
        return self._equality_reads

    async def _find_by_oids(self, collection: str, oids: Iterable[str], key: str = "oid",
                            sort: list[tuple[str, int]] | None = None,
                            extra: Doc | None = None,
                            projection: Doc | None = None) -> list[Doc]:
        """Documents whose ``key`` is one of ``oids`` (one query, or one per oid)."""
        wanted = sorted(set(oids))
        if not wanted:
            return []
        def read(match: Doc, order: list[tuple[str, int]]) -> Any:
            cursor = self.db[collection].find(_conjunction([match, extra or {}]), projection)
            return (cursor.sort(order) if order else cursor).to_list(None)

        if len(wanted) <= self.PER_KEY_MAX and await self._per_key_reads():
            found = await asyncio.gather(*(read({key: oid}, sort or []) for oid in wanted))
            return [doc for docs in found for doc in docs]
        return await read({key: {"$in": wanted}}, [(key, 1), *sort] if sort else [])

    # ------------------------------------------------------------------ set-up
    async def init(self) -> list[str]:
        """Create every collection's indexes (idempotent); return their names."""
        created = []
        for spec in COLLECTIONS:
            for index in spec.indexes:
                created.append(await self.db[spec.name].create_index(
                    list(index.keys), name=index.name, unique=index.unique))
        return created

    async def index_keys(self) -> dict[str, list[tuple[tuple[str, int | str], ...]]]:
        """Key patterns of each collection's indexes (nx-27017 renames indexes, so keys)."""
        out = {}
        for spec in COLLECTIONS:
            info = await self.db[spec.name].index_information()
            out[spec.name] = sorted(tuple((k, d) for k, d in i["key"]) for i in info.values())
        return out

    # ------------------------------------------------------------------ history
    async def load_histories(self, oids: Iterable[str], detection_fields: Sequence[str] = (),
                             windows: Mapping[str, PacketWindow | None] | None = None,
                             ) -> dict[str, ObjectHistory]:
        """Everything the ingestion core needs to know about these objects.

        ``detection_fields`` is the projection of detections (every survey's
        :data:`nightjar.surveys.registry.HISTORY_FIELDS`); empty = whole documents.

        ``windows`` names the objects that keep a light-curve index (their packets repeat
        their history, :mod:`nightjar.core.packet_history`): their index is read, and of an
        object with a window and an index only the detections and upper limits older than
        the window (and none when the index lists none), no forced photometry; the caller
        completes such a history from the packets.  A window of None, or no index yet,
        reads the object's rows whole.
        """
        oid_list = sorted(set(oids))
        hist = {oid: ObjectHistory(oid) for oid in oid_list}
        if not oid_list:
            return hist
        windows = windows or {}
        indexed = [oid for oid in oid_list if oid in windows]
        for oid in indexed:
            hist[oid].indexed = True
        # the reads are independent: issue them together (one round trip of latency, and
        # the server works on one while the client decodes another); only the indexed
        # objects' light curves wait for their index
        plain = asyncio.ensure_future(self._read_light_curves(
            hist, [oid for oid in oid_list if oid not in windows], [], detection_fields))
        try:
            await self._read_per_object(hist, indexed)
            whole = [oid for oid in indexed
                     if hist[oid].index is None or windows[oid] is None]
            older = [(coll, oid, window.of(coll)) for oid in indexed
                     if (window := windows[oid]) is not None and hist[oid].index is not None
                     for coll in older_than_window(hist[oid].index or {}, window)]
            if whole or older:
                await self._read_light_curves(hist, whole, older, detection_fields)
            await plain
        except BaseException:
            plain.cancel()
            raise
        return hist

    async def _read_per_object(self, hist: dict[str, ObjectHistory],
                               indexed: Sequence[str]) -> None:
        """Read the object documents, the ``indexed`` objects' light-curve indexes and the
        ids of the attached documents."""
        oid_list = list(hist)
        # probability rows whole (they are small): later steps read stored outputs, such
        # as the stamp classifier's P(bogus) that gates the anomaly score
        row_fields = {"_id": 1, "oid": 1, "classifier_name": 1, "class_name": 1,
                      "probability": 1}
        objects, indexes, *attached = await asyncio.gather(
            self._find_by_oids(OBJECTS, oid_list, key="_id"),
            self._find_by_oids(LIGHT_CURVE_INDEX, indexed, key="_id"),
            *(self._find_by_oids(coll, oid_list,
                                 projection=row_fields if coll == PROBABILITIES else _IDS_ONLY)
              for coll in ATTACHED_COLLECTIONS))
        for doc in objects:
            hist[doc["_id"]].object_doc = doc
        for doc in indexes:
            hist[doc["_id"]].index = doc
        for coll, docs in zip(ATTACHED_COLLECTIONS, attached, strict=True):
            for doc in docs:
                hist[doc["oid"]].attached_ids.setdefault(coll, set()).add(doc["_id"])
                if coll == PROBABILITIES and "class_name" in doc:
                    hist[doc["oid"]].stored_probabilities[
                        (doc["classifier_name"], doc["class_name"])] = doc["probability"]

    async def _read_light_curves(self, hist: dict[str, ObjectHistory], whole: list[str],
                                 older: list[tuple[str, str, float]],
                                 detection_fields: Sequence[str]) -> None:
        """Read the stored light curves of ``whole`` objects, and for each (collection,
        oid, mjd) of ``older`` that object's rows of that collection before mjd."""
        projections = {DETECTIONS: dict.fromkeys(detection_fields, 1) or None,
                       NON_DETECTIONS: dict.fromkeys(CORE_LIMIT_FIELDS, 1),
                       FORCED_PHOTOMETRY: _IDS_ONLY}
        reads = [self._find_by_oids(coll, whole, projection=projections[coll])
                 for coll in LIGHT_CURVE_COLLECTIONS]
        reads += [self.db[coll].find({"oid": oid, "mjd": {"$lt": mjd}},
                                     projections[coll]).to_list(None)
                  for coll, oid, mjd in older]
        found = await asyncio.gather(*reads)
        for coll, docs in zip([*LIGHT_CURVE_COLLECTIONS, *(c for c, _, _ in older)], found,
                              strict=True):
            for doc in docs:
                history = hist[doc["oid"]]
                if coll == DETECTIONS:
                    history.detections[doc["_id"]] = doc
                elif coll == NON_DETECTIONS:
                    history.non_detections[doc["_id"]] = doc
                else:
                    history.forced_ids.add(doc["_id"])

    # ------------------------------------------------------------------ the writer
    async def write(self, writes: Sequence[ObjectWrite],
                    dead_letters: Sequence[DeadLetter] = (),
                    now: dt.datetime | None = None, *,
                    solar_system: SolarSystemWrite | None = None,
                    links: Sequence[Doc] = ()) -> WriteSummary:
        """Apply planned object writes, solar-system detections, cross-survey links and
        dead letters: the only path that writes.

        Order matters for crash safety: re-anchored documents are moved first, then
        light-curve documents are written, then the light-curve index (it must never name
        a row not yet stored), and the object document (the statistics) last, so an
        interrupted batch is completed by re-ingesting it; links follow the objects they
        join.
        """
        summary = WriteSummary()
        ops: dict[str, list[Any]] = {name: [] for name in (
            OBJECTS, *LIGHT_CURVE_COLLECTIONS, LIGHT_CURVE_INDEX, *ATTACHED_COLLECTIONS)}
        moves: dict[str, list[Any]] = {name: [] for name in ops}
        events_ops: list[Any] = []
        for w in writes:
            if w.moved_from_hpx is not None:
                summary.moved_objects += 1
                for coll, ids in {**w.moved_ids, OBJECTS: [w.oid]}.items():
                    moves[coll] += [UpdateOne(_key(w.oid, w.moved_from_hpx, _id),
                                              {"$set": {"hpx": w.hpx}}) for _id in ids]
            ops[DETECTIONS] += [ReplaceOne(_key(w.oid, w.hpx, d["_id"]), d, upsert=True)
                                for d in w.detections]
            ops[DETECTIONS] += [UpdateOne(_key(w.oid, w.hpx, candid), {"$set": changes})
                                for candid, changes in w.detection_updates]
            ops[NON_DETECTIONS] += [ReplaceOne(_key(w.oid, w.hpx, d["_id"]), d, upsert=True)
                                    for d in w.non_detections]
            ops[FORCED_PHOTOMETRY] += [ReplaceOne(_key(w.oid, w.hpx, d["_id"]), d, upsert=True)
                                       for d in w.forced_photometry]
            ops[PROBABILITIES] += [ReplaceOne(_key(w.oid, w.hpx, p["_id"]), p, upsert=True)
                                   for p in w.probabilities]
            if w.features is not None:
                ops[FEATURES].append(ReplaceOne(_key(w.oid, w.hpx, w.oid), w.features,
                                                upsert=True))
            if w.anomaly is not None:
                ops[ANOMALY].append(ReplaceOne(_key(w.oid, w.hpx, w.anomaly["_id"]), w.anomaly,
                                               upsert=True))
            if w.light_curve_index is not None:
                ops[LIGHT_CURVE_INDEX].append(ReplaceOne(_key(w.oid, w.hpx, w.oid),
                                                         w.light_curve_index, upsert=True))
            if w.classification_event is not None:
                events_ops.append(ReplaceOne({"_id": w.classification_event["_id"]},
                                             w.classification_event, upsert=True))
            if w.object_doc is not None:
                ops[OBJECTS].append(ReplaceOne(_key(w.oid, w.hpx, w.oid), w.object_doc,
                                               upsert=True))
            if w.object_set:
                if w.object_doc is not None:  # one bulk is unordered: one write per doc
                    raise ValueError(f"{w.oid}: a write replaces or updates the object, "
                                     "not both")
                ops[OBJECTS].append(UpdateOne(_key(w.oid, w.hpx, w.oid),
                                              {"$set": w.object_set}))
            summary.detections += len(w.detections)
            summary.new_detections += w.new_detections
            summary.detection_updates += len(w.detection_updates)
            summary.non_detections += len(w.non_detections)
            summary.forced_photometry += len(w.forced_photometry)
            summary.objects += w.object_doc is not None
            summary.probabilities += len(w.probabilities)
            summary.features += w.features is not None
            summary.anomaly += w.anomaly is not None
        if solar_system is not None and not solar_system.empty:
            ops[SOLAR_SYSTEM_DETECTIONS] = [ReplaceOne({"_id": d["_id"]}, d, upsert=True)
                                            for d in solar_system.detections]
            ops[SOLAR_SYSTEM_OBJECTS] = [ReplaceOne({"_id": d["_id"]}, d, upsert=True)
                                         for d in solar_system.objects]
            summary.solar_system_detections = len(solar_system.detections)
        if events_ops:
            ops[CLASSIFICATION_EVENTS] = events_ops
        linked = [ReplaceOne(_key(d["oid"], d["hpx"], d["_id"]), d, upsert=True) for d in links]
        summary.counterparts = len(links)
        for batch in (moves, ops, {COUNTERPARTS: linked}):
            for coll in (*LIGHT_CURVE_COLLECTIONS, *ATTACHED_COLLECTIONS,
                         CLASSIFICATION_EVENTS, LIGHT_CURVE_INDEX, OBJECTS,
                         SOLAR_SYSTEM_DETECTIONS,
                         SOLAR_SYSTEM_OBJECTS):
                requests = batch.get(coll) or []
                # in chunks, so a slow server (nx-27017 writes ~2,000 documents/s; a visit of
                # new LSST objects brings ~10^5) answers within seconds, between heartbeats
                for start in range(0, len(requests), WRITE_CHUNK):
                    await self.db[coll].bulk_write(requests[start:start + WRITE_CHUNK],
                                                   ordered=False)
        if dead_letters:
            await self.db[DEAD_LETTERS].bulk_write(
                [self._dead_letter_op(d, now or dt.datetime.now(dt.UTC)) for d in dead_letters],
                ordered=False)
            summary.dead_letters = len(dead_letters)
        if self.live_feed:  # last: an event is announced only once its data is stored
            stored_ms = time.time_ns() // 1_000_000
            events = [e for w in writes for e in events_from_write(
                w.oid, w.current, w.detections, w.probabilities, stored_ms, w.anomaly)]
            if events:
                await self._publish_live(events)
        return summary

    async def publish_events(self, events: list[Event]) -> None:
        """Announce events on the live feed (data they name must be stored already)."""
        if events:
            await self._publish_live(events)

    async def _publish_live(self, events: list[Event]) -> None:
        """Append one batch's events to the live feed under the next sequence numbers
        (one per chunk of :attr:`LIVE_CHUNK` events)."""
        chunks = [events[i:i + self.LIVE_CHUNK] for i in range(0, len(events),
                                                                  self.LIVE_CHUNK)]
        counter = await self.db[COUNTERS].find_one_and_update(
            {"_id": LIVE_EVENTS}, {"$inc": {"seq": len(chunks)}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        assert counter is not None  # upsert with ReturnDocument.AFTER always returns it
        first = int(counter["seq"]) - len(chunks) + 1
        now = dt.datetime.now(dt.UTC)
        await self.db[LIVE_EVENTS].insert_many(
            [{"_id": first + i, "time": now, "events": chunk}
             for i, chunk in enumerate(chunks)], ordered=True)
        if time.monotonic() - self._pruned_at > self._PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            cutoff = now - dt.timedelta(seconds=self.LIVE_RETENTION_S)
            await self.db[LIVE_EVENTS].delete_many({"time": {"$lt": cutoff}})

    async def live_head(self) -> int:
        """The sequence number of the newest batch in the live feed (0 = none yet)."""
        doc = await self.db[COUNTERS].find_one({"_id": LIVE_EVENTS})
        return int(doc["seq"]) if doc else 0

    async def live_window(self, since: dt.datetime) -> list[Doc]:
        """The live-feed documents stored since ``since`` (at most the feed's retention,
        :attr:`LIVE_RETENTION_S`), oldest first: what the status page measures rates on."""
        cursor = self.db[LIVE_EVENTS].find({"time": {"$gte": since}})
        return sorted([doc async for doc in cursor], key=lambda d: d["_id"])

    async def classification_events(self, oids: Sequence[str]) -> dict[str, list[Doc]]:
        """Each object's classification events (every classifier's probabilities at each
        reclassification), oldest first."""
        out: dict[str, list[Doc]] = {oid: [] for oid in oids}
        for doc in await self._find_by_oids(CLASSIFICATION_EVENTS, oids,
                                            sort=[("mjd", 1), ("_id", 1)]):
            out[doc["oid"]].append(doc)
        for docs in out.values():
            docs.sort(key=lambda d: (d["mjd"], d["_id"]))
        return out

    async def live_batch(self, seq: int) -> Doc | None:
        """The live-feed document of one sequence number (an equality read: cheap on
        every server), or None when it is not (or no longer, or not yet) there."""
        return await self.db[LIVE_EVENTS].find_one({"_id": seq})

    async def add_label(self, oid: str, candid: int | None, label: str, comment: str | None,
                        user: str, now: dt.datetime | None = None) -> Doc:
        """Store one user label (never touching the classifiers' rows); return it."""
        doc: Doc = {"oid": oid, "candid": candid, "label": label, "comment": comment,
                    "user": user, "created": now or dt.datetime.now(dt.UTC)}
        result = await self.db[LABELS].insert_one(doc)
        return {**doc, "_id": result.inserted_id}

    async def record_tns_report(self, doc: Doc) -> None:
        """Store a report sent to TNS (``_id`` = TNS's report id), or its later status."""
        await self.db[TNS_REPORTS].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def tns_report(self, report_id: str) -> Doc | None:
        """One report sent to TNS, by TNS's report id."""
        found: Doc | None = await self.db[TNS_REPORTS].find_one({"_id": report_id})
        return found

    async def tns_reports_of(self, oids: Sequence[str]) -> dict[str, list[Doc]]:
        """Reports sent to TNS about several objects (one query), oldest first."""
        return await self._grouped(TNS_REPORTS, oids, [("sent", 1), ("_id", 1)])

    async def put_anomaly_label(self, doc: Doc) -> Doc:
        """Store a user's anomaly label (replacing their earlier label of the object)."""
        await self.db[ANOMALY_LABELS].replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return doc

    async def artefact_votes(self, oid: str) -> int:
        """How many users label the object ARTEFACT (each user's latest label counts)."""
        return int(await self.db[ANOMALY_LABELS].count_documents(
            {"oid": oid, "label": "ARTEFACT"}))

    async def artefact_flagged_oids(self, oids: Sequence[str]) -> set[str]:
        """Those of ``oids`` enough users labelled ARTEFACT for the shared score to call
        bogus."""
        found = await self._find_by_oids(OBJECTS, oids, key="_id",
                                         extra={f"{ARTEFACT_VERDICT}.flagged": True},
                                         projection={"_id": 1})
        return {doc["_id"] for doc in found}

    async def set_artefact_verdict(self, oid: str, verdict: Doc,
                                   anomaly: Doc | None = None) -> None:
        """Record the users' artefact votes on the object (``{"votes", "flagged"}``) and,
        where the verdict changed the shared score, the re-gated score summary."""
        fields: Doc = {ARTEFACT_VERDICT: verdict}
        if anomaly is not None:
            fields["anomaly"] = anomaly
        await self.db[OBJECTS].update_one({"_id": oid}, {"$set": fields})

    async def anomaly_labels(self, user: str) -> list[Doc]:
        """One user's anomaly labels, oldest first."""
        cursor = self.db[ANOMALY_LABELS].find({"user": user}).sort([("created", 1),
                                                                    ("_id", 1)])
        return [doc async for doc in cursor]

    async def put_user_anomaly_model(self, doc: Doc) -> None:
        """Store a user's fitted anomaly model (``_id`` = the user)."""
        await self.db[ANOMALY_USERS].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def user_anomaly_model(self, user: str) -> Doc | None:
        return await self.db[ANOMALY_USERS].find_one({"_id": user})

    async def scored_oids(self, survey: str | None = None) -> list[str]:
        """Every object with an anomaly score (optionally of one survey)."""
        query: Doc = {"anomaly.score": {"$exists": True}}
        if survey is not None:
            query["survey"] = survey
        return [doc["_id"] async for doc in self.db[OBJECTS].find(query, {"_id": 1})]

    @staticmethod
    def _dead_letter_op(letter: DeadLetter, now: dt.datetime) -> UpdateOne:
        raw = letter.raw[:MAX_DEAD_LETTER_BYTES]
        return UpdateOne({"_id": letter.digest}, {
            "$setOnInsert": {
                "raw": Binary(raw), "size": len(letter.raw),
                "truncated": len(letter.raw) > len(raw), "reason": letter.reason,
                "candid": letter.candid, "oid": letter.oid, "survey": letter.survey,
                "source": letter.source.as_dict(), "first_seen": now,
            },
            "$addToSet": {"sources": letter.source.as_dict()},
        }, upsert=True)

    # ------------------------------------------------------------------ reads
    async def stored_alerts(self, keys: Iterable[int | str]) -> set[int | str]:
        """Which of these alerts (detection keys) are stored as alerts: their own
        detection, with stamps, or a solar-system detection.

        A detection known only from a later alert's history does not count: its own
        alert (and its cutouts) never arrived.
        """
        wanted = sorted(set(keys), key=str)
        if not wanted:
            return set()
        cursor = self.db[DETECTIONS].find({"_id": {"$in": wanted}, "has_stamp": True},
                                          {"_id": 1})
        found = {doc["_id"] async for doc in cursor}
        rest = [k for k in wanted if k not in found]
        if rest:
            cursor = self.db[SOLAR_SYSTEM_DETECTIONS].find({"_id": {"$in": rest}}, {"_id": 1})
            found |= {doc["_id"] async for doc in cursor}
        return found

    async def stored_dead_letters(self, digests: Iterable[str]) -> set[str]:
        """Which of these payload digests are in the dead-letter collection."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        cursor = self.db[DEAD_LETTERS].find({"_id": {"$in": wanted}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def solar_system_objects(self, ids: Iterable[int]) -> dict[int, Doc]:
        """Stored solar-system objects by ssObjectId (one equality read each)."""
        wanted = sorted(set(ids))
        found = await asyncio.gather(*(self.db[SOLAR_SYSTEM_OBJECTS].find_one({"_id": i})
                                       for i in wanted))
        return {doc["_id"]: doc for doc in found if doc is not None}

    async def solar_system(self, keys: Sequence[str]) -> tuple[list[Doc], list[Doc]]:
        """The solar-system objects and detections (both surveys, in time order) with any
        of these designation keys (:func:`nightjar.minor_planets.designation_keys`)."""
        objects: dict[Any, Doc] = {}
        detections: dict[Any, Doc] = {}
        if not keys:
            return [], []
        # $in, not equality: nx-27017 answers an equality on an indexed array field with
        # nothing (its index holds no array elements); $in means the same on MongoDB
        match = {"designation_keys": {"$in": list(keys)}}
        async for doc in self.db[SOLAR_SYSTEM_OBJECTS].find(match):
            objects[doc["_id"]] = doc
        async for doc in self.db[SOLAR_SYSTEM_DETECTIONS].find(match):
            detections[doc["_id"]] = doc
        for ss_id in list(objects):  # detections known by id whose packets lacked a name
            async for doc in self.db[SOLAR_SYSTEM_DETECTIONS].find({"ssObjectId": ss_id}):
                detections[doc["_id"]] = doc
        return (sorted(objects.values(), key=lambda d: str(d["_id"])),
                sorted(detections.values(), key=lambda d: (d["mjd"], str(d["_id"]))))

    async def surveys_present(self, surveys: Iterable[str]) -> set[str]:
        """Which of these surveys have objects in the store (one indexed read each; ZTF
        objects stored before surveys were recorded count as ZTF)."""
        out = set()
        for survey in surveys:
            query: Doc = {"survey": survey}
            if survey == "ZTF":
                query = {"survey": {"$in": [survey, None]}}
            if await self.db[OBJECTS].find_one(query, {"_id": 1}) is not None:
                out.add(survey)
        return out

    async def objects_near(self, positions: Sequence[tuple[float, float]],
                           radius_arcsec: float) -> list[Doc]:
        """Objects whose mean position is within ``radius_arcsec`` of any of the positions
        (ra, dec [deg]): ``_id``, ``survey``, ``meanra``, ``meandec``, ``hpx`` only."""
        projection = {"_id": 1, "survey": 1, "meanra": 1, "meandec": 1, "hpx": 1}

        async def near(ra: float, dec: float) -> list[Doc]:
            cone = Cone(ra, dec, radius_arcsec)
            return [d async for d in self._scan_objects([], cone, [], projection=projection)]

        found = await asyncio.gather(*(near(ra, dec) for ra, dec in positions))
        return list({d["_id"]: d for docs in found for d in docs}.values())

    async def counterparts_of(self, oids: Sequence[str]) -> dict[str, list[Doc]]:
        """Cross-survey links of several objects, nearest first."""
        out = await self._grouped(COUNTERPARTS, oids, [("separation_arcsec", 1)])
        for docs in out.values():
            docs.sort(key=lambda d: (d["separation_arcsec"], d["other_oid"]))
        return out

    async def alert_detection(self, oid: str, candid: int,
                              projection: Doc | None = None) -> Doc | None:
        """Detection ``candid`` (the survey's id) of object ``oid``, whatever its survey;
        None when the object or the detection is not there, or belongs to another object."""
        obj = await self.db[OBJECTS].find_one({"_id": oid}, {"survey": 1})
        if obj is None:
            return None
        key = detection_key(obj.get("survey") or ZTF, candid)
        fields = None if projection is None else {**projection, "oid": 1}
        det = await self.db[DETECTIONS].find_one({"_id": key}, fields)
        return det if det is not None and det.get("oid") == oid else None

    async def get_object(self, oid: str) -> Doc | None:
        return await self.db[OBJECTS].find_one({"_id": oid})

    async def probabilities(self, oid: str, classifier: str | None = None) -> list[Doc]:
        """An object's classifier rows, by classifier then ranking."""
        query: Doc = {"oid": oid}
        if classifier is not None:
            query["classifier_name"] = classifier
        cursor = self.db[PROBABILITIES].find(query).sort([("classifier_name", 1),
                                                          ("ranking", 1)])
        return [doc async for doc in cursor]

    async def features(self, oid: str) -> Doc | None:
        return await self.db[FEATURES].find_one({"_id": oid})

    async def anomaly_history(self, oids: Sequence[str]) -> dict[str, list[Doc]]:
        """Every stored anomaly score of these objects (one query), each object's in the
        order its light curve grew (mjd of the last detection scored)."""
        return await self._grouped(ANOMALY, oids, [("mjd", 1), ("_id", 1)])

    async def light_curve(self, collection: str, oid: str) -> list[Doc]:
        """Documents of one object from a light-curve collection, in time order."""
        return (await self.light_curves(collection, [oid]))[oid]

    async def light_curves(self, collection: str, oids: Sequence[str]) -> dict[str, list[Doc]]:
        """Documents of several objects from a light-curve collection (one query), each
        object's in time order."""
        if collection not in LIGHT_CURVE_COLLECTIONS:
            raise ValueError(f"unknown light-curve collection {collection!r}")
        return await self._grouped(collection, oids, [("mjd", 1), ("_id", 1)])

    async def _grouped(self, collection: str, oids: Sequence[str], sort: list[tuple[str, int]],
                       extra: Doc | None = None) -> dict[str, list[Doc]]:
        out: dict[str, list[Doc]] = {oid: [] for oid in oids}
        for doc in await self._find_by_oids(collection, list(out), sort=sort, extra=extra):
            out[doc["oid"]].append(doc)
        return out

    async def objects_by_id(self, oids: Sequence[str]) -> dict[str, Doc]:
        """Object documents by oid (one query); unknown oids are absent."""
        return {d["_id"]: d for d in await self._find_by_oids(OBJECTS, oids, key="_id")}

    async def probabilities_of(self, oids: Sequence[str], classifier: str | None = None
                               ) -> dict[str, list[Doc]]:
        """Classifier rows of several objects (one query), by classifier then ranking."""
        extra = {} if classifier is None else {"classifier_name": classifier}
        return await self._grouped(PROBABILITIES, oids,
                                   [("classifier_name", 1), ("ranking", 1)], extra)

    async def features_of(self, oids: Sequence[str]) -> dict[str, Doc]:
        """Feature documents of several objects (one query); unclassified ones absent."""
        return {d["_id"]: d for d in await self._find_by_oids(FEATURES, oids, key="_id")}

    async def labels_of(self, oids: Sequence[str]) -> dict[str, list[Doc]]:
        """User labels of several objects (one query), oldest first."""
        return await self._grouped(LABELS, oids, [("created", 1), ("_id", 1)])

    @staticmethod
    def _object_query(flt: ObjectFilter) -> list[Doc]:
        """The filter's conditions on object documents but the cone (``$and`` them)."""
        clauses: list[Doc] = []
        for name, lo, hi in (("ndet", flt.ndet_min, flt.ndet_max),
                             ("firstmjd", flt.firstmjd_min, flt.firstmjd_max),
                             ("lastmjd", flt.lastmjd_min, flt.lastmjd_max),
                             (ANOMALY_SCORE, flt.anomaly_min, flt.anomaly_max)):
            if lo is not None or hi is not None:
                clauses.append({name: _range(lo, hi)})
        if flt.oids is not None:
            clauses.append({"oid": {"$in": sorted(set(flt.oids))}})
        if flt.survey is not None:
            clauses.append({"survey": flt.survey})
        return clauses

    async def _scan_objects(self, clauses: list[Doc], cone: Cone | None,
                            sort: list[tuple[str, int]], limit: int | None = None,
                            projection: Doc | None = None) -> AsyncIterator[Doc]:
        """Objects matching ``clauses`` (and inside ``cone``, exactly) in ``sort`` order.

        A cone is read as the HEALPix index ranges of its anchor pixels (widened by the
        anchor margin).  MongoDB takes them as one ``$or``; nx-27017 scans the whole
        collection for an ``$or`` of ranges (measured: 212 ms for 3,000 objects, 8 ms
        for the same 11 ranges queried one by one), so there each range is its own
        query and the sorted answers are merged.
        """
        ranges = [] if cone is None else cone_ranges(
            cone.ra, cone.dec, (cone.radius_arcsec + ANCHOR_MARGIN_ARCSEC) / 3600.0)
        by_range = [{"hpx": {"$gte": lo, "$lt": hi}} for lo, hi in ranges]
        docs: Iterable[Doc]
        if by_range and await self._per_key_reads():
            cursors = [self.db[OBJECTS].find(_conjunction([r, *clauses]), projection)
                       for r in by_range]
            found = await asyncio.gather(*((c.sort(sort) if sort else c).to_list(None)
                                           for c in cursors))
            keys = [k for k, _ in sort]
            docs = heapq.merge(*found, key=lambda d: tuple(d.get(k) for k in keys),
                               reverse=bool(sort) and sort[0][1] < 0)
        else:
            query = clauses + ([{"$or": by_range}] if by_range else [])
            cursor = self.db[OBJECTS].find(_conjunction(query), projection)
            if sort:
                cursor = cursor.sort(sort)
            if limit is not None:
                cursor = cursor.limit(limit)
            docs = cursor.batch_size(max(limit or 0, 200))  # type: ignore[assignment]
        if isinstance(docs, AsyncIterable):
            async for doc in docs:
                if _inside(cone, doc):
                    yield doc
        else:
            for doc in docs:
                if _inside(cone, doc):
                    yield doc

    @staticmethod
    def _probability_query(flt: ObjectFilter) -> Doc:
        query: Doc = {}
        for key, value in (("classifier_name", flt.classifier),
                           ("classifier_version", flt.classifier_version),
                           ("class_name", flt.class_name), ("ranking", flt.ranking)):
            if value is not None:
                query[key] = value
        if flt.probability_min is not None:
            query["probability"] = {"$gte": flt.probability_min}
        return query

    async def _matching_rows(self, flt: ObjectFilter, oids: Sequence[str]) -> dict[str, Doc]:
        """Per oid among ``oids``, its best probability row passing the class filter."""
        best: dict[str, Doc] = {}
        for row in await self._find_by_oids(PROBABILITIES, oids,
                                            extra=self._probability_query(flt)):
            if row["oid"] not in best or row["probability"] > best[row["oid"]]["probability"]:
                best[row["oid"]] = row
        return best

    async def find_objects(self, flt: ObjectFilter, order: ObjectOrder | None = None, *,
                           after: PageKey | None = None, limit: int = 50) -> ObjectPage:
        """One page of objects in ``order`` (default: by oid), starting after ``after``.

        Pagination is keyset-based ((order value, oid) of the last object), so a page
        never repeats or skips an object whose order value did not change in between,
        however many objects are ingested meanwhile.  A cone is read as HEALPix index
        ranges widened by the anchor margin, then filtered by the exact distance of the
        mean position; the class filter is checked on each chunk of candidates.
        """
        order = order or ObjectOrder()
        if order.field == PROBABILITY:
            return await self._find_by_probability(flt, order, after, limit)
        chunk = _chunk(limit)
        page = ObjectPage([], [], False)
        phases = [False, True] if order.field in NULLABLE_ORDER_FIELDS else [False]
        if after is not None and after.value is None and order.field in NULLABLE_ORDER_FIELDS:
            phases = [True]
        for nulls in phases:
            # a key from the non-null phase does not bound the null phase
            phase_after = after if after is None or (after.value is None) == nulls else None
            query = self._object_query(flt) + self._keyset(order, phase_after, nulls)
            direction = -1 if order.descending else 1
            sort = [(order.field, direction)] + ([("oid", direction)] if order.field != "oid"
                                                 else [])
            if nulls:  # objects lacking the field: after all others, by oid
                sort = [("oid", direction)]
            every_kept = flt.cone is None and not flt.by_class
            candidates: list[Doc] = []
            async for doc in self._scan_objects(
                    query, flt.cone, sort, limit + 1 - len(page.docs) if every_kept else None):
                candidates.append(doc)
                if len(candidates) >= chunk:
                    if await self._take(flt, candidates, order, page, limit):
                        return page
                    candidates = []
            if await self._take(flt, candidates, order, page, limit):
                return page
        return page

    async def _take(self, flt: ObjectFilter, candidates: list[Doc], order: ObjectOrder,
                    page: ObjectPage, limit: int) -> bool:
        """Add the candidates passing the class filter to the page; True when it is full
        (and whether a next page exists is known)."""
        matched = await self._matching_rows(flt, [d["_id"] for d in candidates]) \
            if flt.by_class else {}
        for doc in candidates:
            if flt.by_class and doc["_id"] not in matched:
                continue
            if page.add(doc, PageKey(_path(doc, order.field), doc["_id"]),
                        matched.get(doc["_id"]), limit):
                return True
        return False

    @staticmethod
    def _keyset(order: ObjectOrder, after: PageKey | None, nulls: bool) -> list[Doc]:
        """Conditions selecting what follows ``after`` in ``order`` (and the null phase)."""
        f, op = order.field, "$lt" if order.descending else "$gt"
        clauses: list[Doc] = []
        if order.field in NULLABLE_ORDER_FIELDS:
            # {f: {$in: [null]}}, not {f: null}: nx-27017 misses nulls with the latter on
            # some collections; both mean "null or missing" on MongoDB
            clauses.append({f: {"$in": [None]}} if nulls else {f: {"$exists": True, "$ne": None}})
        if after is None:
            return clauses
        if f == "oid" or nulls:
            clauses.append({"oid": {op: after.oid}})
        elif after.value is not None:
            clauses.append({"$or": [{f: {op: after.value}},
                                    {f: after.value, "oid": {op: after.oid}}]})
        return clauses

    async def _find_by_probability(self, flt: ObjectFilter, order: ObjectOrder,
                                   after: PageKey | None, limit: int) -> ObjectPage:
        if flt.classifier is None or flt.class_name is None:
            raise ValueError("ordering by probability needs a classifier and a class name")
        query = self._probability_query(flt)
        op = "$lt" if order.descending else "$gt"
        if after is not None:
            query = _conjunction([query, {"$or": [
                {"probability": {op: after.value}},
                {"probability": after.value, "oid": {"$gt": after.oid}}]}])
        direction = -1 if order.descending else 1
        cursor = self.db[PROBABILITIES].find(query).sort([("probability", direction),
                                                          ("oid", 1)])
        page = ObjectPage([], [], False)
        object_query = self._object_query(flt)
        rows: list[Doc] = []

        async def take() -> bool:
            oids = [r["oid"] for r in rows]
            extra = _conjunction(object_query)
            found = {d["_id"]: d for d in await self._find_by_oids(OBJECTS, oids, extra=extra)}
            for row in rows:
                doc = found.get(row["oid"])
                if doc is None or not _inside(flt.cone, doc):
                    continue
                if page.add(doc, PageKey(row["probability"], row["oid"]), row, limit):
                    return True
            return False

        async for row in cursor:
            rows.append(row)
            if len(rows) >= _chunk(limit):
                if await take():
                    return page
                rows = []
        if rows:
            await take()
        return page

    async def count_objects(self, flt: ObjectFilter) -> int:
        """How many objects pass the filter (for ``totalCount``)."""
        query = self._object_query(flt)
        if flt.by_class:
            oids = sorted({r["oid"] async for r in self.db[PROBABILITIES].find(
                self._probability_query(flt), {"oid": 1})})
            if not query:
                return len(oids)
            total = 0
            for i in range(0, len(oids), 1000):
                total += await self._count_in_cone(
                    [*query, {"_id": {"$in": oids[i:i + 1000]}}], flt.cone)
            return total
        return await self._count_in_cone(query, flt.cone)

    async def _count_in_cone(self, query: list[Doc], cone: Cone | None) -> int:
        if cone is None and not query:  # the collection's size, from metadata: no scan
            return int(await self.db[OBJECTS].estimated_document_count())
        if cone is None:
            return await self.db[OBJECTS].count_documents(_conjunction(query))
        return len([d async for d in self._scan_objects(query, cone, [], projection={
            "meanra": 1, "meandec": 1})])

    async def migrate(self) -> dict[str, int]:
        """Bring documents stored before Nightjar read two surveys up to date: ``survey``
        (ZTF) on every per-object document, ``band`` on ZTF light-curve documents (from
        ``fid``).  Idempotent; returns how many documents each collection changed."""
        bands = {1: "g", 2: "r", 3: "i"}
        changed = dict.fromkeys((OBJECTS, *LIGHT_CURVE_COLLECTIONS, *ATTACHED_COLLECTIONS), 0)
        # band with survey in one update, so each document is counted once
        for coll in LIGHT_CURVE_COLLECTIONS:
            for fid, band in bands.items():
                for missing in ({"survey": {"$exists": False}},
                                {"survey": "ZTF", "band": {"$exists": False}}):
                    done = await self.db[coll].update_many(
                        {**missing, "fid": fid}, {"$set": {"survey": "ZTF", "band": band}})
                    changed[coll] += done.modified_count
        for coll in changed:
            done = await self.db[coll].update_many({"survey": {"$exists": False}},
                                                   {"$set": {"survey": "ZTF"}})
            changed[coll] += done.modified_count
        return changed

    async def count(self, collection: str, query: Doc | None = None) -> int:
        return await self.db[collection].count_documents(query or {})

    async def counts(self) -> dict[str, int]:
        return {spec.name: await self.count(spec.name) for spec in COLLECTIONS}

    async def dead_letter_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        async for doc in self.db[DEAD_LETTERS].find({}, {"reason": 1}):
            out[doc["reason"]] = out.get(doc["reason"], 0) + 1
        return out

    async def snapshot(self) -> dict[str, list[Doc]]:
        """Every document of every data collection (not the live feed), sorted by _id (for
        tests and audits)."""
        out = {}
        for spec in COLLECTIONS:
            if spec.name in FEED_COLLECTIONS:
                continue
            docs = [d async for d in self.db[spec.name].find({})]
            out[spec.name] = sorted(docs, key=lambda d: str(d["_id"]))
        return out


def _conjunction(clauses: Sequence[Doc]) -> Doc:
    """One query document for all ``clauses``: fields side by side where they do not
    collide (so nx-27017's planner sees e.g. ``hpx`` and uses its index), ``$and`` for
    the rest."""
    merged: Doc = {}
    rest: list[Doc] = []
    for clause in clauses:
        if any(key in merged for key in clause):
            rest.append(clause)
        else:
            merged.update(clause)
    if rest:
        merged["$and"] = rest
    return merged


def _inside(cone: Cone | None, doc: Doc) -> bool:
    """Whether an object's mean position lies in the cone (no cone: always)."""
    return cone is None or cone.contains(doc["meanra"], doc["meandec"])


def _range(lo: float | None, hi: float | None) -> Doc:
    cond: Doc = {}
    if lo is not None:
        cond["$gte"] = lo
    if hi is not None:
        cond["$lte"] = hi
    return cond
