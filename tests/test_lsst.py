"""LSST alerts: the wire format, every schema version, the adapter's model, the store.

Real data: Rubin's 25 real schema-10.0 alerts and 50 operations-rehearsal alerts
(schema 7.1) as Fink stores them (parquet), re-encoded here behind Rubin's wire header,
and 89 ELAsTiCC simulations; plus the sample alert lsst-alert-packet ships per version.
"""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path
from typing import Any

import astropy.units as u
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightjar.runner.ingest import BatchProcessor, RawInput, ingest
from nightjar.store import NightjarStore
from nightjar.store.schema import (
    COUNTERPARTS,
    DEAD_LETTERS,
    DETECTIONS,
    FORCED_PHOTOMETRY,
    NON_DETECTIONS,
    OBJECTS,
    SOLAR_SYSTEM_DETECTIONS,
    SOLAR_SYSTEM_OBJECTS,
)
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.fink import rows, to_record, wire_messages
from nightjar.surveys.lsst.schemas import LsstSchemas, bundled_ids, bundled_sample
from nightjar.surveys.lsst.wire import frame, schema_id_of, unframe
from nightjar.surveys.registry import AlertParser

SRC = AlertSource("file", path="test")
V10 = 1000


def _fink(shared_data: Path, name: str) -> list[dict[str, Any]]:
    return rows(shared_data / "lsst" / "fink" / f"{name}.parquet")


def _inputs(messages: list[bytes], prefix: str = "lsst") -> list[RawInput]:
    return [RawInput(m, AlertSource("file", path=f"{prefix}/{i}")) for i, m in enumerate(messages)]


def _ab_mag(flux_njy: float) -> float:
    """An independent AB magnitude: astropy's units, not Nightjar's formula."""
    return float((abs(flux_njy) * u.nJy).to(u.ABmag).value)


@pytest.fixture(scope="module")
def v10_rows(shared_data: Path) -> list[dict[str, Any]]:
    found = _fink(shared_data, "rubin_sample_data_10_0")
    assert len(found) == 25
    return found


@pytest.mark.shared
async def test_the_real_v10_alerts_store_with_magnitudes_from_their_fluxes(
        v10_rows: list[dict[str, Any]], store: NightjarStore,
        processor: BatchProcessor) -> None:
    messages = list(wire_messages(v10_rows, V10))
    assert all(unframe(m)[0] == V10 for m in messages)
    summary = await ingest(processor, _inputs(messages), batch_size=10)
    assert summary.dead_lettered == 0 and summary.alerts_stored == 25
    solar = [r for r in v10_rows if not r["diaSource"]["diaObjectId"]]
    assert len(solar) == 3 and summary.solar_system == 3
    objects = {d["_id"]: d async for d in store.db[OBJECTS].find({})}
    expected_oids = {str(r["diaSource"]["diaObjectId"]) for r in v10_rows if r not in solar}
    assert set(objects) == expected_oids  # ids from diaSource, exact, as decimal strings
    assert all(o["survey"] == "LSST" for o in objects.values())
    # the float64 diaObject.diaObjectId column would have given other (rounded) ids
    rounded = {str(int(r["diaObject"]["diaObjectId"])) for r in v10_rows if r not in solar}
    assert rounded != expected_oids
    negative = 0
    for row in v10_rows:
        src = row["diaSource"]
        stored = await store.db[DETECTIONS].find_one({"_id": f"LSST:{src['diaSourceId']}"})
        if row in solar:
            assert stored is None
            continue
        assert stored["candid"] == src["diaSourceId"] and stored["has_stamp"]
        assert stored["schema_id"] == V10
        assert stored["psfFlux"] == pytest.approx(src["psfFlux"])
        assert stored["magpsf"] == pytest.approx(_ab_mag(src["psfFlux"]), abs=1e-3)
        assert stored["sigmapsf"] == pytest.approx(
            2.5 / math.log(10) * src["psfFluxErr"] / abs(src["psfFlux"]), rel=1e-6)
        sign = "t" if src["psfFlux"] > 0 else "f"
        assert stored["isdiffpos"] == sign
        if src["psfFlux"] < 0:
            negative += 1
            assert src["isNegative"] is False  # Rubin's flag disagrees: the flux decides
        assert stored["magpsf_corr"] == pytest.approx(_ab_mag(src["scienceFlux"]), abs=1e-3)
        assert stored["corrected"] is True
        # one time scale: MJD in UTC (TAI - UTC = 37 s in 2025-26), the original kept
        assert stored["mjd"] == pytest.approx(src["midpointMjdTai"] - 37 / 86400, abs=1e-9)
        assert stored["midpointMjdTai"] == src["midpointMjdTai"]
        assert stored["band"] == src["band"] and stored["fid"] == {"i": 3}[src["band"]]
    assert negative == 3
    # Rubin's own object summary is kept as it came, next to Nightjar's statistics
    some = next(o for o in objects.values() if o["ndet"] > 10)
    assert some["summary"]["record"]["diaObjectId"] == int(some["_id"])
    assert some["magstats"][0]["band"] == "i"

    before = await store.snapshot()
    again = await ingest(processor, _inputs(messages), batch_size=7)
    assert again.new_detections == 0 and again.objects_written == 0
    after = await store.snapshot()
    assert {k: v for k, v in after.items() if k != DEAD_LETTERS} == {
        k: v for k, v in before.items() if k != DEAD_LETTERS}


