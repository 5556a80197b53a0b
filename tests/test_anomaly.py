"""The anomaly score: the compiled forest against coniferest, the per-class model on
planted outliers, the percentile, the bogus gate, the hold-one-class-out protocol and
the shipped model on real objects."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from coniferest.isoforest import IsolationForest

from ml.anomaly import evaluate as anomaly_evaluate
from ml.anomaly.forest import Forest, from_coniferest
from ml.anomaly.model import AnomalyModel, percentile, rank_points, to_ranks
from ml.anomaly.train import fit_model, train_model
from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.taxonomy import CLASSES
from ml.registry import SHIPPED_ROOT, ModelRegistry

FEATURES = [f"f{i}" for i in range(6)]
#: two classes the synthetic objects belong to (any two of the taxonomy)
A, B = "RRL", "QSO"


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", RuntimeWarning)


def _probabilities(classes: list[str]) -> np.ndarray:
    p = np.zeros((len(classes), len(CLASSES)))
    for i, c in enumerate(classes):
        p[i, CLASSES.index(c)] = 1.0
    return p


def _objects(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Class A around 0 and class B around 10 in every feature, unit scatter."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (n, len(FEATURES)))
    b = rng.normal(10.0, 1.0, (n, len(FEATURES)))
    table = pd.DataFrame(np.vstack([a, b]), columns=FEATURES)
    return table, pd.Series([A] * n + [B] * n)


def test_the_compiled_forest_scores_as_coniferest_does() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 8))
    x[:10] += 5.0
    fitted = IsolationForest(n_trees=100, n_subsamples=256, random_seed=7).fit(x)
    forest = from_coniferest(fitted, 8)
    # coniferest's convention is negative (lower = more anomalous)
    np.testing.assert_allclose(forest.score(x), -fitted.score_samples(x), rtol=0, atol=1e-12)
    reloaded = Forest.from_json(forest.to_json())
    np.testing.assert_array_equal(reloaded.score(x), forest.score(x))
    assert forest.score(x[:10]).min() > np.median(forest.score(x[10:]))


def test_a_stored_forest_that_would_loop_or_overrun_is_refused() -> None:
    x = np.random.default_rng(0).normal(size=(300, 3))
    stored = from_coniferest(IsolationForest(n_trees=3, random_seed=1).fit(x), 3).to_json()
    looping = {**stored, "left": list(stored["left"])}
    inner = next(i for i, f in enumerate(stored["feature"]) if f >= 0)
    looping["left"][inner] = inner  # a node that is its own child
    with pytest.raises(ValueError, match="child"):
        Forest.from_json(looping)
    beyond = {**stored, "feature": [f if f < 0 else 3 for f in stored["feature"]]}
    with pytest.raises(ValueError, match="feature"):
        Forest.from_json(beyond)
    with pytest.raises(ValueError, match="format"):
        Forest.from_json({**stored, "format": "pickle"})


def test_an_object_unlike_its_predicted_class_scores_high_and_says_why() -> None:
    table, labels = _objects(200, seed=1)
    model = train_model(table, labels, _probabilities(list(labels)), seed=0, n_trees=100)
    typical_a = np.zeros(len(FEATURES))
    odd_a = typical_a.copy()
    odd_a[[1, 3, 4]] = 5.0  # class A in every feature but three
    queries = pd.DataFrame([typical_a, odd_a, np.full(len(FEATURES), 10.0)],
                           columns=FEATURES)
    scores = model.score(queries, _probabilities([A, A, B]))
    assert scores.score[0] < 0.5 and scores.score[2] < 0.5
    assert scores.score[1] > 0.9
    top = scores.top_features(1)
    assert {t["name"] for t in top} == {"f1", "f3", "f4"}
    assert {t["value"] for t in top} == {5.0}
    assert min(t["contribution"] for t in top) > 2 * scores.contributions[1, [0, 2, 5]].max()
    assert [t["contribution"] for t in top] == sorted((t["contribution"] for t in top),
                                                      reverse=True)
    np.testing.assert_allclose(scores.contributions.sum(axis=1), 1.0)
    assert scores.branches["Periodic"][1] > scores.branches["Periodic"][0]
    assert np.isnan(scores.branches["Transient"]).all()  # no transient forest


def test_the_classifier_decides_which_class_an_object_must_resemble() -> None:
    table, labels = _objects(200, seed=2)
    model = fit_model(table, labels, seed=0, n_trees=100)
    typical_b = pd.DataFrame([np.full(len(FEATURES), 10.0)], columns=FEATURES)
    as_b = model.raw_score(model.matrix(typical_b), _probabilities([B]))[0]
    as_a = model.raw_score(model.matrix(typical_b), _probabilities([A]))[0]
    assert as_a[0] > as_b[0] + 0.1


def test_missing_features_are_never_what_makes_an_object_unusual() -> None:
    table, labels = _objects(200, seed=4)
    model = train_model(table, labels, _probabilities(list(labels)), seed=0, n_trees=100)
    blank = pd.DataFrame([[np.nan] * len(FEATURES)], columns=FEATURES)
    half = pd.DataFrame([[0.0, 0.0, 0.0, np.nan, np.inf, np.nan]], columns=FEATURES)
    scores = model.score(pd.concat([blank, half]), _probabilities([A, A]))
    assert np.isfinite(scores.raw).all()
    assert scores.score[1] < 0.6
    assert scores.top_features(1)[0]["value"] in (0.0, None)


def test_scores_are_percentiles_in_zero_one_monotone_in_the_raw_score() -> None:
    quantiles = np.sort(np.random.default_rng(0).uniform(0.3, 0.8, 1001))
    raw = np.linspace(0.0, 1.0, 5001)
    pct = percentile(raw, quantiles)
    assert pct.min() == 0.0 and pct.max() == 1.0
    assert np.all(np.diff(pct) >= 0)
    table, labels = _objects(150, seed=5)
    model = train_model(table, labels, _probabilities(list(labels)), seed=0, n_trees=50)
    queries = pd.DataFrame(np.random.default_rng(6).normal(5.0, 6.0, (400, len(FEATURES))),
                           columns=FEATURES)
    scores = model.score(queries, _probabilities([A] * 400))
    assert ((scores.score >= 0) & (scores.score <= 1)).all()
    order = np.argsort(scores.raw)
    assert np.all(np.diff(scores.score[order]) >= 0)


def test_the_bogus_gate_sinks_artefacts() -> None:
    table, labels = _objects(150, seed=7)
    model = train_model(table, labels, _probabilities(list(labels)), seed=0, n_trees=50)
    odd = pd.DataFrame([[0, 6.0, 0, 6.0, 6.0, 0]] * 3, columns=FEATURES)
    scores = model.score(odd, _probabilities([A] * 3), bogus=np.array([np.nan, 0.0, 0.95]))
    assert scores.raw[0] == scores.raw[1]  # unknown bogus = no gate
    assert scores.raw[2] == pytest.approx(0.05 * scores.raw[1])
    assert scores.score[2] < 0.1 < 0.9 < scores.score[1]


def test_rank_transform_is_the_empirical_cdf_with_linear_tails() -> None:
    points = rank_points(np.array([[1.0], [2.0], [np.nan], [3.0], [4.0]]))
    ranks = to_ranks(np.array([[0.0], [1.0], [2.5], [4.0], [9.0], [np.nan]]), points)[:, 0]
    # inside: mid-rank CDF; outside: half a unit per median-to-end distance (3 - 1 below,
    # 4 - 3 above); missing: the median
    np.testing.assert_allclose(ranks, [-0.25, 0.125, 0.5, 0.875, 3.5, 0.5])


def test_a_model_round_trips_through_its_json_artefact(tmp_path: Path) -> None:
    table, labels = _objects(100, seed=8)
    model = train_model(table, labels, _probabilities(list(labels)), seed=0, n_trees=30)
    model.card.update(name="test_anomaly", version="0.0.1")
    model.save(tmp_path)
    loaded = AnomalyModel.load(tmp_path)
    queries = pd.DataFrame(np.random.default_rng(9).normal(3, 5, (50, len(FEATURES))),
                           columns=FEATURES)
    probs = _probabilities([A, B] * 25)
    np.testing.assert_array_equal(loaded.score(queries, probs).score,
                                  model.score(queries, probs).score)
    assert not list(tmp_path.glob("*.pkl"))


def test_ranking_metrics_by_hand() -> None:
    scores = np.arange(100, dtype=float)[::-1]  # row 0 ranked first
    positive = np.zeros(100, dtype=bool)
    positive[[0, 1, 2, 60]] = True
    m = anomaly_evaluate.ranking_metrics(scores, positive)
    assert m["precision_at_10"] == pytest.approx(0.3)
    assert m["precision_at_50"] == pytest.approx(3 / 50)
    assert m["recall_top_1pct"] == pytest.approx(0.25)  # the top 1 row
    assert m["recall_top_5pct"] == pytest.approx(0.75)
    # 96 negatives: 3 positives above all of them, one above 39 of them
    assert m["auroc"] == pytest.approx((3 * 96 + 39) / (4 * 96))
    intervals = anomaly_evaluate.bootstrap_intervals(scores, positive, seed=0, rounds=200)
    assert intervals["auroc"][0] <= m["auroc"] <= intervals["auroc"][1]


def test_the_held_out_class_is_never_trained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    classes = ["RRL", "E", "QSO", "LPV"]
    labels = pd.Series(np.repeat(classes, 20))
    table = pd.DataFrame(rng.normal(size=(80, 4)), columns=FEATURES[:4])
    seen: list[set[str]] = []

    def spy(train: pd.DataFrame, train_labels: pd.Series, test: pd.DataFrame, seed: int,
            prediction: object) -> np.ndarray:
        seen.append(set(train_labels))
        assert not set(train.index) & set(test.index)
        return np.asarray(test.iloc[:, 0])

    monkeypatch.setitem(anomaly_evaluate.SCORERS, "spy", spy)
    monkeypatch.setattr(HierarchicalModel, "train", classmethod(
        lambda cls, features, labels, seed=0: _Uniform()))
    result = anomaly_evaluate.hold_out(table, labels, "QSO", seed=0, methods=("spy",))
    assert len(seen) == 2 and all("QSO" not in s for s in seen)
    assert result.positive.sum() == 20
    np.testing.assert_array_equal(result.scores["spy"], table.iloc[:, 0].to_numpy())


class _Uniform:
    def predict(self, features: pd.DataFrame) -> object:
        n = len(features)
        return type("P", (), {"top": np.full((n, 3), 1 / 3),
                              "full": np.full((n, len(CLASSES)), 1 / len(CLASSES))})()


def test_the_shipped_model_scores_real_objects(shared_data: Path) -> None:
    from ml.anomaly.shipped import NAME, labelled_sets

    registered = ModelRegistry([SHIPPED_ROOT]).get(NAME)
    model = AnomalyModel.load(registered.path)
    card = registered.card
    assert card["survey"] == "ZTF" and card["evaluation"]["n_rows"] == 248
    assert (registered.path / "MODEL_CARD.md").read_text().count("not met") >= 1
    sets = labelled_sets(shared_data)
    x, _ = sets["real_lightcurves"]
    classifier = HierarchicalModel.load(ModelRegistry([SHIPPED_ROOT]).get("lc_classifier").path)
    scores = model.score(x, classifier.predict(x).full)
    assert ((scores.score >= 0) & (scores.score <= 1)).all()
    assert len(set(np.round(scores.score, 3))) > 20  # a ranking, not a constant
    names = {t["name"] for i in range(len(x)) for t in scores.top_features(i)}
    assert names <= set(model.features)


def test_the_cli_evaluation_finds_a_class_unlike_the_others(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from ml.anomaly.evaluate import BANDS, FINK_STATISTICS

    rng = np.random.default_rng(11)
    names = [f"{s}_{b}" for s in FINK_STATISTICS for b in BANDS]
    centres = {"RRL": 0.0, "E": 1.0, "LPV": 2.0, "QSO": 9.0}  # QSO unlike the rest
    rows, labels = [], []
    for c, centre in centres.items():
        for i in range(20):
            rows.append({"oid": f"{c}-{i}", **dict(zip(names, rng.normal(
                centre, 1.0, len(names)), strict=True))})
            labels.append({"oid": f"{c}-{i}", "classALeRCE": c})
    pd.DataFrame(rows).to_csv(tmp_path / "features.csv", index=False)
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "evaluation.json"
    done = subprocess.run(
        [sys.executable, "-m", "nightjar.cli", "ml", "anomaly", "evaluate",
         "--features", str(tmp_path / "features.csv"), "--labels",
         str(tmp_path / "labels.csv"), "--out", str(out)],
        env={**os.environ, "NIGHTJAR_HOME": str(tmp_path / "home")}, capture_output=True,
        text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "AUROC interval above the Fink-style baseline's" in done.stderr
    result = json.loads(out.read_text())
    assert set(result["classes"]) == set(centres)
    qso = result["classes"]["QSO"]["methods"]
    assert qso["nightjar"]["auroc"] > 0.9 and qso["nightjar"]["precision_at_10"] >= 0.8
    for method in qso.values():
        low, high = method["interval"]["auroc"]
        assert 0.0 <= low <= method["auroc"] <= high <= 1.0


def test_only_the_classify_agents_records_bring_new_scores_to_the_live_feed() -> None:
    from nightjar.core.live import ANOMALY, events_from_output_record
    from nightjar.runner.records import classification_record, lc_classification_record
    from nightjar.surveys.interface import AlertSource
    from nightjar.surveys.registry import AlertParser
    from nightjar.surveys.ztf.simulate import AlertSimulator

    (_, _, raw), = AlertSimulator(seed=3).packets(1)
    alert = AlertParser().parse(raw, AlertSource("file"))[0][0]
    score = {"score": 0.97, "raw": 0.61, "model_name": "ztf_anomaly",
             "model_version": "1.0.0", "mjd": alert.detection["mjd"]}
    obj = {"_id": alert.oid, "hpx": 1, "meanra": 10.0, "meandec": 20.0, "ndet": 9,
           "anomaly": score}
    lc = lc_classification_record(obj, alert.detection, [], processed_time_ms=5)
    events = [e for e in events_from_output_record(lc, 0) if e["kind"] == ANOMALY]
    assert [(e["oid"], e["score"], e["mjd"]) for e in events] == [
        (alert.oid, 0.97, alert.detection["mjd"])]
    record = classification_record(alert, obj, alert.detection, alert_time_ms=1,
                                   processed_time_ms=5)
    assert record["anomaly"]["score"] == 0.97  # the object's latest travels with it...
    assert not [e for e in events_from_output_record(record, 0) if e["kind"] == ANOMALY]


def test_simulated_users_teach_aad_to_find_what_they_want() -> None:
    from ml.anomaly.active import discovery_curve, evaluate_active_learning

    rng = np.random.default_rng(5)
    # 300 ordinary objects, 15 wanted ones off in two features, 15 unwanted oddities off
    # in two others: a plain forest ranks both kinds of oddity alike
    data = rng.normal(0.0, 1.0, (330, 6))
    data[300:315, [0, 1]] += 4.0
    data[315:, [2, 3]] += 4.0
    wanted = np.zeros(330, dtype=bool)
    wanted[300:315] = True
    aad = discovery_curve(data, wanted, "aad_forest", seed=0, queries=30)
    plain = discovery_curve(data, wanted, "isolation_forest", seed=0, queries=30)
    assert aad.shape == plain.shape == (30,)
    assert np.all(np.diff(aad) >= 0) and aad[-1] <= 15
    assert aad[-1] >= 12 > 30 * wanted.mean()  # far above a random order's 1.4
    assert aad[-1] >= plain[-1]
    table = pd.DataFrame(data, columns=FEATURES)
    labels = pd.Series(np.where(wanted, "SLSN", "E"))
    result = evaluate_active_learning(table, labels, users={"sn_hunter": ("SLSN",)},
                                      seeds=(0,), queries=25)
    entry = result["users"]["sn_hunter"]
    assert entry["n_interesting"] == 15
    assert entry["random"]["25"] == pytest.approx(25 * 15 / 330)
    assert set(entry["methods"]) == {"isolation_forest", "aad_forest", "pine_forest"}


def test_a_users_labels_teach_their_weights_what_they_mean_on_real_objects(
        shared_data: Path) -> None:
    from ml.anomaly.shipped import labelled_sets
    from ml.anomaly.users import Labelled, fit_weights, user_raw

    model = AnomalyModel.load(ModelRegistry([SHIPPED_ROOT]).get("ztf_anomaly").path)
    classifier = HierarchicalModel.load(ModelRegistry([SHIPPED_ROOT]).get("lc_classifier").path)
    sets = labelled_sets(shared_data)
    table = pd.concat([s[0] for s in sets.values()])
    labels = pd.concat([s[1] for s in sets.values()]).to_numpy()
    x, p = model.matrix(table), classifier.predict(table).full
    shared = user_raw(model, x, p, None)
    np.testing.assert_allclose(shared, model.raw_score(x, p)[0], atol=1e-12)
    lpv, binaries = np.flatnonzero(labels == "LPV"), np.flatnonzero(labels == "E")
    taught = [Labelled(x[i], p[i], None, "ANOMALY") for i in lpv[:5]] + \
        [Labelled(x[i], p[i], None, "NOT_ANOMALY") for i in binaries[:5]]
    mine = user_raw(model, x, p, fit_weights(model, taught))

    def ranks(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        position = np.empty(len(scores), dtype=int)
        position[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
        return position[rows]

    # the lesson generalises to the LPVs and binaries the user did not label
    assert np.median(ranks(mine, lpv[5:])) < 0.5 * np.median(ranks(shared, lpv[5:]))
    assert np.median(ranks(mine, binaries[5:])) > np.median(ranks(shared, binaries[5:]))
    assert ranks(mine, lpv[:5]).max() < 10
