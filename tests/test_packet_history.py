"""Ingestion reads back only what an LSST packet does not repeat (issue 23).

Each LSST packet repeats its object's history (12 months of prvDiaSources,
prvDiaForcedSources and limits).  The ingestion reads the object's light-curve index and
the stored rows older than what the batch's packets hold, rebuilds the rest from the
packets, and reads the object whole when the packets cannot complete it.  These tests run
the real pipeline on nx-27017 (or ``MONGODB_URI``), count the documents the server returns
with pymongo's command monitoring, and compare every stored document with a run that
reads every history whole (the behaviour before the index).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

import nightjar.runner.ingest as ingest_module
from nightjar.runner.ingest import BatchProcessor, RawInput, ingest
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import (
    DETECTIONS,
    FORCED_PHOTOMETRY,
    LIGHT_CURVE_INDEX,
    NON_DETECTIONS,
    OBJECTS,
)
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.simulate import LsstSimulator, SimObject

LIGHT_CURVES = (DETECTIONS, NON_DETECTIONS, FORCED_PHOTOMETRY)


class DocumentsRead(monitoring.CommandListener):
    """How many documents the server returned per collection (find and getMore)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._collection: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self._collection[event.request_id] = event.command["find"]
        elif event.command_name == "getMore":
            self._collection[event.request_id] = event.command["collection"]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        coll = self._collection.pop(event.request_id, None)
        if coll is not None:
            cursor = event.reply.get("cursor") or {}
            self.counts[coll] += len(cursor.get("firstBatch") or cursor.get("nextBatch") or ())

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._collection.pop(event.request_id, None)

    def light_curve_rows(self) -> int:
        return sum(self.counts[c] for c in LIGHT_CURVES)


@pytest.fixture
async def counted(mongo_uri: str) -> AsyncIterator[tuple[NightjarStore, DocumentsRead]]:
    listener = DocumentsRead()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[listener])
    name = f"nightjar_test_{uuid.uuid4().hex[:10]}"
    store = NightjarStore(client[name], live_feed=False)
    await store.init()
    try:
        yield store, listener
    finally:
        await client.drop_database(name)
        await client.close()


def _inputs(packets: list[bytes]) -> list[RawInput]:
    return [RawInput(raw, AlertSource("file", path=f"lsst/{i}")) for i, raw in enumerate(packets)]


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    """400 simulated LSST alerts in time order (21+ objects with up to ~30 alerts each,
    every packet repeating its object's history)."""
    return [raw for _, _, raw in LsstSimulator(seed=3).packets(400)]


async def _emptied(store: NightjarStore) -> None:
    # the same database emptied, not a second one: nx-27017 keeps every database name
    # in one namespace
    for name in await store.snapshot():
        await store.db[name].delete_many({})


