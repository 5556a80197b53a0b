"""Build the shipped default light-curve classifier and its model card.

``python -m ml.lc_classifier.shipped --shared ../shared/data --version 1.2.0``

Training data: simulated light curves of all 15 classes on real ZTF cadences
(:mod:`ml.lc_classifier.simulate`) plus half of ALeRCE's 98 labelled objects with
ALeRCE-computed features.  Evaluation, on real objects the model never saw:

* ``real_lightcurves``: 55 real ZTF light curves with labels (30 spectroscopic SNe,
  25 catalogue periodic stars), features computed by *our* extractor end to end;
* ``alerce_features_held_out``: the other half of ALeRCE's 98 labelled feature rows;
* ``alerce_features_2020``: 150 objects (10 per class) with features from an older
  ALeRCE extractor (columns renamed where the definition is the same; the rest NaN);
* ``simulated_held_out``: fresh simulations, for contrast only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ml.features.table import features_table, read_table
from ml.lc_classifier.evaluate import evaluate, save_shipped
from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.simulate import real_cadences, simulate
from ml.lc_classifier.taxonomy import FULL_CLASSIFIER
from ml.lc_classifier.train import align, library_versions, read_labels, split
from ml.registry import SHIPPED_ROOT

#: older ALeRCE column names with the same definition as today's
OLD_NAMES = {**{f"paps_{k}_{b}": f"MHPS_{k}_{b}" for k in
                ("ratio", "low", "high", "non_zero", "PN_flag") for b in (1, 2)},
             **{f"Psi_{k}_v2_{b}": f"Psi_{k}_{b}" for k in ("CS", "eta") for b in (1, 2)}}


def _alerce(shared: Path) -> Path:
    return shared / "lightcurves" / "alerce-lc-classifier"


def real_lightcurve_set(shared: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Features (our extractor) and labels of the real labelled ZTF light curves."""
    root = _alerce(shared)
    sne = read_table(root / "data_examples" / "30_sne_detections_corr.csv")
    sne_nd = read_table(root / "data_examples" / "30_sne_non_detections.csv")
    sne_labels = read_labels(read_table(root / "data_examples" / "30_sne_labels.csv"))
    periodic = read_table(root / "late_classifier_tests_data" /
                          "e9f3fab_periodic_light_curves.csv")
    periodic_table = read_table(root / "late_classifier_tests_data" /
                                "633f11b_periodic_light_curve_labels.csv")
    periodic_labels = read_labels(periodic_table)
    # the light-curve file has no positions; the label file has the catalogue ones
    positions = periodic_table.rename(columns={"ra": "meanra", "dec": "meandec"})
    features = pd.concat([features_table(sne, sne_nd),
                          features_table(periodic, objects=positions)])
    return features, pd.concat([sne_labels, periodic_labels])


def alerce_feature_sets(shared: Path) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    root = _alerce(shared)
    hundred = read_table(root / "data_examples" / "100_objects_features.csv").set_index("oid")
    hundred_labels = read_labels(read_table(root / "data_examples" / "100_objects_labels.csv"))
    old = read_table(root / "late_classifier_tests_data" / "b54f816_some_features.csv")
    old = old.set_index("oid").rename(columns=OLD_NAMES)
    old_labels = read_labels(read_table(root / "late_classifier_tests_data" /
                                        "f8dec4a_some_labels.csv"))
    return {"alerce_100": (hundred, hundred_labels), "alerce_2020": (old, old_labels)}


