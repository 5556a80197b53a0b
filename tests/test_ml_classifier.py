"""The hierarchical classifier: training CLI on real data, registry, evaluation, safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.features.names import FEATURE_NAMES
from ml.features.table import read_table
from ml.lc_classifier.model import HierarchicalModel, ModelMismatchError
from ml.lc_classifier.simulate import simulate
from ml.lc_classifier.taxonomy import CLASSES, HIERARCHY, TOP_CLASSES
from ml.lc_classifier.train import MODEL_FEATURES, align, read_labels
from ml.registry import SHIPPED_ROOT, ModelRegistry
from nightjar.runner.classify import load_model

DATA = Path("lightcurves") / "alerce-lc-classifier" / "data_examples"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NIGHTJAR_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "nightjar.cli", "ml", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def small_model() -> HierarchicalModel:
    """A model trained in seconds on simulated curves of every class."""
    from ml.features.table import features_table

    det, nd, labels = simulate(6, seed=11)
    table = features_table(det, nd)
    x, y = align(table, read_labels(labels))
    return HierarchicalModel.train(x, y, seed=0, rounds=20)


def test_training_cli_on_alerce_labelled_features(shared_data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    features = shared_data / DATA / "100_objects_features.csv"
    labels = shared_data / DATA / "100_objects_labels.csv"
    done = _cli(home, "train", "lc", "--features", str(features), "--labels", str(labels),
                "--version", "2.0.0", "--holdout", "0.3", "--seed", "3")
    assert done.returncode == 0, done.stderr
    folder = home / "models" / "lc_classifier" / "2.0.0"
    card = json.loads((folder / "model.json").read_text())
    assert card["version"] == "2.0.0"
    assert card["features"] == list(MODEL_FEATURES)
    assert sum(card["train_class_counts"].values()) == card["n_train"]
    held_out = card["metrics"]["held_out"]
    assert held_out["full"]["n"] + card["n_train"] == 98  # every labelled object used once
    assert 0 <= held_out["top"]["balanced_accuracy"] <= 1
    assert (folder / "confusion_held_out_full.png").stat().st_size > 1000
    # safe formats only: LightGBM text models and JSON
    assert {p.suffix for p in folder.iterdir()} <= {".txt", ".json", ".png"}
    assert (folder / "periodic.txt").read_text().startswith("tree")

    # deterministic with a seed
    again = _cli(tmp_path / "home2", "train", "lc", "--features", str(features),
                 "--labels", str(labels), "--version", "2.0.0", "--holdout", "0.3",
                 "--seed", "3")
    assert again.returncode == 0, again.stderr
    twin = tmp_path / "home2" / "models" / "lc_classifier" / "2.0.0"
    assert (twin / "periodic.txt").read_text() == (folder / "periodic.txt").read_text()

    # the registry now serves it (newer than the shipped default) and lists both
    listed = _cli(home, "models")
    assert "lc_classifier 2.0.0" in listed.stdout
    assert load_model(home).version == "2.0.0"

    # evaluate it on a labelled table: metrics and confusion matrices next to the model
    evaluated = _cli(home, "evaluate", "--features", str(features), "--labels", str(labels))
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["full"]["n"] == 98
    assert "balanced accuracy" in evaluated.stderr
    assert (folder / "confusion_evaluation_top.png").exists()


def test_probabilities_are_hierarchical_and_sum_to_one(small_model: HierarchicalModel) -> None:
    det, nd, _ = simulate(2, seed=12)
    from ml.features.table import features_table

    table = features_table(det, nd).reindex(columns=list(MODEL_FEATURES))
    prediction = small_model.predict(table)
    assert prediction.full.shape == (len(table), len(CLASSES))
    np.testing.assert_allclose(prediction.full.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(prediction.top.sum(axis=1), 1.0, rtol=1e-9)
    for i, top in enumerate(TOP_CLASSES):
        start = sum(len(HIERARCHY[t]) for t in TOP_CLASSES[:i])
        block = prediction.full[:, start:start + len(HIERARCHY[top])]
        np.testing.assert_allclose(block.sum(axis=1), prediction.top[:, i], rtol=1e-9)
    rows = prediction.rows(0, "9.9.9")
    full = [r for r in rows if r["classifier_name"] == "lc_classifier"]
    assert len(full) == 15 and [r["ranking"] for r in full] == list(range(1, 16))
    assert {r["classifier_name"] for r in rows} == {
        "lc_classifier", "lc_classifier_top", "lc_classifier_transient",
        "lc_classifier_stochastic", "lc_classifier_periodic"}
    # missing features are NaN all the way (no -999 fill): a row of NaN still predicts
    blank = pd.DataFrame([np.full(len(MODEL_FEATURES), np.nan)], columns=list(MODEL_FEATURES))
    assert small_model.predict(blank).full.sum() == pytest.approx(1.0)


def test_registry_round_trip_and_mismatch_refusal(small_model: HierarchicalModel,
                                                  tmp_path: Path) -> None:
    small_model.card = {"name": "lc_classifier", "version": "3.1.0"}
    folder = tmp_path / "models" / "lc_classifier" / "3.1.0"
    small_model.save(folder)
    loaded = HierarchicalModel.load(folder)
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(5, len(MODEL_FEATURES))),
                         columns=list(MODEL_FEATURES))
    np.testing.assert_allclose(loaded.predict(table).full, small_model.predict(table).full)

    registry = ModelRegistry([tmp_path / "models", SHIPPED_ROOT])
    assert registry.get("lc_classifier").version == "3.1.0"
    assert registry.next_version("lc_classifier") == "3.2.0"
    with pytest.raises(LookupError, match=r"no lc_classifier version 7\.0\.0"):
        registry.get("lc_classifier", "7.0.0")

    # a model built for another extractor is refused with a clear message
    card = json.loads((folder / "model.json").read_text())
    card["features"] = [*card["features"], "Fleet_a_1"]
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelMismatchError, match=r"needs 1 feature\(s\).*Fleet_a_1"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="not a LightGBM text model"):
        (folder / "model.json").write_text(json.dumps({**card, "format": "pickle"}))
        HierarchicalModel.load(folder)


def test_shipped_model_card_is_honest() -> None:
    registered = ModelRegistry([SHIPPED_ROOT]).get("lc_classifier")
    card = registered.card
    assert card["format"] == "lightgbm-text"
    assert set(card["classes"]) == set(CLASSES)
    real = card["metrics"]["real_lightcurves"]
    # evaluated on real light curves it never saw, named as such
    assert real["full"]["n"] == 55
    assert "real ZTF light curves" in card["evaluation_data"]["real_lightcurves"]
    assert "simulated" in card["training_data"]
    model = HierarchicalModel.load(registered.path)
    model.check_features(FEATURE_NAMES)


def test_labels_are_mapped_to_the_taxonomy(shared_data: Path) -> None:
    table = read_table(shared_data / "lightcurves" / "alerce-lc-classifier" /
                       "late_classifier_tests_data" / "f8dec4a_some_labels.csv")
    labels = read_labels(table)
    assert set(labels) == set(CLASSES)  # Ceph -> CEP, EB -> E
    assert labels.value_counts().min() == 10


def test_simulated_supernovae_sit_on_hosts_and_are_met_while_they_evolve(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A quarter of simulated SNe lie on a host in the reference (corrected, with the
    apparent magnitude of host + SN brighter than the difference magnitude), as 7 of
    ALeRCE's 30 real SNe do; most are cut short after their sixth detection in a band."""
    det, _, _ = simulate(60, seed=21, classes=("SNIa",))
    per_object = det.groupby("oid")
    corrected = per_object["corrected"].first()
    assert 0.1 <= corrected.mean() <= 0.45
    hosted = det[det["corrected"] & (det["isdiffpos"] > 0)]
    assert (hosted["magpsf_corr"] <= hosted["magpsf"] + 1e-9).all()
    assert det[~det["corrected"]]["magpsf_corr"].isna().all()
    counts = det.groupby(["oid", "fid"]).size().groupby("oid").max()
    assert (counts >= 6).all()  # never cut below the classifier's threshold
    import ml.lc_classifier.simulate as simulator

    monkeypatch.setattr(simulator, "SN_TRUNCATE_FRACTION", 0.0)
    whole, _, _ = simulate(60, seed=21, classes=("SNIa",))
    assert len(det) < 0.85 * len(whole)  # as many SNe, seen younger: fewer detections
