"""Build the shipped default light-curve classifier and its model card.

``python -m ml.lc_classifier.shipped --shared ../shared/data --version 1.0.0``

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
import json
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ml.features.table import features_table, read_table
from ml.lc_classifier.evaluate import evaluate, write_report
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
    model.save(out_dir)
    for name, metrics in evaluations.items():
        write_report(metrics, name, out_dir)
    print(json.dumps({k: {lvl: v[lvl]["balanced_accuracy"] for lvl in ("top", "full")}
                      for k, v in evaluations.items()}, indent=1))
    print(f"model {version} written to {out_dir} in {time.perf_counter() - start:.0f} s")
    return evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHIPPED_ROOT)
    args = parser.parse_args()
    build(args.shared, args.version, args.per_class, args.seed, args.out)


if __name__ == "__main__":
    main()
