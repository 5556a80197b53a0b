"""The topology drives the embedded runner; hooks, output records, replay bounds."""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import fastavro
import pytest

from nightjar.core.lightcurve import ObjectState
from nightjar.runner.ingest import BatchProcessor, RawInput
from nightjar.runner.records import classification_messages, dead_letter_messages, decode
from nightjar.runner.topology import DEFAULT_TOPOLOGY, Topology
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import DETECTIONS, NON_DETECTIONS, OBJECTS
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.schemas import LsstSchemas
from nightjar.surveys.lsst.wire import unframe
from stream.reconcile import parse_bound
from tests.conftest import as_inputs


def test_steps_are_in_the_documented_order() -> None:
    assert DEFAULT_TOPOLOGY.step_names == ["ingest", "correct", "statistics", "xmatch",
                                           "stamp", "classify", "store", "publish"]
    # without hooks the hook steps are not run at all
    assert [step.name for step in DEFAULT_TOPOLOGY.object_steps()] == ["correct", "statistics"]


def test_unknown_hook_step_is_refused() -> None:
    with pytest.raises(ValueError, match="no hook step named"):
        Topology(hooks={"corect": [lambda s: s]})


def _brightness_classifier(state: ObjectState) -> ObjectState:
    bright = min(d["magpsf"] for d in state.corrected) < 18.0
    return replace(state, probabilities=[
        {"classifier_name": "toy", "classifier_version": "0", "class_name": "bright",
         "probability": 1.0 if bright else 0.0, "ranking": 1 if bright else 2},
        {"classifier_name": "toy", "classifier_version": "0", "class_name": "faint",
         "probability": 0.0 if bright else 1.0, "ranking": 2 if bright else 1}])


