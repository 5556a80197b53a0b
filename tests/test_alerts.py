"""Parsing real and bad ZTF alerts, and the simulator's schema validity."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import fastavro
import pytest

from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.decode import MJD_OFFSET, parse_payload
from nightjar.surveys.ztf.schema import ALERT_SCHEMA_V4_02
from nightjar.surveys.ztf.simulate import AlertSimulator

SRC = AlertSource("file", path="test")


def _alert_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.avro"))


@pytest.mark.shared
def test_every_real_alert_parses(shared_data: Path) -> None:
    decoder = AlertDecoder()
    files = _alert_files(shared_data / "ztf" / "alerts")
    assert len(files) > 200
    versions = set()
    for path in files:
        alerts, rejected = parse_payload(decoder, path.read_bytes(), SRC)
        assert not rejected, f"{path}: {rejected[0].reason}"
        assert len(alerts) == 1
        alert = alerts[0]
        versions.add(alert.schemavsn)
        assert alert.oid.startswith("ZTF")
        assert alert.candidate["candid"] == alert.candid
        # fastavro's own reader must agree on the decoded candidate
        reference = next(fastavro.reader(io.BytesIO(path.read_bytes())))
        assert alert.candidate["magpsf"] == reference["candidate"]["magpsf"]
        assert len(alert.prv_detections) + len(alert.non_detections) + alert.dropped_prv == len(
            reference.get("prv_candidates") or [])
        # the normalised detection: survey, UTC mjd, band, signed difference flux [nJy]
        det = alert.detection
        assert det["survey"] == "ZTF" and det["_id"] == alert.candid
        assert det["mjd"] == pytest.approx(reference["candidate"]["jd"] - 2400000.5)
        assert det["band"] == {1: "g", 2: "r", 3: "i"}[reference["candidate"]["fid"]]
        sign = 1 if reference["candidate"]["isdiffpos"] in ("t", "1") else -1
        expected_flux = sign * 3631e9 * 10 ** (-0.4 * reference["candidate"]["magpsf"])
        assert det["psfFlux"] == pytest.approx(expected_flux, rel=1e-3)
    assert {"3.3", "4.01", "4.02"} <= versions  # several schema generations were exercised
    # the writer schemas are parsed once per distinct schema, not once per alert
    assert decoder.cached_schemas < len(files) / 5


@pytest.mark.shared
def test_every_bad_input_is_rejected_with_a_reason(shared_data: Path) -> None:
    decoder = AlertDecoder()
    files = sorted((shared_data / "ztf" / "bad").iterdir())
    assert files
    for path in files:
        alerts, rejected = parse_payload(decoder, path.read_bytes(), SRC)
        assert not alerts and len(rejected) == 1, path
        reason = rejected[0].reason
        if path.name.startswith("html_error_page"):
            assert "HTML" in reason
        elif path.name.startswith("prototype_2017"):
            assert "objectId" in reason
        else:
            assert "corrupt" in reason
        assert rejected[0].raw == path.read_bytes()


def _sim_record() -> dict:
    obj, index = AlertSimulator(seed=3).events(1)[0]
    return AlertSimulator(seed=3).alert(obj, index)


def _encode(record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(ALERT_SCHEMA_V4_02), [record])
    return buf.getvalue()


def test_nan_fields_become_null_and_nan_photometry_is_rejected() -> None:
    sim = AlertSimulator(seed=3)
    obj, index = sim.events(5)[-1]
    record = sim.alert(obj, index)
    record["candidate"]["distnr"] = math.nan
    alerts, rejected = parse_payload(AlertDecoder(), _encode(record), SRC)
    assert not rejected and alerts[0].candidate["distnr"] is None

    record["candidate"]["magpsf"] = math.nan
    alerts, rejected = parse_payload(AlertDecoder(), _encode(record), SRC)
    assert not alerts and "magpsf" in rejected[0].reason


def test_garbage_and_empty_payloads_are_rejected() -> None:
    decoder = AlertDecoder()
    for payload in (b"", os.urandom(3000), b"Obj\x01" + os.urandom(500)):
        alerts, rejected = parse_payload(decoder, payload, SRC)
        assert not alerts and rejected and rejected[0].reason


def test_prv_candidates_split_into_detections_and_limits() -> None:
    sim = AlertSimulator(seed=11)
    obj, index = sim.events(400)[-1]
    record = sim.alert(obj, index)
    alert = parse_payload(AlertDecoder(), _encode(record), SRC)[0][0]
    with_candid = [p for p in record["prv_candidates"] if p.get("candid") is not None]
    limits = [p for p in record["prv_candidates"] if p.get("candid") is None]
    assert with_candid and limits
    assert [d["candid"] for d in alert.prv_detections] == [p["candid"] for p in with_candid]
    assert all(d["parent_candid"] == alert.candid and not d["has_stamp"]
               for d in alert.prv_detections)
    assert len(alert.non_detections) == len(limits)
    assert all(n["diffmaglim"] is not None and n["derived"] is False
               and n["band"] in ("g", "r") for n in alert.non_detections)
    assert alert.candidate["jd"] - MJD_OFFSET > 60000  # mjd of the 2024 simulation epoch


def _real_schema(shared_data: Path) -> Any:
    named: dict = {}
    folder = shared_data / "ztf" / "schema" / "v4.02"
    for part in ("cutout", "candidate", "prv_candidate", "fp_hist"):
        fastavro.parse_schema(json.loads((folder / f"{part}.avsc").read_text()), named)
    return fastavro.parse_schema(json.loads((folder / "alert.avsc").read_text()), named)


@pytest.mark.shared
def test_simulated_alerts_are_valid_against_the_published_schema(shared_data: Path) -> None:
    schema = _real_schema(shared_data)
    kinds = set()
    sim = AlertSimulator(seed=5)
    for obj, index in sim.events(300):
        kinds.add(obj.kind)
        assert fastavro.validate(sim.alert(obj, index), schema, raise_errors=True)
    assert kinds == {"sn", "periodic", "stochastic", "bogus", "asteroid"}


def test_simulated_cutouts_hold_a_psf_source() -> None:
    import gzip

    from astropy.io import fits

    sim = AlertSimulator(seed=2)
    _, _, raw = next(iter(sim.packets(1)))
    alert = parse_payload(AlertDecoder(), raw, SRC)[0][0]
    assert set(alert.cutouts) == {"science", "template", "difference"}
    image = fits.getdata(io.BytesIO(gzip.decompress(alert.cutouts["difference"])))
    centre = image[28:35, 28:35].sum()
    corner = image[:7, :7].sum()
    assert image.shape == (63, 63) and centre > 10 * abs(corner)