DIFFERENCES = """\
Where Nightjar's features deliberately differ from ALeRCE's extractor (all else follows
ALeRCE's `lc_classifier` definitions, checked against its code):

* **Periodogram**: the same statistic as P4J's one-harmonic multiband MHAOV (same grid,
  0.045-500 d at 1e-3 /d, the 10 best peaks refined at 1e-4 /d), computed for all
  frequencies at once in numpy (generalised Lomb-Scargle closed form = one-harmonic
  MHAOV). On ALeRCE's 25 periodic test stars it returns P4J's best period for 20/25
  (the rest: near-tied peaks). P4J's weights are the robustly-normalised inverse
  variances; ours the inverse variances.
* **MHPS**: the `mhps` package is not on PyPI; re-implemented in numpy from Arévalo et al.
  (2012) and the package's C code (float64 instead of float32; flux = 10^(-0.4 (m - 19))).
* **SPM**: the 2021 model (difference magnitudes fitted in flux, ALeRCE's bounds and
  guesses), fitted to convergence by a compiled projected Levenberg-Marquardt instead of
  `curve_fit`'s trust-region run stopped at a loose `ftol`: the cost is the same or lower
  in >= 90 % of fits (tested), so fitted values differ where `curve_fit` stopped early.
* **GP_DRW**: the same kernel and likelihood (a Kalman filter, checked against celerite2);
  a compiled BFGS with L-BFGS-B's stopping rules, best of three starts (ALeRCE's a = c = 1
  plus two), so the likelihood reached is never lower than L-BFGS-B's (tested).
* **IAR_phi**: the same Kalman likelihood and Brent's bounded search, compiled (numba, as
  ALeRCE); equal to scipy's bounded minimiser to 1e-6 (tested).
* **Statistics need >= 6 points in a band** (ALeRCE computes them on any band present);
  fewer give NaN with a reason.
* **AllWISE colours** (W1-W2, W2-W3, r-W3, r-W2, g-W3, g-W2) are always NaN: Nightjar has no
  AllWISE cross-match. The model does not read them.
* **sgscore1** is the median over the detections; **rb** the median rb (as ALeRCE).
"""


def _metrics_table(evaluations: dict[str, Any], level: str) -> str:
    lines = ["| evaluation set | n | balanced accuracy | macro precision | macro recall | "
             "macro F1 |", "|---|---|---|---|---|---|"]
    for name, metrics in evaluations.items():
        m = metrics[level]
        lines.append(f"| {name} | {m['n']} | {m['balanced_accuracy']:.2f} | "
                     f"{m['macro_precision']:.2f} | {m['macro_recall']:.2f} | "
                     f"{m['macro_f1']:.2f} |")
    return "\n".join(lines)


def model_card(card: dict[str, Any]) -> str:
    """The human-readable model card (MODEL_CARD.md) from the JSON card."""
    evaluations = card["metrics"]
    real = evaluations["real_lightcurves"]["full"]
    recall = ", ".join(f"{c} {r:.2f} (n={real['support'][c]})"
                       for c, r in real["recall"].items())
    data = "\n".join(f"* **{k}**: {v}" for k, v in card["evaluation_data"].items())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(card["train_class_counts"].items()))
    return f"""# {card['name']} {card['version']}: model card

Hierarchical light-curve classifier (ALeRCE's taxonomy, Sánchez-Sáez et al. 2021): a
LightGBM model over Transient / Stochastic / Periodic and one per branch; P(class) =
P(branch) x P(class | branch). Balanced class weights; missing features are NaN.
Created {card['created']}, seed {card['seed']}, libraries {card['library_versions']}.

**Read this first.** ALeRCE's labelled set (~123,000 objects) is not reachable from where
this model was built. It was trained on {card['n_train']} objects, almost all *simulated*.
It is a working default that exercises the whole pipeline, **not** a model of ALeRCE's
quality: on the real held-out light curves its balanced accuracy is
{evaluations['real_lightcurves']['top']['balanced_accuracy']:.2f} at the top level and
{real['balanced_accuracy']:.2f} over the 15 classes (classes present). Retrain it with
`nightjar ml train lc --features ... --labels ...` on ALeRCE's public labelled set to get
a production model.

## Training data

{card['training_data']}.

Objects per class: {counts}.

## Evaluation (real data it never saw; simulations for contrast)

{data}

Top level (Transient / Stochastic / Periodic):

{_metrics_table(evaluations, 'top')}

15 classes:

{_metrics_table(evaluations, 'full')}

Per-class recall on the real light curves: {recall}.

Confusion matrices: `confusion_<set>_<level>.png` beside this card. Balanced accuracy and
macro scores are over the classes present in each set; sets of a few dozen objects give
wide error bars (one object moves a class's recall by 0.1 to 0.2).

## Features

{len(card['features'])} features with ALeRCE's names and definitions (`ml/features`).
{DIFFERENCES}
## Limits

* Simulated light curves are simpler than the sky: real curves bring blends, bad
  subtractions, seasonal systematics, colour terms. The gap between `simulated_held_out`
  and the real sets measures how much that matters.
* Classes with little or no real evaluation data (QSO, AGN, Blazar, YSO, CV/Nova,
  Periodic-Other in the light-curve set) are only checked on ALeRCE-computed features.
* The model reads no AllWISE colours, which ALeRCE's classifier relies on for the
  stochastic classes.
"""


