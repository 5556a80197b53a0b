"""The LSST light-curve classifier: its simulator, the shipped model, and per-survey
model selection (a ZTF model never reads an LSST light curve)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ml.features.names import LSST_BANDS
from ml.lc_classifier.evaluate import evaluate
from ml.lc_classifier.lsst import DEPTH, WAVELENGTH_ORDER, features_lsst, simulate_lsst
from ml.lc_classifier.model import ModelMismatchError
from ml.lc_classifier.taxonomy import CLASSES
from nightjar.runner.classify import (
    LcClassifierHook,
    classify_for_survey,
    load_anomaly_model,
    load_lsst_anomaly_model,
    load_lsst_model,
    load_model,
)

SHIPPED_HOME = Path("/nonexistent-nightjar-home")


def test_simulated_lsst_curves_are_six_band_difference_photometry() -> None:
    curves, labels = simulate_lsst(3, seed=11)
    assert len(curves) == 3 * len(CLASSES) and set(labels.classALeRCE) == set(CLASSES)
    assert set(labels.cadence) == {"wfd", "ddf"}
    bands_seen: set[int] = set()
    for lc in curves:
        counts = [int(np.sum(lc.fid == f)) for f in WAVELENGTH_ORDER]
        assert max(counts) >= 6  # ALeRCE's gate, in one band
        bands_seen |= set(lc.fid.tolist())
        assert lc.diff_flux is not None and lc.diff_flux_err is not None
        # the sign of the difference flux is the detection's isdiffpos, and each is 5 sigma
        assert np.array_equal(np.sign(lc.diff_flux), lc.isdiffpos)
        assert np.all(np.abs(lc.diff_flux) > 5 * lc.diff_flux_err * 0.999)
        assert np.all(np.diff(lc.mjd) >= 0) or len(lc) < 2
    assert bands_seen == set(WAVELENGTH_ORDER)
    # LSST depth: detections reach far below ZTF's ~20.5 mag limit
    faint = np.concatenate([lc.magpsf for lc in curves])
    assert np.percentile(faint, 90) > 22.0 and faint.max() < max(DEPTH.values()) + 1.5


def test_the_shipped_lsst_model_separates_fresh_simulations() -> None:
    """Simulation against simulation (the only evaluation possible without labelled
    Rubin light curves: see its card): far above chance at the top level."""
    warnings.simplefilter("ignore")
    model = load_lsst_model(SHIPPED_HOME)
    assert model.card["survey"] == "LSST" and model.card["name"] == "lsst_lc_classifier"
    curves, labels = simulate_lsst(4, seed=977)  # not the build's seeds (0, 1)
    x = features_lsst(curves, list(labels.oid))
    metrics = evaluate(model, x, labels.set_index("oid")["classALeRCE"])
    assert metrics["top"]["balanced_accuracy"] > 0.6  # chance: 1/3
    assert metrics["full"]["balanced_accuracy"] > 0.3  # chance: 1/15


def test_each_survey_gets_its_own_model_or_none() -> None:
    ztf_model, lsst_model = load_model(SHIPPED_HOME), load_lsst_model(SHIPPED_HOME)
    with pytest.raises(ModelMismatchError):  # a ZTF model cannot serve LSST objects
        LcClassifierHook(ztf_model, lsst_model=ztf_model)
    with pytest.raises(ModelMismatchError):
        LcClassifierHook(lsst_model)
    curves, _ = simulate_lsst(1, seed=5, classes=("RRL",))
    lc = curves[0]
    assert lc.diff_flux is not None and lc.diff_flux_err is not None
    detections = [{"mjd": float(t), "candid": i, "fid": int(f), "band":
                   LSST_BANDS.band_names[int(f)], "magpsf": float(m), "sigmapsf": float(e),
                   "isdiffpos": "t" if s > 0 else "f", "psfFlux": float(fl * 1e6),
                   "psfFluxErr": float(fe * 1e6), "magpsf_corr": float(a),
                   "sigmapsf_corr": float(ae), "corrected": True, "reliability": 0.9,
                   "ra": 10.0, "dec": -30.0}
                  for i, (t, f, m, e, s, fl, fe, a, ae) in enumerate(zip(
                      lc.mjd, lc.fid, lc.magpsf, lc.sigmapsf, lc.isdiffpos, lc.diff_flux,
                      lc.diff_flux_err, lc.mag, lc.err, strict=True))]
    assert classify_for_survey("LSST", detections, [], True, ztf_model, None, None,
                               None) is None  # no LSST model: unclassified, not mis-classified
    result = classify_for_survey("LSST", detections, [], True, ztf_model, lsst_model, None,
                                 None)
    assert result is not None and result.anomaly is None
    assert {r["classifier_version"] for r in result.rows} == {lsst_model.version}
    assert "Multiband_period" in result.features["values"]
    assert "Mean_u" in result.features["values"] and "Mean_1" not in result.features["values"]
    assert classify_for_survey("DECam", detections, [], True, ztf_model, lsst_model, None,
                               None) is None
    # the LSST anomaly model scores LSST objects; the ZTF one is never asked
    ztf_anomaly, lsst_anomaly = load_anomaly_model(SHIPPED_HOME), load_lsst_anomaly_model(
        SHIPPED_HOME)
    scored = classify_for_survey("LSST", detections, [], True, ztf_model, lsst_model,
                                 ztf_anomaly, 0.9, lsst_anomaly)
    assert scored is not None and scored.anomaly is not None
    assert scored.anomaly["model_name"] == "lsst_anomaly"
    assert 0.0 <= scored.anomaly["score"] <= 1.0 and scored.anomaly["bogus"] == 0.9
    assert scored.rows == result.rows  # the score changes nothing else
    # the LSST stamp classifier's P(bogus) gates the LSST score as ZTF's gates ZTF's
    ungated = classify_for_survey("LSST", detections, [], True, ztf_model, lsst_model,
                                  ztf_anomaly, None, lsst_anomaly)
    assert ungated is not None and ungated.anomaly is not None
    assert scored.anomaly["raw"] == pytest.approx(0.1 * ungated.anomaly["raw"])
    assert scored.anomaly["score"] <= ungated.anomaly["score"]


def test_the_evaluate_cli_serves_the_lsst_model(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "NIGHTJAR_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nightjar.cli", "ml", "evaluate",
                               "--classifier", "lsst_lc_classifier", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    done = cli("--simulated", "3", "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "fresh LSST simulations" in said and "not real data" in said
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["full"]["n"] == 3 * len(CLASSES)
    assert metrics["top"]["balanced_accuracy"] > 0.5
    half = cli("--features", str(tmp_path / "none.csv"))
    assert half.returncode == 2 and "together" in half.stdout + half.stderr


def test_the_evaluate_cli_serves_the_lsst_anomaly_recipe(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "NIGHTJAR_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "nightjar.cli", "ml", "evaluate",
                           "--classifier", "lsst_anomaly", "--simulated", "10", "--out",
                           str(tmp_path / "eval")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    said = " ".join((done.stdout + done.stderr).split())  # the console wraps lines
    assert "fresh LSST simulations" in said and "not real data" in said
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    held_out = {**result["classes"], **result["anecdotes"]}
    assert len(held_out) == len(CLASSES)  # every class held out once
    assert all(0.0 <= c["methods"]["nightjar"]["auroc"] <= 1.0 for c in held_out.values()
               if not np.isnan(c["methods"]["nightjar"]["auroc"]))
    few = subprocess.run([sys.executable, "-m", "nightjar.cli", "ml", "evaluate",
                          "--classifier", "lsst_anomaly", "--simulated", "2"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert few.returncode == 2 and "at least 10" in " ".join((few.stdout + few.stderr).split())
