"""Ingestion into a real wire-protocol MongoDB: idempotence, order independence, precedence."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from nightjar.runner.ingest import BatchProcessor, RawInput, expand_paths, ingest, iter_inputs
from nightjar.sky import hpx_index
from nightjar.store import NightjarStore
from nightjar.store.schema import DEAD_LETTERS, DETECTIONS, OBJECTS
from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.decode import parse_payload
from tests.conftest import as_inputs


def _without_dead_letter_times(snapshot: dict) -> dict:
    return {k: [{f: v for f, v in d.items() if f != "first_seen"} for d in docs]
            for k, docs in snapshot.items()}


@pytest.mark.shared
async def test_real_alerts_ingest_and_bad_inputs_are_dead_lettered(
        shared_data: Path, store: NightjarStore, processor: BatchProcessor) -> None:
    files = expand_paths([shared_data / "ztf" / "alerts", shared_data / "ztf" / "bad"])
    bad_files = sorted((shared_data / "ztf" / "bad").iterdir())
    summary = await ingest(processor, iter_inputs(files), batch_size=64)
    assert summary.inputs == len(files)
    assert summary.dead_lettered == len(bad_files)
    assert summary.alerts_stored + summary.dead_lettered == summary.inputs
    counts = await store.counts()
    assert counts[OBJECTS] == len(summary.objects_seen)
    # every alert's own candidate is a stored detection with its stamps flag (the
    # shared data holds a few alerts twice, from two sources)
    decoder = AlertDecoder()
    candids = {a.candid for f in files for a in parse_payload(decoder, f.read_bytes(),
                                                              AlertSource("file"))[0]}
    assert await store.count(DETECTIONS, {"has_stamp": True}) == len(candids)
    # every bad file is in the dead letters, raw bytes and source intact
    for path in bad_files:
        letters = [d async for d in store.db[DEAD_LETTERS].find(
            {"sources.path": str(path)})]
        assert len(letters) == 1, path
        assert bytes(letters[0]["raw"]) == path.read_bytes()
        assert letters[0]["reason"]
    # forced photometry is kept apart and flagged
    assert counts["forced_photometry"] > 0
    assert await store.count("forced_photometry", {"forced": True}) == counts["forced_photometry"]

    before = _without_dead_letter_times(await store.snapshot())
    again = await ingest(processor, iter_inputs(files), batch_size=64)
    assert again.new_detections == 0 and again.objects_written == 0
    assert _without_dead_letter_times(await store.snapshot()) == before


async def test_reingest_leaves_every_collection_unchanged(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    await ingest(processor, as_inputs(simulated), batch_size=50)
    first = await store.snapshot()
    assert first[OBJECTS] and first[DETECTIONS] and first["non_detections"]
    summary = await ingest(processor, as_inputs(simulated), batch_size=37)
    assert summary.objects_written == 0
    assert await store.snapshot() == first


async def test_any_order_gives_the_same_store(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    from nightjar.store.archive import LocalArchive

    snapshots = []
    orders = [list(simulated), random.Random(1).sample(simulated, len(simulated))]
    for i, packets in enumerate(orders):
        # emptied in between, not a second database: nx-27017 keeps every database
        # name in one namespace, so two names would silently share the documents
        for name in (await store.snapshot()):
            await store.db[name].delete_many({})
        await ingest(BatchProcessor(store, LocalArchive(tmp_path / str(i))),
                     as_inputs(packets), batch_size=25)
        snapshots.append(await store.snapshot())
    assert snapshots[0][OBJECTS], "nothing was ingested"
    # statistics, light curves and even the HEALPix anchors do not depend on order
    assert snapshots[0] == snapshots[1]
    for obj in snapshots[0][OBJECTS]:
        dets = [d for d in snapshots[0][DETECTIONS] if d["oid"] == obj["_id"]]
        first = min(dets, key=lambda d: (d["mjd"], d["candid"]))
        assert obj["hpx"] == hpx_index(first["ra"], first["dec"])
        assert {d["hpx"] for d in dets} == {obj["hpx"]}


async def test_candidate_version_wins_over_prv_candidates(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    by_oid: dict[str, list[tuple[str, int, bytes]]] = {}
    for packet in simulated:
        by_oid.setdefault(packet[0], []).append(packet)
    _oid, packets = max(by_oid.items(), key=lambda kv: len(kv[1]))
    early, late = packets[-2], packets[-1]
    # the late alert carries the early candid among its prv_candidates: ingest it first
    await ingest(processor, as_inputs([late]), batch_size=10)
    prv_version = await store.db[DETECTIONS].find_one({"_id": early[1]})
    assert prv_version is not None and prv_version["has_stamp"] is False
    assert prv_version["parent_candid"] == late[1]
    await ingest(processor, as_inputs([early]), batch_size=10)
    cand_version = await store.db[DETECTIONS].find_one({"_id": early[1]})
    assert cand_version["has_stamp"] is True and cand_version["parent_candid"] is None
    assert "ndethist" in cand_version  # a candidate-only field: the full candidate is stored
    await ingest(processor, as_inputs([late]), batch_size=10)  # a prv copy again: no effect
    assert await store.db[DETECTIONS].find_one({"_id": early[1]}) == cand_version


async def test_garbage_in_a_batch_is_dead_lettered_and_the_rest_stored(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    garbage = RawInput(b"<html>502 Bad Gateway</html>", AlertSource("kafka", topic="t",
                                                                     partition=0, offset=7))
    summary = await ingest(processor, [*as_inputs(simulated[:20]), garbage], batch_size=100)
    assert summary.alerts_stored == 20 and summary.dead_lettered == 1
    letter = await store.db[DEAD_LETTERS].find_one({})
    assert letter["source"] == {"kind": "kafka", "topic": "t", "partition": 0, "offset": 7}
    assert "HTML" in letter["reason"]


async def test_archive_keeps_raw_avro_and_cutouts(
        processor: BatchProcessor, simulated: list[tuple[str, int, bytes]]) -> None:
    _oid, candid, raw = simulated[0]
    await ingest(processor, as_inputs([simulated[0]]), batch_size=1)
    archive = processor.archive
    assert archive.get_avro(candid) == raw
    assert archive.cutout_kinds(candid) == ["science", "template", "difference"]
    assert archive.get_cutout(candid, "science")[:2] == b"\x1f\x8b"  # gzip


class _ObjectsWriteFails:
    """A database whose next object-document write fails, after the light curves went in
    (the store writes light curves first, objects last: a crash lands exactly here)."""

    def __init__(self, db: Any):
        self._db = db
        self.armed = False

    def __getitem__(self, name: str) -> Any:
        collection = self._db[name]
        if name != OBJECTS or not self.armed:
            return collection
        outer = self

        class Failing:
            def __getattr__(self, attr: str) -> Any:
                return getattr(collection, attr)

            async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
                outer.armed = False
                raise ConnectionError("connection lost before the object documents")

        return Failing()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._db, attr)


async def test_write_interrupted_between_light_curves_and_objects_then_replayed_is_clean(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    from nightjar.store.archive import LocalArchive

    batches = [simulated[i:i + 50] for i in range(0, len(simulated), 50)]
    await ingest(BatchProcessor(store, LocalArchive(tmp_path / "clean")),
                 as_inputs(simulated), batch_size=50)
    clean = await store.snapshot()
    # one database at a time: nx-27017 keeps every database name in one namespace
    for name in clean:
        await store.db[name].delete_many({})
    faulty_db = _ObjectsWriteFails(store.db)
    faulty = NightjarStore(faulty_db)  # type: ignore[arg-type]
    processor = BatchProcessor(faulty, LocalArchive(tmp_path / "interrupted"))
    faulty_db.armed = True
    with pytest.raises(ConnectionError):
        await processor.process(as_inputs(batches[0]))
    during = await store.snapshot()
    # the interruption fell where claimed: light curves stored, no object documents
    assert during[DETECTIONS] and during["non_detections"] and not during[OBJECTS]
    for batch in batches:  # the replay after a restart, from the failed batch on
        await processor.process(as_inputs(batch))
    assert await store.snapshot() == clean