@pytest.mark.shared
async def test_solar_system_alerts_make_no_object_and_meet_by_designation(
        v10_rows: list[dict[str, Any]], store: NightjarStore,
        processor: BatchProcessor) -> None:
    solar = [r for r in v10_rows if not r["diaSource"]["diaObjectId"]]
    assert all(r["prvDiaSources"] is None and not r["prvDiaForcedSources"] for r in solar)
    await ingest(processor, _inputs(list(wire_messages(solar, V10))), batch_size=10)
    assert await store.count(OBJECTS) == 0 and await store.count(DETECTIONS) == 0
    assert await store.count(OBJECTS, {"_id": "0"}) == 0
    assert await store.count(SOLAR_SYSTEM_OBJECTS) == 3
    assert await store.count(SOLAR_SYSTEM_DETECTIONS) == 3
    row = next(r for r in solar if r["ssSource"]["designation"] == "K01S97B")
    ss_id = row["diaSource"]["ssObjectId"]
    stored = await store.db[SOLAR_SYSTEM_OBJECTS].find_one({"_id": ss_id})
    assert stored["designation"] == "K01S97B"
    assert stored["ssSource"]["eclLambda"] == pytest.approx(row["ssSource"]["eclLambda"])
    assert stored["mpc_orbits"]["e"] == pytest.approx(row["mpc_orbits"]["e"])
    for typed in ("K01S97B", "2001 SB97", "2001SB97"):
        from nightjar.minor_planets import designation_keys

        objects, detections = await store.solar_system(designation_keys(typed))
        assert [o["_id"] for o in objects] == [ss_id], typed
        assert [d["candid"] for d in detections] == [row["diaSource"]["diaSourceId"]]


@pytest.mark.shared
async def test_operations_rehearsal_alerts_of_schema_7_1_go_through_the_adapter(
        shared_data: Path, store: NightjarStore, processor: BatchProcessor) -> None:
    found = _fink(shared_data, "or4_lsst7.1")
    assert len(found) == 50
    summary = await ingest(processor, _inputs(list(wire_messages(found, 701))), batch_size=25)
    assert summary.dead_lettered == 0 and summary.alerts_stored == 50
    # 7.x: the alert id is alertId and a diaSource has no scienceFlux: no apparent
    # magnitude; the history and forced photometry are stored like any version's
    row = max(found, key=lambda r: len(r["prvDiaSources"] or []))
    oid = str(row["diaSource"]["diaObjectId"])
    own = await store.db[DETECTIONS].find_one({"_id": f"LSST:{row['diaSource']['diaSourceId']}"})
    assert own["corrected"] is False and own["magpsf_corr"] is None
    assert await store.count(DETECTIONS, {"oid": oid}) == len(row["prvDiaSources"]) + 1
    assert await store.count(FORCED_PHOTOMETRY, {"oid": oid}) == len(
        row["prvDiaForcedSources"] or [])
    # 7.x packets also carry upper limits (diaNoise [nJy]; the rehearsal's lists are
    # empty, so one is added here): a 5-sigma limit, Rubin's own (not derived)
    limited = copy.deepcopy(row)
    limited["prvDiaNondetectionLimits"] = [
        {"ccdVisitId": 7, "midpointMjdTai": row["diaSource"]["midpointMjdTai"] - 3.0,
         "band": "g", "diaNoise": 50.0}]
    await ingest(processor, _inputs(list(wire_messages([limited], 701))), batch_size=5)
    limit = await store.db[NON_DETECTIONS].find_one({"oid": oid, "ccdVisitId": 7})
    assert limit["derived"] is False and limit["band"] == "g"
    assert limit["diffmaglim"] == pytest.approx(_ab_mag(5 * 50.0), abs=1e-3)