async def _run(store: NightjarStore, listener: DocumentsRead, packets: list[bytes],
               tmp: Path, whole: bool, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """(snapshot, light-curve rows read, objects read whole after all) of one ingestion."""
    await _emptied(store)
    with monkeypatch.context() as patch:
        if whole:  # the reference: no object keeps an index, every history is read whole
            patch.setattr(ingest_module, "packet_windows", lambda *_: {})
        processor = BatchProcessor(store, LocalArchive(tmp))
        listener.counts.clear()
        summary = await ingest(processor, _inputs(packets), batch_size=20)
    assert summary.alerts_stored == len(packets) and summary.dead_lettered == 0
    rows_read = listener.light_curve_rows()
    return await store.snapshot(), rows_read, processor.whole_reads


def _without_index(snapshot: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {k: v for k, v in snapshot.items() if k != LIGHT_CURVE_INDEX}


def _index_matches_the_store(snapshot: dict[str, list[dict[str, Any]]]) -> None:
    stored: dict[str, dict[str, set[Any]]] = {}
    for coll in LIGHT_CURVES:
        for doc in snapshot[coll]:
            stored.setdefault(doc["oid"], {}).setdefault(coll, set()).add(doc["_id"])
    indexes = {doc["_id"]: doc for doc in snapshot[LIGHT_CURVE_INDEX]}
    assert set(indexes) == {o["_id"] for o in snapshot[OBJECTS]}
    for oid, index in indexes.items():
        assert {e[0] for e in index["detections"]} == stored[oid].get(DETECTIONS, set())
        assert {e[0] for e in index["non_detections"]} == stored[oid].get(NON_DETECTIONS, set())
        assert set(index["forced_photometry"]) == stored[oid].get(FORCED_PHOTOMETRY, set())


async def test_packets_complete_the_history_and_the_store_equals_a_whole_read(
        counted: tuple[NightjarStore, DocumentsRead], stream: list[bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, listener = counted
    reference, whole_rows, _ = await _run(store, listener, stream, tmp_path / "a", True,
                                          monkeypatch)
    assert not reference[LIGHT_CURVE_INDEX]
    indexed, indexed_rows, fallbacks = await _run(store, listener, stream, tmp_path / "b",
                                                  False, monkeypatch)
    # every stored document is the one a whole read gives, statistics included
    assert _without_index(indexed) == _without_index(reference)
    _index_matches_the_store(indexed)
    # in time order every packet holds its object's stored rows: none is read back
    assert fallbacks == 0
    assert whole_rows > 4000 and indexed_rows == 0, (whole_rows, indexed_rows)


async def test_out_of_order_packets_fall_back_to_a_whole_read_and_store_the_same(
        counted: tuple[NightjarStore, DocumentsRead], stream: list[bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, listener = counted
    shuffled = random.Random(5).sample(stream, len(stream))
    reference, _, _ = await _run(store, listener, shuffled, tmp_path / "a", True, monkeypatch)
    indexed, _, fallbacks = await _run(store, listener, shuffled, tmp_path / "b", False,
                                       monkeypatch)
    # an earlier packet does not hold what a later one stored: those objects are read whole
    assert fallbacks > 0
    assert _without_index(indexed) == _without_index(reference)
    _index_matches_the_store(indexed)


async def _all_but_the_last_stored(store: NightjarStore, tmp: Path
                                   ) -> tuple[LsstSimulator, SimObject, list[dict[str, Any]],
                                              BatchProcessor]:
    """A simulated object with many detections: every alert but the last ingested; (the
    simulator, the object, its alert records in time order, the processor)."""
    sim = LsstSimulator(seed=3)
    events = sim.events(400)
    per_object = Counter(obj.object_id for obj, _ in events)
    obj = next(o for o, _ in events if per_object[o.object_id] >= 15)
    records = [sim.alert(obj, i) for i, e in enumerate(obj.epochs) if e.detected]
    processor = BatchProcessor(store, LocalArchive(tmp))
    await ingest(processor, _inputs([sim.encode(r) for r in records[:-1]]), batch_size=5)
    return sim, obj, records, processor


async def _stored(store: NightjarStore, oid: str) -> tuple[dict[str, Any], int]:
    obj = await store.db[OBJECTS].find_one({"_id": oid})
    assert obj is not None
    dets = await store.db[DETECTIONS].count_documents({"oid": oid})
    return obj, dets


async def test_a_packet_holding_a_shorter_history_reads_only_the_older_rows(
        counted: tuple[NightjarStore, DocumentsRead], tmp_path: Path) -> None:
    store, listener = counted
    sim, obj, records, processor = await _all_but_the_last_stored(store, tmp_path)
    last = records[-1]
    oid = str(obj.object_id)
    # Rubin's packets stop at 12 months: this one holds only its latest 5 sources
    cut = sorted(p["midpointMjdTai"] for p in last["prvDiaSources"])[-5]
    older = [p for p in last["prvDiaSources"] if p["midpointMjdTai"] < cut]
    last["prvDiaSources"] = [p for p in last["prvDiaSources"] if p["midpointMjdTai"] >= cut]
    listener.counts.clear()
    await ingest(processor, _inputs([sim.encode(last)]), batch_size=5)
    assert processor.whole_reads == 0
    # the detections the packet no longer holds are read; nothing else of the light curve
    # (its limits and forced points are within what it holds, or known from the index)
    assert listener.counts[DETECTIONS] == len(older) > 0
    assert listener.counts[FORCED_PHOTOMETRY] == 0
    stored, n_stored = await _stored(store, oid)
    # the statistics cover the whole light curve, the rows read included
    assert n_stored == len(records) == stored["ndet"]
    first = await store.db[DETECTIONS].find({"oid": oid}).sort("mjd", 1).to_list(1)
    assert stored["firstmjd"] == first[0]["mjd"] < cut


async def test_a_packet_missing_a_stored_source_reads_the_object_whole(
        counted: tuple[NightjarStore, DocumentsRead], tmp_path: Path) -> None:
    store, listener = counted
    sim, obj, records, processor = await _all_but_the_last_stored(store, tmp_path)
    last = records[-1]
    # a packet whose history lacks one stored source (inside its time span): the index
    # names a row neither the packet nor a read of older rows gives
    del last["prvDiaSources"][len(last["prvDiaSources"]) // 2]
    listener.counts.clear()
    await ingest(processor, _inputs([sim.encode(last)]), batch_size=5)
    assert processor.whole_reads == 1
    assert listener.counts[DETECTIONS] >= len(records) - 1
    stored, n_stored = await _stored(store, str(obj.object_id))
    assert n_stored == len(records) == stored["ndet"]