def build(shared: Path, version: str, per_class: int, seed: int, out_root: Path
          ) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    cadences = real_cadences(shared)
    det, nd, sim_labels = simulate(per_class, seed=seed, cadences=cadences)
    sim_features = features_table(det, nd)
    print(f"simulated {len(sim_labels)} objects on {len(cadences)} real cadences "
          f"({time.perf_counter() - start:.0f} s)")
    sets = alerce_feature_sets(shared)
    x100, y100 = align(*sets["alerce_100"])
    x100_train, y100_train, x100_test, y100_test = split(x100, y100, 0.5, seed)
    x_sim, y_sim = align(sim_features, read_labels(sim_labels))
    x_train = pd.concat([x_sim, x100_train])
    y_train = pd.concat([y_sim, y100_train])
    model = HierarchicalModel.train(x_train, y_train, seed=seed)

    test_det, test_nd, test_labels = simulate(max(10, per_class // 4), seed=seed + 1,
                                              cadences=cadences)
    x_sim_test, y_sim_test = align(features_table(test_det, test_nd), read_labels(test_labels))
    x_real, y_real = align(*real_lightcurve_set(shared))
    x_old, y_old = align(*sets["alerce_2020"])
    evaluations = {
        "real_lightcurves": evaluate(model, x_real, y_real),
        "alerce_features_held_out": evaluate(model, x100_test, y100_test),
        "alerce_features_2020": evaluate(model, x_old, y_old),
        "simulated_held_out": evaluate(model, x_sim_test, y_sim_test),
    }
    out_dir = out_root / FULL_CLASSIFIER / version
    model.card = {
        "name": FULL_CLASSIFIER, "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": sorted(set(y_train)), "n_train": len(x_train),
        "train_class_counts": {str(k): int(v) for k, v in y_train.value_counts().items()},
        "training_data": (
            f"{len(x_sim)} simulated light curves ({per_class} per class, seed {seed}) on "
            f"{len(cadences)} real ZTF cadences, plus {len(x100_train)} real ALeRCE-labelled "
            "objects with ALeRCE-computed features (half of data_examples/100_objects)"),
        "evaluation_data": {
            "real_lightcurves": "30 spectroscopically classified SNe + 25 catalogue periodic "
                                "stars, real ZTF light curves, features by Nightjar",
            "alerce_features_held_out": f"{len(x100_test)} ALeRCE-labelled objects "
                                        "(held-out half), ALeRCE-computed features",
            "alerce_features_2020": "150 ALeRCE-labelled objects (10 per class), features "
                                    "of ALeRCE's 2020 extractor, partly renamed, rest NaN",
            "simulated_held_out": f"{len(x_sim_test)} fresh simulations (not real data)"},
        "seed": seed, "library_versions": library_versions(),
        "metrics": evaluations,
    }
    save_shipped(model, evaluations, out_dir, model_card, start)
    return evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--version", default="1.2.0")
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHIPPED_ROOT)
    args = parser.parse_args()
    build(args.shared, args.version, args.per_class, args.seed, args.out)


if __name__ == "__main__":
    main()