async def test_hooks_run_between_statistics_and_store_and_reach_the_output(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    failed = {simulated[0][0], simulated[5][0]}

    def failing_xmatch(state: ObjectState) -> ObjectState:
        if state.oid in failed:
            raise RuntimeError("catalogue unavailable")
        return state

    topology = Topology(hooks={"xmatch": [failing_xmatch], "classify": [_brightness_classifier]})
    processor = BatchProcessor(store, LocalArchive(tmp_path), topology=topology)
    result = await processor.process(as_inputs(simulated[:120]))
    # a hook raising dead-letters that object's alerts, with the step's name, and no others
    assert {d.oid for d in result.dead_letters} == failed
    assert all(d.reason.startswith("step xmatch failed: RuntimeError") for d in result.dead_letters)
    assert result.steps["xmatch"].n_dead == len(result.dead_letters)
    stored = {a.oid for a in result.alerts}
    assert stored and not stored & failed
    for oid in stored:
        doc = await store.get_object(oid)
        bright = min(m["magmin"] for m in doc["magstats"]) < 18.0
        rows = await store.probabilities(oid, "toy")  # their own collection, ranked
        assert [r["class_name"] for r in rows] == (["bright", "faint"] if bright
                                                   else ["faint", "bright"])
        assert "probabilities" not in doc
    messages = classification_messages(result.alerts, result.objects, result.detections, 0,
                                       result.probabilities)
    assert len(messages) == len(result.alerts)
    records = [decode(value)[0] for _, value in messages]
    assert all(key == rec["oid"].encode() for (key, _), rec in zip(messages, records,
                                                                   strict=True))
    # each object's probabilities ride on its last alert of the batch
    last = {rec["oid"]: i for i, rec in enumerate(records)}
    for i, rec in enumerate(records):
        names = {p["class_name"] for p in rec["probabilities"]}
        assert names == ({"bright", "faint"} if last[rec["oid"]] == i else set())
        assert rec["trigger"] == "alert"


async def test_output_record_reports_the_objects_statistics_after_its_batch(
        processor: BatchProcessor, simulated: list[tuple[str, int, bytes]]) -> None:
    result = await processor.process(as_inputs(simulated))
    messages = classification_messages(result.alerts, result.objects, result.detections,
                                       processed_time_ms=1_700_000_000_000)
    records = [decode(v)[0] for _, v in messages]
    assert sorted(r["candid"] for r in records) == sorted(c for _, c, _ in simulated)
    for record in records:
        stored = await processor.store.get_object(record["oid"])
        assert record["object"]["ndet"] == stored["ndet"]
        assert record["object"]["meanra"] == pytest.approx(stored["meanra"])
        assert [b["fid"] for b in record["object"]["magstats"]] == [
            b["fid"] for b in stored["magstats"]]
        assert record["hpx"] == stored["hpx"]
        det = next(d for d in await processor.store.light_curve("detections", record["oid"])
                   if d["candid"] == record["candid"])
        assert record["magpsf_corr"] == (det["magpsf_corr"] if det["corrected"] else None)
        assert record["processed_time"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)


async def test_dead_letter_record_keeps_payload_and_reason(processor: BatchProcessor) -> None:
    from nightjar.runner.ingest import RawInput
    from nightjar.surveys.interface import AlertSource

    junk = b"\x00not avro at all"
    result = await processor.process([RawInput(junk, AlertSource(
        "kafka", topic="t", partition=2, offset=41, timestamp_ms=5))])
    ((key, value),) = dead_letter_messages(result.dead_letters, 7)
    (record,) = decode(value)
    assert record["payload"] == junk
    assert record["reason"] == result.dead_letters[0].reason and record["reason"]
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == (
        "t", 2, 41)
    assert key.decode() == record["digest"]


def test_replay_bounds() -> None:
    assert parse_bound("1234") == 1234
    assert parse_bound(None) is None
    assert parse_bound("2026-11-22T03:00:00") == dt.datetime(2026, 11, 22, 3, tzinfo=dt.UTC)
    assert parse_bound("2026-11-22T03:00:00+01:00").utcoffset() == dt.timedelta(hours=1)
    with pytest.raises(ValueError, match="negative"):
        parse_bound("-5")
    with pytest.raises(ValueError, match="neither an offset"):
        parse_bound("yesterday")


async def test_lsst_output_records_carry_survey_ids_as_strings_and_fluxes(
        processor: BatchProcessor) -> None:
    from nightjar.surveys.lsst.simulate import LsstSimulator

    packets = list(LsstSimulator(seed=11).packets(60))
    schemas = LsstSchemas()
    records_in: dict[int, Any] = {}
    for _, source_id, raw in packets:
        schema_id, body = unframe(raw)
        records_in[source_id] = fastavro.schemaless_reader(io.BytesIO(body),
                                                           schemas.get(schema_id).parsed)
    bad = b"\x00\x00\x00\x04\x4c" + b"\x02" * 40  # schema id 1100, a body that does not decode
    inputs = [*as_inputs(packets), RawInput(bad, AlertSource("file", path="bad.lsst"))]
    result = await processor.process(inputs)
    messages = classification_messages(result.alerts, result.objects, result.detections, 0,
                                       result.probabilities)
    records = [decode(value)[0] for _, value in messages]
    assert {r["candid_str"] for r in records} == {
        str(source_id) for oid, source_id, _ in packets if oid.isdigit() and oid in result.objects}
    for (key, _), record in zip(messages, records, strict=True):
        source = records_in[int(record["candid_str"])]["diaSource"]
        assert record["survey"] == "LSST" and key == record["oid"].encode()
        # the string is the exact 64-bit id (a float or a 53-bit double would lose digits)
        assert int(record["candid_str"]) == source["diaSourceId"] > 2**53
        assert record["oid"] == str(source["diaObjectId"])
        assert record["band"] == source["band"]
        assert record["psf_flux"] == pytest.approx(source["psfFlux"], rel=1e-6)
        assert record["psf_flux_err"] == pytest.approx(source["psfFluxErr"], rel=1e-6)
        # difference magnitude from the flux: m = -2.5 log10(|f| / 3631e9 nJy)
        assert record["magpsf"] == pytest.approx(
            -2.5 * math.log10(abs(source["psfFlux"]) / 3631e9), abs=1e-4)
        assert record["probabilities"] == []  # the shipped models serve ZTF only
    letters = [decode(v)[0] for _, v in dead_letter_messages(result.dead_letters, 0)]
    assert [(r["survey"], r["payload"], r["source_path"]) for r in letters] == [
        ("LSST", bad, "bad.lsst")]


async def test_migrate_brings_a_pre_lsst_store_to_the_two_survey_model(
        processor: BatchProcessor, simulated: list[tuple[str, int, bytes]]) -> None:
    store = processor.store
    await processor.process(as_inputs(simulated[:80]))
    counts = {c: await store.count(c) for c in (OBJECTS, DETECTIONS, NON_DETECTIONS)}
    # what a store written before two surveys looks like: no survey, no band
    for coll in counts:
        await store.db[coll].update_many({}, {"$unset": {"survey": "", "band": ""}})
    assert await store.count(OBJECTS, {"survey": "ZTF"}) == 0
    changed = await store.migrate()
    assert {c: changed[c] for c in counts} == counts
    assert await store.count(OBJECTS, {"survey": "ZTF"}) == counts[OBJECTS]
    bands = {1: "g", 2: "r", 3: "i"}
    async for det in store.db[DETECTIONS].find({}, {"fid": 1, "band": 1, "survey": 1}):
        assert det["survey"] == "ZTF" and det["band"] == bands[det["fid"]]
    assert set((await store.migrate()).values()) == {0}  # idempotent