def _avro_type(arrow: pa.DataType, name: str) -> Any:
    if pa.types.is_struct(arrow):
        return {"type": "record", "name": name, "fields": [
            {"name": f.name, "type": ["null", _avro_type(f.type, f"{name}_{f.name}")],
             "default": None} for f in arrow]}
    if pa.types.is_list(arrow):
        return {"type": "array", "items": ["null", _avro_type(arrow.value_type, name)]}
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_integer(arrow) or pa.types.is_timestamp(arrow):
        return "long"
    if pa.types.is_floating(arrow):
        return "double"
    if pa.types.is_binary(arrow):
        return "bytes"
    return "string"


@pytest.mark.shared
async def test_elasticc_simulations_are_dead_lettered_naming_the_missing_fields(
        shared_data: Path, store: NightjarStore, processor: BatchProcessor) -> None:
    table = pq.read_table(shared_data / "lsst" / "fink" / "elasticc_sample_seed0.parquet")
    keep = [f for f in table.schema.names if not f.startswith(("brokerIngest", "timestamp"))]
    table = table.select(keep)
    schema = fastavro.parse_schema({
        "type": "record", "name": "alert", "namespace": "elasticc.v0_9_1",
        "fields": [{"name": f.name, "type": ["null", _avro_type(f.type, f.name)],
                    "default": None} for f in table.schema]})
    containers = []
    for row in table.to_pylist():
        buf = io.BytesIO()
        fastavro.writer(buf, schema, [row])
        containers.append(buf.getvalue())
    assert len(containers) == 89
    summary = await ingest(processor, _inputs(containers, "elasticc"), batch_size=50)
    assert summary.dead_lettered == 89 and summary.alerts_stored == 0
    reasons = await store.dead_letter_reasons()
    (reason, count), = reasons.items()
    assert count == 89
    for missing in ("midpointMjdTai", "band", "dec", "psfFlux"):
        assert missing in reason
    assert "midPointTai" in reason and "filterName" in reason and "ELAsTiCC" in reason


def _sample_wire(schema_id: int) -> tuple[bytes, dict[str, Any], Any]:
    path = bundled_sample(schema_id)
    assert path is not None, schema_id
    reader = fastavro.reader(io.BytesIO(path.read_bytes()))
    record = next(reader)
    assert isinstance(record, dict)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, reader.writer_schema, record)
    return frame(schema_id, buf.getvalue()), record, reader.writer_schema


