"""Users' filters and their matches in the database (the writer of both collections).

A filter document holds its current expression and every earlier version (an edit is a
new version; matches name the version they came from).  A match is written once per
filter version and alert (``_id`` = ``filter_id:version:alert id``), with ``$setOnInsert``,
so a re-ingested alert, a retried batch or a backfill over alerts already matched live
never duplicates one; ``seq`` (allocated on insert) orders a filter's matches for paging.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from nightjar.core.live import Event
from nightjar.store.mongo import NightjarStore
from nightjar.store.schema import CLASSIFICATION_EVENTS, COUNTERS, FILTER_MATCHES, FILTERS

Doc = dict[str, Any]

#: states of a filter: evaluated, paused by its owner, muted by the broker (with a reason)
ACTIVE, PAUSED, MUTED, EXPIRED = "active", "paused", "muted", "expired"
#: the live-feed event of one match
FILTER_MATCH = "filter_match"


class FilterNameTaken(ValueError):
    """The owner already has a filter of that name."""


class FilterStore:
    """Filters, their matches and the classification events they read.

    Parameters
    ----------
    store : NightjarStore
        The store (its database, and its live feed for match events).
    """

    def __init__(self, store: NightjarStore):
        self.store = store
        self.db = store.db

    # -- filters ---------------------------------------------------------------------
    async def create(self, doc: Doc) -> Doc:
        try:
            await self.db[FILTERS].insert_one(doc)
        except DuplicateKeyError:
            raise FilterNameTaken(f"{doc['owner']} already has a filter named "
                                  f"{doc['name']!r}") from None
        return doc

    async def get(self, filter_id: str) -> Doc | None:
        return await self.db[FILTERS].find_one({"_id": filter_id})

    async def by_name(self, owner: str, name: str) -> Doc | None:
        return await self.db[FILTERS].find_one({"owner": owner, "name": name})

    async def owned(self, owner: str | None = None, *, public: bool = False) -> list[Doc]:
        """An owner's filters (all filters when None), with the public ones when asked."""
        if owner is None:
            query: Doc = {}
        elif public:
            query = {"$or": [{"owner": owner}, {"public": True}]}
        else:
            query = {"owner": owner}
        return await self.db[FILTERS].find(query).sort([("owner", 1), ("name", 1)]).to_list(
            None)

    async def active(self) -> list[Doc]:
        return await self.db[FILTERS].find({"state": ACTIVE}).to_list(None)

    async def replace(self, doc: Doc) -> None:
        await self.db[FILTERS].replace_one({"_id": doc["_id"]}, doc)

    async def set_fields(self, filter_id: str, fields: Doc) -> Doc | None:
        return await set_fields(self.db[FILTERS], filter_id, fields)

    async def add_counters(self, counters: dict[str, Doc]) -> None:
        """Add to each filter's counters (``{filter_id: {"stats.matches": 2, ...}}``)."""
        ops = [UpdateOne({"_id": fid}, {"$inc": inc}) for fid, inc in counters.items() if inc]
        if ops:
            await self.db[FILTERS].bulk_write(ops, ordered=False)

    async def delete(self, filter_id: str) -> bool:
        """Delete a filter and its matches."""
        result = await self.db[FILTERS].delete_one({"_id": filter_id})
        await self.db[FILTER_MATCHES].delete_many({"filter_id": filter_id})
        return bool(result.deleted_count)

    # -- matches ---------------------------------------------------------------------
    async def _next_seq(self, n: int) -> int:
        counter = await self.db[COUNTERS].find_one_and_update(
            {"_id": FILTER_MATCHES}, {"$inc": {"seq": n}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        assert counter is not None  # upsert with ReturnDocument.AFTER always returns it
        return int(counter["seq"]) - n + 1

    async def put_matches(self, matches: Sequence[Doc], *, live: bool = True) -> list[Doc]:
        """Store matches not stored before; return those (with their ``seq``), in order.

        One ordered bulk of upserts that insert only (``$setOnInsert``): what the server
        reports as inserted is new, so no read comes first (nx-27017 answers ``$in`` by
        scanning the collection).  A match stored before keeps its record, and the
        ``seq`` drawn for it is left unused: sequence numbers increase, with gaps.

        With ``live``, each new match is also announced on the live feed (the gateway's
        ``filterMatches`` subscription), after it is stored.
        """
        if not matches:
            return []
        first = await self._next_seq(len(matches))
        now = dt.datetime.now(dt.UTC)
        docs = [{**m, "seq": first + i, "created": m.get("created") or now}
                for i, m in enumerate(matches)]
        result = await self.db[FILTER_MATCHES].bulk_write(
            [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in docs],
            ordered=True)
        inserted = set(result.upserted_ids.values()) if result.upserted_ids else set()
        new = [d for d in docs if d["_id"] in inserted]
        if live and new and self.store.live_feed:
            await self.store.publish_events([match_event(d) for d in new])
        return new

    async def matches(self, filter_id: str, *, after: int = 0, first: int = 100,
                      version: int | None = None) -> list[Doc]:
        """A filter's matches in the order they were stored, after sequence ``after``."""
        query: Doc = {"filter_id": filter_id, "seq": {"$gt": after}}
        if version is not None:
            query["version"] = version
        return await self.db[FILTER_MATCHES].find(query).sort("seq", 1).limit(
            first).to_list(None)

    async def count_matches(self, filter_id: str, since: dt.datetime | None = None) -> int:
        query: Doc = {"filter_id": filter_id}
        if since is not None:
            query["created"] = {"$gte": since}
        return int(await self.db[FILTER_MATCHES].count_documents(query))

    async def last_matches(self, filter_id: str, oids: Sequence[str]) -> dict[str, Doc]:
        """Per object among ``oids``, the filter's latest match of it (notify modes)."""
        found = await self.store._find_by_oids(FILTER_MATCHES, oids, key="oid",
                                               extra={"filter_id": filter_id},
                                               projection={"oid": 1, "seq": 1, "top_class": 1})
        out: dict[str, Doc] = {}
        for doc in found:
            if doc["oid"] not in out or doc["seq"] > out[doc["oid"]]["seq"]:
                out[doc["oid"]] = doc
        return out

    # -- classification events ---------------------------------------------------------
    async def oids_with_probability(self, classifier: str, class_name: str, op: str,
                                    value: float) -> set[str]:
        """Objects with a classification event where ``classifier`` gave ``class_name`` a
        probability ``op`` (``>`` or ``>=``) ``value`` (the names are checked by the
        filter checker; keys with ``.`` or ``$`` are refused here, never queried)."""
        if any(c in name for name in (classifier, class_name) for c in ".$") or op not in (
                ">", ">="):
            raise ValueError("not an indexable probability condition")
        path = f"classifiers.{classifier}.probabilities.{class_name}"
        found = await self.db[CLASSIFICATION_EVENTS].distinct(
            "oid", {path: {"$gt" if op == ">" else "$gte": float(value)}})
        return {str(oid) for oid in found}


async def set_fields(collection: Any, _id: str, fields: Doc, inc: Doc | None = None
                     ) -> Doc | None:
    """``$set`` (and ``$inc``) on one document; returns it after the change.

    nx-27017 stores a top-level ``datetime`` given to ``$set`` as a string (nested ones and
    whole documents keep their type), so fields holding a datetime are written by
    replacing the document (these are configuration documents with one writer at a time).
    """
    if not any(isinstance(v, dt.datetime) for v in fields.values()):
        update: Doc = {"$set": fields}
        if inc:
            update["$inc"] = inc
        found: Doc | None = await collection.find_one_and_update(
            {"_id": _id}, update, return_document=ReturnDocument.AFTER)
        return found
    doc: Doc | None = await collection.find_one({"_id": _id})
    if doc is None:
        return None
    doc.update(fields)
    for key, value in (inc or {}).items():
        doc[key] = doc.get(key, 0) + value
    await collection.replace_one({"_id": _id}, doc)
    return doc


def match_event(match: Doc) -> Event:
    """The live-feed event of a stored match (JSON-able)."""
    return {"kind": FILTER_MATCH, "filter_id": match["filter_id"], "owner": match["owner"],
            "version": match["version"], "seq": match["seq"], "oid": match["oid"],
            "survey": match["survey"], "alert_id": match["alert_id"], "mjd": match["mjd"],
            "ra": match["ra"], "dec": match["dec"], "permalink": match.get("permalink"),
            "stage": match["stage"], "read": match.get("read", {}),
            "source": match.get("source", "live")}
