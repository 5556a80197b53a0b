"""Watchlists, watchmaps and watchlist matches in the database.

A watchlist's rows are stored in chunks of :data:`ROWS_PER_CHUNK` rows as binary arrays
(a 10^6-row list is 100 documents, not 10^6: the embedded server writes ~2,000 documents
per second), each row with a stable integer id; rows are added as new chunks and removed
by rewriting the chunks that held them.  A watchmap stores its region's order-29 ranges
and credible levels the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
from bson import Binary
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from nightjar.core.watch import SkyRegion, WatchRows
from nightjar.store.filters import set_fields
from nightjar.store.mongo import NightjarStore
from nightjar.store.schema import (
    COUNTERS,
    WATCHLIST_MATCHES,
    WATCHLIST_ROWS,
    WATCHLISTS,
    WATCHMAPS,
)

Doc = dict[str, Any]
ROWS_PER_CHUNK = 10_000


class WatchNameTaken(ValueError):
    """The owner already has a watchlist or watchmap of that name."""


def _blob(values: np.ndarray, dtype: str) -> Binary:
    return Binary(np.ascontiguousarray(values, dtype=dtype).tobytes())


def _array(blob: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype=dtype)


class WatchStore:
    """The writer and reader of watchlists, their rows and matches, and watchmaps."""

    def __init__(self, store: NightjarStore):
        self.store = store
        self.db = store.db

    # -- watchlists ------------------------------------------------------------------
    async def create_list(self, doc: Doc) -> Doc:
        try:
            await self.db[WATCHLISTS].insert_one(doc)
        except DuplicateKeyError:
            raise WatchNameTaken(f"{doc['owner']} already has a watchlist named "
                                 f"{doc['name']!r}") from None
        return doc

    async def get_list(self, list_id: str) -> Doc | None:
        return await self.db[WATCHLISTS].find_one({"_id": list_id})

    async def list_by_name(self, owner: str, name: str) -> Doc | None:
        return await self.db[WATCHLISTS].find_one({"owner": owner, "name": name})

    async def lists(self, owner: str | None = None, *, public: bool = False) -> list[Doc]:
        if owner is None:
            query: Doc = {}
        elif public:
            query = {"$or": [{"owner": owner}, {"public": True}]}
        else:
            query = {"owner": owner}
        return await self.db[WATCHLISTS].find(query).sort([("owner", 1), ("name", 1)]).to_list(
            None)

    async def set_list(self, list_id: str, fields: Doc, inc: Doc | None = None) -> Doc | None:
        return await set_fields(self.db[WATCHLISTS], list_id, fields, inc)

    async def delete_list(self, list_id: str) -> None:
        await self.db[WATCHLIST_ROWS].delete_many({"list_id": list_id})
        await self.db[WATCHLIST_MATCHES].delete_many({"list_id": list_id})
        await self.db[WATCHLISTS].delete_one({"_id": list_id})

    async def add_rows(self, list_id: str, first_id: int, rows: WatchRows) -> int:
        """Store rows with ids ``first_id, first_id + 1, ...`` in new chunks; return the
        number of chunks written."""
        chunks = 0
        for start in range(0, len(rows), ROWS_PER_CHUNK):
            stop = min(start + ROWS_PER_CHUNK, len(rows))
            ids = np.arange(first_id + start, first_id + stop, dtype=np.int64)
            await self.db[WATCHLIST_ROWS].replace_one(
                {"_id": f"{list_id}:{int(ids[0])}"}, _chunk_doc(
                    list_id, ids, rows.names[start:stop], rows.ra[start:stop],
                    rows.dec[start:stop], rows.radius[start:stop]), upsert=True)
            chunks += 1
        return chunks

    async def rows(self, list_id: str) -> tuple[np.ndarray, WatchRows]:
        """(row ids, rows) of a watchlist, in id order."""
        ids: list[np.ndarray] = []
        names: list[str] = []
        ra: list[np.ndarray] = []
        dec: list[np.ndarray] = []
        radius: list[np.ndarray] = []
        cursor = self.db[WATCHLIST_ROWS].find({"list_id": list_id}).sort("first", 1)
        async for doc in cursor:
            ids.append(_array(doc["ids"], "<i8"))
            names += doc["names"]
            ra.append(_array(doc["ra"], "<f8"))
            dec.append(_array(doc["dec"], "<f8"))
            radius.append(_array(doc["radius"], "<f8"))
        if not ids:
            empty = np.empty(0)
            return np.empty(0, dtype=np.int64), WatchRows([], empty, empty, empty)
        return np.concatenate(ids), WatchRows(names, np.concatenate(ra), np.concatenate(dec),
                                              np.concatenate(radius))

    async def remove_rows(self, list_id: str, names: Sequence[str] = (),
                          ids: Sequence[int] = ()) -> int:
        """Remove rows by name or id (rewriting the chunks that held them); how many."""
        drop_names, drop_ids = set(names), {int(i) for i in ids}
        removed = 0
        cursor = self.db[WATCHLIST_ROWS].find({"list_id": list_id})
        async for doc in cursor:
            row_ids = _array(doc["ids"], "<i8")
            keep = np.array([not (n in drop_names or int(i) in drop_ids)
                             for n, i in zip(doc["names"], row_ids, strict=True)], dtype=bool)
            if keep.all():
                continue
            removed += int((~keep).sum())
            if not keep.any():
                await self.db[WATCHLIST_ROWS].delete_one({"_id": doc["_id"]})
                continue
            names_kept = [n for n, k in zip(doc["names"], keep, strict=True) if k]
            await self.db[WATCHLIST_ROWS].replace_one({"_id": doc["_id"]}, _chunk_doc(
                list_id, row_ids[keep], names_kept, _array(doc["ra"], "<f8")[keep],
                _array(doc["dec"], "<f8")[keep], _array(doc["radius"], "<f8")[keep],
                first=int(doc["first"])))
        return removed

    async def lists_version(self) -> Any:
        """Changes whenever any watchlist or watchmap changes (engines reload then)."""
        doc = await self.db[COUNTERS].find_one({"_id": "watch_version"})
        return None if doc is None else doc.get("seq")

    async def bump_version(self) -> None:
        await self.db[COUNTERS].update_one({"_id": "watch_version"}, {"$inc": {"seq": 1}},
                                           upsert=True)

    # -- matches ---------------------------------------------------------------------
    async def put_matches(self, matches: Sequence[Doc]) -> list[Doc]:
        """Store matches not stored before (``_id`` = list:row:alert); return the new ones."""
        if not matches:
            return []
        now = dt.datetime.now(dt.UTC)
        ops = [UpdateOne({"_id": m["_id"]}, {"$setOnInsert": {**m, "created": now}},
                         upsert=True) for m in matches]
        new: list[Doc] = []
        for start in range(0, len(ops), 5000):
            result = await self.db[WATCHLIST_MATCHES].bulk_write(ops[start:start + 5000],
                                                                 ordered=True)
            for index in (result.upserted_ids or {}):
                new.append({**matches[start + index], "created": now})
        return new

    async def matches(self, list_id: str, *, first: int = 1000, after: str | None = None
                      ) -> list[Doc]:
        query: Doc = {"list_id": list_id}
        if after is not None:
            query["_id"] = {"$gt": after}
        return await self.db[WATCHLIST_MATCHES].find(query).sort("_id", 1).limit(
            first).to_list(None)

    async def count_matches(self, list_id: str) -> int:
        return int(await self.db[WATCHLIST_MATCHES].count_documents({"list_id": list_id}))

    # -- watchmaps -------------------------------------------------------------------
    async def create_map(self, doc: Doc, region: SkyRegion) -> Doc:
        full = {**doc, "starts": _blob(region.starts, "<i8"), "ends": _blob(region.ends, "<i8"),
                "levels": _blob(region.levels, "<f8")}
        try:
            await self.db[WATCHMAPS].insert_one(full)
        except DuplicateKeyError:
            raise WatchNameTaken(f"{doc['owner']} already has a watchmap named "
                                 f"{doc['name']!r}") from None
        return doc

    async def maps(self, owner: str | None = None, *, public: bool = False,
                   with_region: bool = False) -> list[Doc]:
        if owner is None:
            query: Doc = {}
        elif public:
            query = {"$or": [{"owner": owner}, {"public": True}]}
        else:
            query = {"owner": owner}
        projection = None if with_region else {"starts": 0, "ends": 0, "levels": 0}
        return await self.db[WATCHMAPS].find(query, projection).sort(
            [("owner", 1), ("name", 1)]).to_list(None)

    async def delete_map(self, map_id: str) -> None:
        await self.db[WATCHMAPS].delete_one({"_id": map_id})


def region_of(doc: Doc) -> SkyRegion:
    return SkyRegion(_array(doc["starts"], "<i8"), _array(doc["ends"], "<i8"),
                     _array(doc["levels"], "<f8"))


def _chunk_doc(list_id: str, ids: np.ndarray, names: Sequence[str], ra: np.ndarray,
               dec: np.ndarray, radius: np.ndarray, first: int | None = None) -> Doc:
    return {"_id": f"{list_id}:{int(ids[0]) if first is None else first}", "list_id": list_id,
            "first": int(ids[0]) if first is None else first, "n": len(ids),
            "ids": _blob(ids, "<i8"), "names": list(names), "ra": _blob(ra, "<f8"),
            "dec": _blob(dec, "<f8"), "radius": _blob(radius, "<f8")}