def test_every_schema_version_of_lsst_alert_packet_is_read_or_refused_by_version() -> None:
    parser = AlertParser()
    ids = bundled_ids()
    assert {701, 800, 900, 1000, 1100, 1101} <= set(ids) and min(ids) < 700
    for schema_id in ids:
        wire, record, schema = _sample_wire(schema_id)
        container = bundled_sample(schema_id).read_bytes()
        for raw in (wire, container):
            alerts, dead = parser.parse(raw, SRC)
            major = schema_id // 100
            if major < 7:
                assert not alerts
                assert f"schema {major}.{schema_id % 100} is not supported" in dead[0].reason
            elif major == 7:
                # the 7.x samples write Unix seconds into midpointMjdTai: refused by value
                assert not alerts and "midpointMjdTai 1480360995" in dead[0].reason
            else:
                assert not dead, (schema_id, dead and dead[0].reason)
                alert = alerts[0]
                assert alert.schema_id == schema_id
                assert alert.candid == record["diaSource"]["diaSourceId"]
                # the sample's diaSource carries no object id: diaObject's (a long) is used
                assert alert.oid == str(record["diaObject"]["diaObjectId"])
                assert len(alert.prv_detections) == len(record["prvDiaSources"])
        if schema_id // 100 == 7:  # with an MJD, the 7.x layout maps like the others
            fixed = copy.deepcopy(record)
            for src in (fixed["diaSource"], *fixed["prvDiaSources"]):
                src["midpointMjdTai"] = 60900.5
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, fixed)
            alerts, dead = parser.parse(frame(schema_id, buf.getvalue()), SRC)
            assert not dead and alerts[0].candid == record["diaSource"]["diaSourceId"]
            assert alerts[0].schemavsn == f"7.{schema_id % 100}"


