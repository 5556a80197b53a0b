"""The LSST stamp classifier: Rubin cutouts read and preprocessed (real alerts), its
metadata, the simulator against the real cutouts' noise, the shipped model's checks on
real alerts, per-survey selection in the stamp step, and the embedded pipeline."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ml.registry import ModelRegistry
from ml.stamp_classifier import CLASSES, LSST_NAME, NAME
from ml.stamp_classifier.flavours import LSST_STAMPS
from ml.stamp_classifier.lsst import (
    LSST_CROP,
    LSST_METADATA_FEATURES,
    CutoutError,
    lsst_raw_metadata,
    lsst_stamp_tensor,
    psf_fwhm_arcsec,
    rubin_cutouts,
    significance,
    simulate_lsst_set,
)
from nightjar.core.lightcurve import ObjectHistory, ObjectState, merge_alerts
from nightjar.runner.ingest import BatchProcessor, ingest
from nightjar.runner.stamp_classify import StampClassifierHook, load_stamp_model, stamp_input
from nightjar.runner.topology import Topology
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import OBJECTS, PROBABILITIES
from nightjar.surveys.interface import AlertSource, ParsedAlert
from nightjar.surveys.lsst.photometry import LsstPhotometry
from nightjar.surveys.lsst.simulate import LsstSimulator
from nightjar.surveys.registry import AlertParser
from nightjar.surveys.ztf.correction import ZtfPhotometry
from nightjar.surveys.ztf.simulate import AlertSimulator
from nightjar.training.lsst_stamps import RUBIN_SAMPLES, read_rubin_alerts, real_evaluation
from tests.conftest import as_inputs

SHIPPED_HOME = Path("/nonexistent-nightjar-home")
FEATURE = {name: i for i, name in enumerate(LSST_METADATA_FEATURES)}


@pytest.fixture(scope="module")
def rubin_rows(shared_data: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [row for p in RUBIN_SAMPLES for row in pq.read_table(shared_data / p).to_pylist()]


def _planes(data: bytes) -> list[np.ndarray]:
    with fits.open(io.BytesIO(data)) as hdus:
        return [np.asarray(h.data, dtype=np.float64) for h in hdus if h.data is not None]


@pytest.mark.shared
def test_preprocessing_of_real_rubin_cutouts(rubin_rows: list[dict]) -> None:
    sizes = set()
    for row in rubin_rows:
        cut = rubin_cutouts({"science": row["cutoutScience"],
                             "template": row["cutoutTemplate"],
                             "difference": row["cutoutDifference"]})
        image, variance, _ = _planes(row["cutoutDifference"])
        sizes.add(image.shape[0])
        assert cut.images.shape == (4, LSST_CROP, LSST_CROP)
        # larger cutouts lose their border only: the centre pixel stays the centre pixel
        h = image.shape[0]
        lo = (h - LSST_CROP) // 2
        assert np.allclose(cut.images[2], image[lo:lo + LSST_CROP, lo:lo + LSST_CROP])
        # the fourth plane is Rubin's variance of the difference, not a made-up one
        assert np.allclose(cut.images[3], variance[lo:lo + LSST_CROP, lo:lo + LSST_CROP])
        assert (cut.images[3] > 0).all()
        assert 0.5 < cut.seeing < 2.5  # [arcsec] measured on the alert's PSF image
        tensor = lsst_stamp_tensor(cut.images)
        assert tensor.shape == (4, LSST_CROP, LSST_CROP) and np.isfinite(tensor).all()
        assert np.abs(tensor).max() <= 1.0 + 1e-6
        # a significant detection is significant at the centre, with the flux's sign
        src = row["diaSource"]
        if abs(src["psfFlux"]) / src["psfFluxErr"] > 20:
            c = LSST_CROP // 2
            centre = tensor[3, c - 2:c + 3, c - 2:c + 3] * np.sign(src["psfFlux"])
            assert centre.max() > 0.16  # a pixel at S/N > 3: asinh(1) / asinh(100)
    assert min(sizes) == LSST_CROP and max(sizes) > LSST_CROP  # 30 to 46 px here
    with pytest.raises(CutoutError, match="no template"):
        rubin_cutouts({"science": rubin_rows[0]["cutoutScience"],
                       "difference": rubin_rows[0]["cutoutDifference"]})
    with pytest.raises(CutoutError, match="not a readable FITS"):
        rubin_cutouts({"science": b"x" * 100, "template": b"x", "difference": b"x"})


def test_psf_fwhm_and_significance_have_their_units() -> None:
    y, x = np.mgrid[:41, :41] - 20.0
    sigma_px = 0.8 / 2.3548 / 0.2  # a 0.8" Gaussian at 0.2"/px
    psf = np.exp(-(x ** 2 + y ** 2) / (2 * sigma_px ** 2))
    assert psf_fwhm_arcsec(psf) == pytest.approx(0.8, rel=0.01)
    assert math.isnan(psf_fwhm_arcsec(np.zeros((5, 5))))
    snr = significance(np.array([[30.0, -300.0, 5.0]]), np.array([[100.0, 100.0, 0.0]]))
    assert snr[0, 0] == pytest.approx(math.asinh(1.0) / math.asinh(100.0), rel=1e-5)
    assert snr[0, 1] == pytest.approx(-math.asinh(10.0) / math.asinh(100.0), rel=1e-5)
    assert snr[0, 2] == 0.0  # unknown variance: no significance


@pytest.mark.shared
def test_metadata_of_real_rubin_alerts(rubin_rows: list[dict], shared_data: Path) -> None:
    alerts = read_rubin_alerts([shared_data / p for p in RUBIN_SAMPLES])
    assert len(alerts) == len(rubin_rows) == 75
    meta = lsst_raw_metadata([a.record for a in alerts])
    for alert, row, values in zip(alerts, rubin_rows, meta, strict=True):
        src = row["diaSource"]
        assert values[FEATURE["psf_mag"]] == pytest.approx(
            31.4 - 2.5 * math.log10(abs(src["psfFlux"])))
        assert values[FEATURE["is_negative"]] == float(src["psfFlux"] < 0)
        assert values[FEATURE["is_dipole"]] == float(bool(src["isDipole"])) \
            if src.get("isDipole") is not None else math.isnan(values[FEATURE["is_dipole"]])
        assert values[FEATURE["flag_cr"]] == float(bool(src["pixelFlags_cr"] or
                                                        src["pixelFlags_crCenter"]))
        assert values[FEATURE["log_previous"]] == pytest.approx(
            math.log10(1 + len(row["prvDiaSources"] or [])))
        assert values[FEATURE["band_index"]] == "ugrizy".index(src["band"])
        science = src.get("scienceFlux")
        assert math.isnan(values[FEATURE["science_mag"]]) == (science is None or science <= 0)
        # the label's own evidence is never an input
        assert "ssObjectId" not in LSST_METADATA_FEATURES
        assert (alert.label == "asteroid") == bool(src.get("ssObjectId"))
    assert (meta[:, FEATURE["is_dipole"]] == 1).sum() == 4  # Rubin flagged four dipoles
    assert sum(a.label == "asteroid" for a in alerts) == 3
    assert np.nanmax(meta[:, FEATURE["abs_ecl_lat"]]) <= 90


@pytest.mark.shared
def test_simulated_rubin_cutouts_match_the_real_noise(rubin_rows: list[dict]) -> None:
    images, records, labels = simulate_lsst_set(40, seed=3)
    assert images.shape == (200, 4, LSST_CROP, LSST_CROP)
    assert sorted(set(labels)) == sorted(CLASSES)
    real_noise = np.median([np.median(np.sqrt(_planes(r["cutoutDifference"])[1]))
                            for r in rubin_rows])  # [nJy per pixel]
    sim_noise = np.median(np.sqrt(images[:, 3]))
    assert 0.5 < sim_noise / real_noise < 2.0, (sim_noise, real_noise)
    # the simulated S/N distribution piles up at the threshold, as the real alerts do
    real_snr = np.median([abs(r["diaSource"]["psfFlux"]) / r["diaSource"]["psfFluxErr"]
                          for r in rubin_rows])
    sim_snr = np.median([r["snr"] for r in records])
    assert 0.5 < sim_snr / real_snr < 2.0, (sim_snr, real_snr)
    # the significance plane: the centre's most significant pixel, simulated as real
    c = LSST_CROP // 2

    def peak(planes: np.ndarray) -> float:
        return float(np.abs(lsst_stamp_tensor(planes)[3, c - 2:c + 3, c - 2:c + 3]).max())

    real_peak = np.median([peak(rubin_cutouts({
        "science": r["cutoutScience"], "template": r["cutoutTemplate"],
        "difference": r["cutoutDifference"]}).images) for r in rubin_rows])
    sim_peak = np.median([peak(p) for p in images[labels != "bogus"]])
    assert 0.5 < sim_peak / real_peak < 2.0, (sim_peak, real_peak)


@pytest.mark.shared
def test_shipped_lsst_model_on_real_rubin_alerts(shared_data: Path) -> None:
    model = load_stamp_model(SHIPPED_HOME, name=LSST_NAME)
    assert model.survey == "LSST" and model.name == LSST_NAME and model.crop == LSST_CROP
    card = model.card
    assert card["n_train"]["real"] == 0  # simulations only, and the card says it first
    card_text = (ModelRegistry.default(SHIPPED_HOME).get(LSST_NAME).path /
                 "MODEL_CARD.md").read_text()
    assert "Trained on simulations only" in card_text
    alerts = read_rubin_alerts([shared_data / p for p in RUBIN_SAMPLES])
    summary, rows = real_evaluation(model, alerts)
    # the card's real-data figures are what the shipped model gives today
    assert summary["labelled_correct"] == card["metrics"]["real"]["labelled_correct"]
    assert summary["reliability"] == card["metrics"]["real"]["reliability"]
    assert summary["n_labelled"] == 3 and len(rows) == 75
    probs = rows[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    # rotating the cutouts does not change the call (cyclic pooling, as for ZTF)
    planes = [a.images for a in alerts[:10]]
    records = [a.record for a in alerts[:10]]
    turned = [np.rot90(p, k=1, axes=(1, 2)).copy() for p in planes]
    assert np.abs(model.predict(planes, records) - model.predict(turned, records)).max() < 1e-4


def test_onnx_export_of_the_lsst_network_matches_torch() -> None:
    pytest.importorskip("torch", reason="training extra (uv sync --group train)")
    import onnxruntime as ort

    from ml.stamp_classifier.dataset import StampSet
    from ml.stamp_classifier.train import TrainConfig, export_onnx, fit, torch_probabilities

    images, records, labels = simulate_lsst_set(10, seed=4)
    data = StampSet(images, records, labels, [f"s{i}" for i in range(len(labels))],
                    [None] * len(labels), ["simulated"] * len(labels))
    net, scaler = fit(data, TrainConfig(epochs=1, crop=LSST_CROP), seed=4, flavour=LSST_STAMPS)
    session = ort.InferenceSession(export_onnx(net, LSST_CROP, LSST_STAMPS),
                                   providers=["CPUExecutionProvider"])
    stamps = np.stack([lsst_stamp_tensor(p) for p in images])
    metadata = scaler.transform(lsst_raw_metadata(records))
    (got,) = session.run(None, {"stamps": stamps, "metadata": metadata})
    assert got.shape == (len(labels), len(CLASSES))
    assert np.abs(got - torch_probabilities(net, stamps, metadata)).max() < 1e-5


def _state(alert: ParsedAlert) -> ObjectState:
    rules = LsstPhotometry() if alert.survey == "LSST" else ZtfPhotometry()
    return merge_alerts(ObjectHistory(alert.oid), [alert], rules)


def test_each_survey_goes_to_its_own_stamp_model() -> None:
    ztf_model = load_stamp_model(SHIPPED_HOME)
    lsst_model = load_stamp_model(SHIPPED_HOME, name=LSST_NAME)
    assert ztf_model.survey == "ZTF" and lsst_model.survey == "LSST"
    with pytest.raises(ValueError, match="two stamp classifiers for ZTF"):
        StampClassifierHook(ztf_model, ztf_model)
    parser = AlertParser()
    source = AlertSource("file")
    ztf_alert = parser.parse(next(AlertSimulator(seed=2).packets(1))[2], source)[0][0]
    lsst_alert = next(a for _, _, raw in LsstSimulator(seed=2).packets(20)
                      for a in parser.parse(raw, source)[0] if a.has_object)
    states = [_state(ztf_alert), _state(lsst_alert)]
    both = StampClassifierHook(ztf_model, lsst_model)(states)
    ztf_rows, lsst_rows = (s.probabilities for s in both)
    assert {r["classifier_version"] for r in ztf_rows} == {ztf_model.version}
    # both surveys' rows go by one classifier name; the LSST model wrote the LSST ones
    assert {r["classifier_name"] for r in ztf_rows + lsst_rows} == {NAME}
    chosen = stamp_input(lsst_alert)
    assert chosen is not None and chosen.images.shape == (4, LSST_CROP, LSST_CROP)
    expected = lsst_model.predict([chosen.images], [chosen.candidate])[0]
    assert {r["class_name"]: r["probability"] for r in lsst_rows} == pytest.approx(
        dict(zip(lsst_model.classes, expected.tolist(), strict=True)))
    assert {r["candid"] for r in lsst_rows} == {lsst_alert.candid}
    # with one survey's model only, the other survey's objects are left alone
    only_ztf = StampClassifierHook(ztf_model)(states)
    assert only_ztf[0].probabilities and not only_ztf[1].probabilities
    only_lsst = StampClassifierHook(lsst_model)(states)
    assert not only_lsst[0].probabilities and only_lsst[1].probabilities == lsst_rows


async def test_embedded_pipeline_stamp_classifies_lsst_objects_once(
        store: NightjarStore, tmp_path: Path) -> None:
    ztf_model = load_stamp_model(SHIPPED_HOME)
    lsst_model = load_stamp_model(SHIPPED_HOME, name=LSST_NAME)
    processor = BatchProcessor(store, LocalArchive(tmp_path / "archive"), topology=Topology(
        hooks={"stamp": [StampClassifierHook(ztf_model, lsst_model)]}))
    lsst = list(LsstSimulator(seed=9).packets(150))
    ztf = list(AlertSimulator(seed=9).packets(60))
    summary = await ingest(processor, as_inputs(lsst + ztf), 50)
    surveys = {d["_id"]: d["survey"] async for d in store.db[OBJECTS].find({}, {"survey": 1})}
    rows = [r async for r in store.db[PROBABILITIES].find({"classifier_name": NAME})]
    versions: dict[str, set[str]] = {}
    for row in rows:
        versions.setdefault(surveys[row["oid"]], set()).add(row["classifier_version"])
    assert versions == {"ZTF": {ztf_model.version}, "LSST": {lsst_model.version}}
    lsst_oids = {r["oid"] for r in rows if surveys[r["oid"]] == "LSST"}
    # every LSST object got one classification, from its first alert
    parser = AlertParser()
    first: dict[str, tuple[float, int]] = {}
    for _, _, raw in lsst:
        for alert in parser.parse(raw, AlertSource("file"))[0]:
            if alert.has_object:
                key = (alert.mjd, alert.candid)
                first[alert.oid] = min(first.get(alert.oid, key), key)
    assert lsst_oids == set(first) and lsst_oids <= summary.stamp_classified
    for row in rows:
        if surveys[row["oid"]] == "LSST":
            assert row["candid"] == first[row["oid"]][1]
    per_object = {oid: sum(1 for r in rows if r["oid"] == oid) for oid in lsst_oids}
    assert set(per_object.values()) == {len(CLASSES)}
    before = await store.count(PROBABILITIES)
    again = await ingest(processor, as_inputs(lsst + ztf), 50)
    assert again.stamp_classified == set() and await store.count(PROBABILITIES) == before


@pytest.mark.shared
def test_the_evaluate_cli_checks_the_lsst_stamp_model_on_real_alerts(tmp_path: Path) -> None:
    env = {**os.environ, "NIGHTJAR_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "nightjar.cli", "ml", "evaluate",
                           "--classifier", "lsst_stamp_classifier", "--out",
                           str(tmp_path / "eval")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_alerts"] == 75 and metrics["n_labelled"] == 3
    assert "Spearman" in done.stdout + done.stderr  # the console writes to stderr
    bad = subprocess.run([sys.executable, "-m", "nightjar.cli", "ml", "evaluate",
                          "--classifier", "lsst_stamp_classifier", "--alerts",
                          str(tmp_path / "none.parquet")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "no such file" in bad.stdout + bad.stderr
