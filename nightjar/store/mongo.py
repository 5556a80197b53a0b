"""The MongoDB store: the one writer path and the read queries, on PyMongo's async API.

Queries stay within what both a real MongoDB and the embedded nx-27017 server answer:
equality, ``$in``, range operators, ``$or`` of ranges, sort, limit and projections.
Cone searches never use geo operators: they read HEALPix index ranges
(:func:`nightjar.sky.cone_ranges`) and filter by exact angular distance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bson import Binary
from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from nightjar.alerts import MAX_DEAD_LETTER_BYTES, DeadLetter
from nightjar.lightcurve import HISTORY_FIELDS, ObjectHistory, ObjectWrite
from nightjar.sky import ANCHOR_MARGIN_ARCSEC, cone_ranges, separation_deg
from nightjar.store.schema import (
    CLASSIFICATION_COLLECTIONS,
    COLLECTIONS,
    DEAD_LETTERS,
    DETECTIONS,
    FEATURES,
    FORCED_PHOTOMETRY,
    LIGHT_CURVE_COLLECTIONS,
    NON_DETECTIONS,
    OBJECTS,
    PROBABILITIES,
)

Doc = dict[str, Any]


@dataclass(frozen=True)
class Cone:
    """A cone on the sky: centre [deg] and radius [arcsec]."""

    ra: float
    dec: float
    radius_arcsec: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.ra < 360.0 and -90.0 <= self.dec <= 90.0):
            raise ValueError(f"cone centre ({self.ra}, {self.dec}) is off the sky")
        if not 0.0 < self.radius_arcsec <= 36000.0:
            raise ValueError("cone radius must be in (0, 36000] arcsec")


@dataclass
class ObjectFilter:
    """Filters of the object listing; every bound is inclusive and optional."""

    ndet_min: int | None = None
    ndet_max: int | None = None
    firstmjd_min: float | None = None
    firstmjd_max: float | None = None
    cone: Cone | None = None


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
    dead_letters: int = 0


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

    def __init__(self, database: AsyncDatabase[Doc]):
        self.db = database

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
    async def load_histories(self, oids: Iterable[str]) -> dict[str, ObjectHistory]:
        """Everything the ingestion core needs to know about these objects."""
        oid_list = sorted(set(oids))
        hist = {oid: ObjectHistory(oid) for oid in oid_list}
        if not oid_list:
            return hist
        projection = dict.fromkeys(HISTORY_FIELDS, 1)
        nd_projection = {"_id": 1, "oid": 1, "fid": 1, "mjd": 1, "diffmaglim": 1}
        by_oid = {"oid": {"$in": oid_list}}
        ids_only = {"_id": 1, "oid": 1}
        # the reads are independent: issue them together (one round trip of latency, and
        # the server works on one while the client decodes another)
        objects, detections, non_detections, forced, *classified = await asyncio.gather(
            self.db[OBJECTS].find({"_id": {"$in": oid_list}}).to_list(None),
            self.db[DETECTIONS].find(by_oid, projection).to_list(None),
            self.db[NON_DETECTIONS].find(by_oid, nd_projection).to_list(None),
            self.db[FORCED_PHOTOMETRY].find(by_oid, ids_only).to_list(None),
            *(self.db[coll].find(by_oid, ids_only).to_list(None)
              for coll in CLASSIFICATION_COLLECTIONS))
        for doc in objects:
            hist[doc["_id"]].object_doc = doc
        for doc in detections:
            hist[doc["oid"]].detections[doc["_id"]] = doc
        for doc in non_detections:
            hist[doc["oid"]].non_detections[doc["_id"]] = doc
        for doc in forced:
            hist[doc["oid"]].forced_ids.add(doc["_id"])
        for coll, docs in zip(CLASSIFICATION_COLLECTIONS, classified, strict=True):
            for doc in docs:
                hist[doc["oid"]].classification_ids.setdefault(coll, set()).add(doc["_id"])
        return hist

    # ------------------------------------------------------------------ the writer
    async def write(self, writes: Sequence[ObjectWrite],
                    dead_letters: Sequence[DeadLetter] = (),
                    now: dt.datetime | None = None) -> WriteSummary:
        """Apply planned object writes and dead letters: the only path that writes.

        Order matters for crash safety: re-anchored documents are moved first, then
        light-curve documents are written, and the object document (the statistics)
        last, so an interrupted batch is completed by re-ingesting it.
        """
        summary = WriteSummary()
        ops: dict[str, list[Any]] = {name: [] for name in (
            OBJECTS, *LIGHT_CURVE_COLLECTIONS, *CLASSIFICATION_COLLECTIONS)}
        moves: dict[str, list[Any]] = {name: [] for name in ops}
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
            if w.object_doc is not None:
                ops[OBJECTS].append(ReplaceOne(_key(w.oid, w.hpx, w.oid), w.object_doc,
                                               upsert=True))
            summary.detections += len(w.detections)
            summary.new_detections += w.new_detections
            summary.detection_updates += len(w.detection_updates)
            summary.non_detections += len(w.non_detections)
            summary.forced_photometry += len(w.forced_photometry)
            summary.objects += w.object_doc is not None
            summary.probabilities += len(w.probabilities)
            summary.features += w.features is not None
        for batch in (moves, ops):
            for coll in (*LIGHT_CURVE_COLLECTIONS, *CLASSIFICATION_COLLECTIONS, OBJECTS):
                if batch[coll]:
                    await self.db[coll].bulk_write(batch[coll], ordered=False)
        if dead_letters:
            await self.db[DEAD_LETTERS].bulk_write(
                [self._dead_letter_op(d, now or dt.datetime.now(dt.UTC)) for d in dead_letters],
                ordered=False)
            summary.dead_letters = len(dead_letters)
        return summary

    @staticmethod
    def _dead_letter_op(letter: DeadLetter, now: dt.datetime) -> UpdateOne:
        raw = letter.raw[:MAX_DEAD_LETTER_BYTES]
        return UpdateOne({"_id": letter.digest}, {
            "$setOnInsert": {
                "raw": Binary(raw), "size": len(letter.raw),
                "truncated": len(letter.raw) > len(raw), "reason": letter.reason,
                "candid": letter.candid, "oid": letter.oid,
                "source": letter.source.as_dict(), "first_seen": now,
            },
            "$addToSet": {"sources": letter.source.as_dict()},
        }, upsert=True)

    # ------------------------------------------------------------------ reads
    async def stored_alerts(self, candids: Iterable[int]) -> set[int]:
        """Which of these alerts are stored as alerts (their own candidate, with stamps).

        A detection known only from a later alert's ``prv_candidates`` does not count:
        its own alert (and its cutouts) never arrived.
        """
        wanted = sorted(set(candids))
        if not wanted:
            return set()
        cursor = self.db[DETECTIONS].find({"_id": {"$in": wanted}, "has_stamp": True},
                                          {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def stored_dead_letters(self, digests: Iterable[str]) -> set[str]:
        """Which of these payload digests are in the dead-letter collection."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        cursor = self.db[DEAD_LETTERS].find({"_id": {"$in": wanted}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

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

    async def light_curve(self, collection: str, oid: str) -> list[Doc]:
        """Documents of one object from a light-curve collection, in time order."""
        if collection not in LIGHT_CURVE_COLLECTIONS:
            raise ValueError(f"unknown light-curve collection {collection!r}")
        cursor = self.db[collection].find({"oid": oid}).sort([("mjd", 1), ("_id", 1)])
        return [doc async for doc in cursor]

    async def find_objects(self, flt: ObjectFilter, *, after: str | None = None,
                           limit: int = 50) -> tuple[list[Doc], bool]:
        """One page of objects ordered by oid, and whether more follow.

        The cone, if any, is read as HEALPix index ranges widened by the anchor
        margin, then filtered by the exact distance of the mean position.
        """
        query: Doc = {}
        if flt.ndet_min is not None or flt.ndet_max is not None:
            query["ndet"] = _range(flt.ndet_min, flt.ndet_max)
        if flt.firstmjd_min is not None or flt.firstmjd_max is not None:
            query["firstmjd"] = _range(flt.firstmjd_min, flt.firstmjd_max)
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.db[OBJECTS].find(self._with_cone(query, flt.cone)).sort("_id", 1)
        if flt.cone is None:
            page = [doc async for doc in cursor.limit(limit + 1)]
        else:
            page = []
            async for doc in cursor:
                if _in_cone(doc, flt.cone):
                    page.append(doc)
                    if len(page) > limit:
                        break
        return page[:limit], len(page) > limit

    @staticmethod
    def _with_cone(query: Doc, cone: Cone | None) -> Doc:
        if cone is None:
            return query
        radius_deg = (cone.radius_arcsec + ANCHOR_MARGIN_ARCSEC) / 3600.0
        ranges = cone_ranges(cone.ra, cone.dec, radius_deg)
        hpx_or = [{"hpx": {"$gte": lo, "$lt": hi}} for lo, hi in ranges]
        return {**query, "$or": hpx_or} if len(hpx_or) > 1 else {**query, **hpx_or[0]}

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
        """Every document of every collection, sorted by _id (for tests and audits)."""
        out = {}
        for spec in COLLECTIONS:
            docs = [d async for d in self.db[spec.name].find({})]
            out[spec.name] = sorted(docs, key=lambda d: str(d["_id"]))
        return out


def _range(lo: float | None, hi: float | None) -> Doc:
    cond: Doc = {}
    if lo is not None:
        cond["$gte"] = lo
    if hi is not None:
        cond["$lte"] = hi
    return cond


def _in_cone(doc: Doc, cone: Cone) -> bool:
    distance = separation_deg(cone.ra, cone.dec, doc["meanra"], doc["meandec"]) * 3600.0
    return distance <= cone.radius_arcsec