async def test_unknown_schema_ids_and_wrong_magic_bytes_are_dead_lettered_with_their_bytes(
        store: NightjarStore, processor: BatchProcessor) -> None:
    wire, _, _ = _sample_wire(V10)
    unknown = frame(4242, unframe(wire)[1])
    wrong_magic = b"\x01" + wire[1:]
    wrong_id = frame(1100, unframe(wire)[1] + b"\x00\x00")  # a body that is not 11.0's
    truncated = wire[: len(wire) // 2]
    inputs = _inputs([unknown, wrong_magic, wrong_id, truncated], "bad")
    summary = await ingest(processor, inputs, batch_size=10)
    assert summary.dead_lettered == 4 and summary.alerts_stored == 0
    letters = {d["source"]["path"]: d async for d in store.db[DEAD_LETTERS].find({})}
    assert bytes(letters["bad/0"]["raw"]) == unknown
    assert "unknown LSST schema id 4242" in letters["bad/0"]["reason"]
    assert bytes(letters["bad/1"]["raw"]) == wrong_magic
    assert "first byte 0x01" in letters["bad/1"]["reason"]
    assert "schema id 1100" in letters["bad/2"]["reason"]
    assert "schema id 1000" in letters["bad/3"]["reason"]


def _packet(record: dict[str, Any], schema_id: int = V10) -> bytes:
    schema = LsstSchemas().get(schema_id).parsed
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return frame(schema_id, buf.getvalue())


@pytest.mark.shared
async def test_forced_photometry_gives_derived_upper_limits_and_withdrawals_are_marked(
        v10_rows: list[dict[str, Any]], store: NightjarStore,
        processor: BatchProcessor) -> None:
    schema = LsstSchemas().get(V10).parsed
    row = next(r for r in v10_rows if r["prvDiaSources"] and len(r["prvDiaSources"]) > 10)
    record = to_record(row, schema)
    src = record["diaSource"]
    oid = str(src["diaObjectId"])
    base = {"diaObjectId": src["diaObjectId"], "ra": src["ra"], "dec": src["dec"],
            "visit": 1, "detector": 1, "band": "g", "scienceFlux": None,
            "scienceFluxErr": None, "timeProcessedMjdTai": 61000.0, "timeWithdrawnMjdTai": None}
    record["prvDiaForcedSources"] = [
        {**base, "diaForcedSourceId": 1, "midpointMjdTai": 60990.1, "psfFlux": 120.0,
         "psfFluxErr": 100.0},   # S/N 1.2: an upper limit
        {**base, "diaForcedSourceId": 2, "midpointMjdTai": 60991.1, "psfFlux": 2000.0,
         "psfFluxErr": 100.0}]   # S/N 20: a measurement, no limit
    first = _packet(record)
    # a later packet of the same object says Rubin withdrew one earlier source
    later = copy.deepcopy(record)
    withdrawn_id = later["prvDiaSources"][0]["diaSourceId"]
    later["prvDiaSources"][0]["timeWithdrawnMjdTai"] = 61050.0
    await ingest(processor, _inputs([first]), batch_size=5)
    before = await store.db[OBJECTS].find_one({"_id": oid})
    limits = [d async for d in store.db[NON_DETECTIONS].find({"oid": oid})]
    assert [(d["diaForcedSourceId"], d["derived"]) for d in limits] == [(1, True)]
    assert limits[0]["diffmaglim"] == pytest.approx(_ab_mag(5 * 100.0), abs=1e-3)
    assert await store.count(FORCED_PHOTOMETRY, {"oid": oid}) == 2
    await ingest(processor, _inputs([_packet(later)]), batch_size=5)
    marked = await store.db[DETECTIONS].find_one({"_id": f"LSST:{withdrawn_id}"})
    # (nx-27017 stores a boolean set by $set as 1; MongoDB keeps true)
    assert marked["withdrawn"] in (True, 1) and marked["timeWithdrawnMjdTai"] == 61050.0
    after = await store.db[OBJECTS].find_one({"_id": oid})
    assert after["ndet"] == before["ndet"] - 1  # a withdrawn source no longer counts
    # replaying the first packet (which does not know of the withdrawal) keeps the mark
    await ingest(processor, _inputs([first]), batch_size=5)
    assert (await store.db[DETECTIONS].find_one({"_id": f"LSST:{withdrawn_id}"}))["withdrawn"]


@pytest.mark.shared
async def test_a_ztf_and_an_lsst_object_at_one_position_stay_two_and_are_linked(
        v10_rows: list[dict[str, Any]], store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    from tests.conftest import as_inputs

    ztf_oid, ztf_candid, ztf_raw = simulated[0]
    ztf_alert = AlertParser().parse(ztf_raw, SRC)[0][0]
    schema = LsstSchemas().get(V10).parsed
    row = next(r for r in v10_rows if r["diaSource"]["diaObjectId"] and not r["prvDiaSources"])
    record = to_record(row, schema)
    # put the LSST source 0.8 arcsec north of the ZTF detection
    record["diaSource"]["ra"] = ztf_alert.detection["ra"]
    record["diaSource"]["dec"] = ztf_alert.detection["dec"] + 0.8 / 3600
    # the ZTF candid and the diaSourceId are the same number: still two detections
    record["diaSource"]["diaSourceId"] = ztf_candid
    lsst_oid = str(record["diaSource"]["diaObjectId"])
    await ingest(processor, as_inputs([simulated[0]]), batch_size=5)
    await ingest(processor, _inputs([_packet(record)]), batch_size=5)
    objects = {d["_id"]: d["survey"] async for d in store.db[OBJECTS].find({})}
    assert objects == {ztf_oid: "ZTF", lsst_oid: "LSST"}
    assert await store.db[DETECTIONS].find_one({"_id": ztf_candid}) is not None
    assert await store.db[DETECTIONS].find_one({"_id": f"LSST:{ztf_candid}"}) is not None
    links = await store.counterparts_of([ztf_oid, lsst_oid])
    (to_lsst,), (to_ztf,) = links[ztf_oid], links[lsst_oid]
    assert (to_lsst["other_oid"], to_lsst["other_survey"]) == (lsst_oid, "LSST")
    assert (to_ztf["other_oid"], to_ztf["other_survey"]) == (ztf_oid, "ZTF")
    assert to_lsst["separation_arcsec"] == pytest.approx(0.8, abs=0.05)
    # a third object far away is linked to nothing
    far = copy.deepcopy(record)
    far["diaSource"]["dec"] = ztf_alert.detection["dec"] + 10 / 3600
    far["diaSource"]["diaObjectId"] += 1
    far["diaSource"]["diaSourceId"] += 1
    far["diaObject"]["diaObjectId"] += 1
    await ingest(processor, _inputs([_packet(far)]), batch_size=5)
    assert await store.count(COUNTERPARTS) == 2


def test_schema_versions_and_ids_map_both_ways() -> None:
    assert schema_id_of("10.0") == 1000 and schema_id_of("7.1") == 701
