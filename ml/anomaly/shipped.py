"""Build the shipped ZTF anomaly model, its evaluation and its model card.

``python -m ml.anomaly.shipped --shared ../shared/data --version 1.1.0``

Trained on every real labelled ZTF object at hand (no simulations: an outlier detector
trained on simulations learns what simulations look like): ALeRCE's 98 + 150 labelled
feature rows and the 55 real labelled light curves (features by Nightjar).  Evaluated
by holding one class out at a time on ALeRCE's 248 rows (:mod:`ml.anomaly.evaluate`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.anomaly import NAME
from ml.anomaly.active import evaluate_active_learning
from ml.anomaly.evaluate import METHODS, evaluate_held_out
from ml.anomaly.model import AnomalyModel
from ml.anomaly.train import N_TREES, train_model
from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.shipped import alerce_feature_sets, real_lightcurve_set
from ml.lc_classifier.taxonomy import FULL_CLASSIFIER
from ml.lc_classifier.train import align
from ml.registry import SHIPPED_ROOT, ModelRegistry, library_versions

#: the seed the recipe was chosen on (eight variants compared) and the one reported
SELECTION_SEED, REPORT_SEED = 0, 1
LIBRARIES = ("coniferest", "numba", "numpy", "lightgbm", "scikit-learn")


def labelled_sets(shared: Path) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    """The real labelled ZTF feature rows, aligned on the classifier's feature list."""
    sets = alerce_feature_sets(shared)
    return {"alerce_100": align(*sets["alerce_100"]),
            "alerce_2020": align(*sets["alerce_2020"]),
            "real_lightcurves": align(*real_lightcurve_set(shared))}


def alerce_rows(shared: Path) -> tuple[pd.DataFrame, pd.Series]:
    """ALeRCE's 98 + 150 labelled feature rows (its own extractors), aligned: the rows
    the hold-one-class-out evaluation holds classes out of.  No feature extraction."""
    sets = alerce_feature_sets(shared)
    current, old = align(*sets["alerce_100"]), align(*sets["alerce_2020"])
    return pd.concat([current[0], old[0]]), pd.concat([current[1], old[1]])


def serving_time(model: AnomalyModel, features: pd.DataFrame, probabilities: np.ndarray,
                 rows: int = 2000) -> float:
    """Microseconds per object to score a batch of ``rows`` (top features included),
    after a first call that compiles the kernels."""
    repeat = np.resize(np.arange(len(features)), rows)
    batch, probs = features.iloc[repeat], probabilities[repeat]
    model.score(batch.iloc[:10], probs[:10])
    start = time.perf_counter()
    scores = model.score(batch, probs)
    [scores.top_features(i) for i in range(rows)]
    return (time.perf_counter() - start) / rows * 1e6


def _table(classes: dict[str, Any], metric: str) -> str:
    lines = ["| held-out class | n | " + " | ".join(METHODS) + " |",
             "|---|---|" + "---|" * len(METHODS)]
    for name, entry in classes.items():
        cells = []
        for m in METHODS:
            v = entry["methods"][m]
            interval = v.get("interval", {}).get(metric)
            cells.append(f"{v[metric]:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]"
                                                if interval else ""))
        lines.append(f"| {name} | {entry['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SUPERNOVAE = ("SNIa", "SNIbc", "SNII", "SLSN")
TOP_OF_LIST = ("precision_at_10", "precision_at_50", "recall_top_1pct", "recall_top_5pct",
               "auroc")


def _versus(mean: dict[str, dict[str, float]], other: str) -> str:
    """Which mean metrics Nightjar is ahead of, level with or behind ``other`` on."""
    parts = []
    for k in TOP_OF_LIST:
        ours, theirs = mean["nightjar"][k], mean[other][k]
        verdict = "ahead" if ours > theirs + 1e-9 else ("behind" if ours < theirs - 1e-9
                                                        else "level")
        parts.append(f"{k} {ours:.3f} vs {theirs:.3f} ({verdict})")
    return "; ".join(parts)


def _span(entries: dict[str, Any], method: str, classes: tuple[str, ...]) -> str:
    values = [entries[c]["methods"][method]["auroc"] for c in classes if c in entries]
    return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"


def active_learning_table(active: dict[str, Any]) -> str:
    """Markdown: per user and method, objects found after each checkpoint."""
    out = []
    for user, entry in active["users"].items():
        checkpoints = sorted(entry["random"], key=int)
        out.append(f"**{user}** ({', '.join(entry['classes'])}: {entry['n_interesting']} of "
                   f"{active['n_rows']} objects)\n")
        out.append("| method | " + " | ".join(f"after {q}" for q in checkpoints) + " |")
        out.append("|---|" + "---|" * len(checkpoints))
        for method, result in entry["methods"].items():
            cells = [f"{result['at'][q]['mean']:.1f} [{result['at'][q]['min']}-"
                     f"{result['at'][q]['max']}]" for q in checkpoints]
            out.append(f"| {method} | " + " | ".join(cells) + " |")
        out.append("| random order (expected) | " + " | ".join(
            f"{entry['random'][q]:.1f}" for q in checkpoints) + " |\n")
    return "\n".join(out)


def _audit(audit: dict[str, Any] | None) -> str:
    """The DR5 audit section: the figures, the by-eye counts and the person's reading
    (``dr5_reading.md`` beside the model, kept in the card as ``reading``)."""
    if not audit:
        return ("## Audit on unlabelled real light curves\n\nNot run for this version "
                "(`python -m ml.anomaly.audit`).\n")
    by_eye = audit.get("by_eye")
    eye = ("By eye on `dr5_top50.png` (categories and notes per object in "
           "`dr5_by_eye.csv`): " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in
                                             sorted(by_eye.items(), key=lambda kv: -kv[1]))
           + "." if by_eye else "Not yet looked at by eye.")
    return f"""## Audit on unlabelled real light curves: ZTF DR5

{audit['n_curves']} DR5 g-band light curves of one CCD quadrant (reference-image sources:
most are constant stars), {audit['n_scored']} with 6 or more good epochs scored; the top
{audit['top']} by raw score (`dr5_top50.csv`, plots in `dr5_top50.png`). Against VSX and
GCVS within {audit['match_arcsec']:g} arcsec: {audit['top_in_vsx']} of the top
{audit['top']} is a VSX variable ({audit['scored_in_vsx']} among all
{audit['n_scored']} scored), {audit['top_in_gcvs']} in GCVS. {eye}

{audit.get('reading', '')}
"""


def model_card(card: dict[str, Any]) -> str:
    """The human-readable card (MODEL_CARD.md) from the JSON card."""
    ev = card["evaluation"]
    mean = ev["summary"]["mean"]
    means = "\n".join(
        f"| {m} | " + " | ".join(f"{mean[m][k]:.3f}" for k in
                                 ("precision_at_10", "precision_at_50", "recall_top_1pct",
                                  "recall_top_5pct", "auroc")) + " |" for m in METHODS)
    above = ev["summary"]["auroc_interval_above_fink_style"]
    separated = [c for c, v in above.items() if v]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(card["train_class_counts"].items()))
    return f"""# {card['name']} {card['version']}: model card

Anomaly score for ZTF objects (`ml/anomaly`): isolation forests, one per class of
ALeRCE's 15-class taxonomy, grown on real labelled objects in rank space (each feature's
empirical CDF); an object's raw score is the mean of the forests' scores weighted by the
light-curve classifier's probabilities ({card['classifier']}), times 1 - P(bogus) from the
stamp classifier; `score` is its percentile among {card['n_reference']} reference objects
(the training rows scored out of fold). Created {card['created']}, seed {card['seed']},
{card['n_trees']} trees per forest, libraries {card['library_versions']}. Serving: numpy +
numba on JSON node arrays, {card['serving_us_per_object']:.0f} µs per object in batches of
2,000 (top features included), one core.

**Read this first.** {card['n_train']} real objects are all the labelled ZTF data at hand;
ALeRCE's ~123,000-object labelled set is not reachable from where this was built. The
forests of the rarer classes are grown on a dozen objects. It is a working score with an
honest evaluation, **not** a tuned production model: retrain it on a large labelled set.

## Training data

{card['training_data']}. Objects per class: {counts}.

## Evaluation: one class held out at a time

{ev['n_rows']} ALeRCE-labelled feature rows (ALeRCE's own extractor: 98 current + 150
from its 2020 extractor). For each class C: every row split in two folds by class
(seed {ev['seed']}); each method is trained on one fold *without* C (the classifier that
weighs Nightjar's forests and gives the entropy baseline too) and scores the other fold,
C included. C's members are what a good score puts on top. 95 % intervals: bootstrap
over the rows, {ev['bootstrap_rounds']} rounds. Classes with {ev['min_members']}+ members are
the evaluation; the rest, and every transient, are anecdotes (no intervals).

Methods: **nightjar** (this recipe); **fink_style** (as Fink's SNAD module: one forest per
band over 25 statistics of that band, mean over observed bands); **global_forest** (one
forest over all features); **entropy** (of the hierarchical classifier's probabilities).

Mean over the evaluated classes:

| method | precision@10 | precision@50 | recall top 1 % | recall top 5 % | AUROC |
|---|---|---|---|---|---|
{means}

AUROC per held-out class [95 % interval]:

{_table(ev['classes'], 'auroc')}

Precision@10 per held-out class:

{_table(ev['classes'], 'precision_at_10')}

Anecdotes (AUROC):

{_table(ev['anecdotes'], 'auroc')}

**Against the Fink-style baseline**: Nightjar's AUROC interval lies wholly above it for
{len(separated)} of {len(above)} classes ({', '.join(separated) or 'none'}); elsewhere, with
16-36 members per class, the intervals overlap: the issue's bar (non-overlapping
intervals) is **not met** in general, and this data cannot show it either way. On the
means: {_versus(mean, 'fink_style')}. Against the classifier's entropy:
{_versus(mean, 'entropy')}. Held-out **supernova types** (anecdotes): AUROC
{_span(ev['anecdotes'], 'nightjar', SUPERNOVAE)} for Nightjar against
{_span(ev['anecdotes'], 'fink_style', SUPERNOVAE)} Fink-style and
{_span(ev['anecdotes'], 'global_forest', SUPERNOVAE)} for the global forest: with ~5
objects of each other SN type per fold the transient forests are thin, and a rank space
counts an SN's extreme values for less than raw magnitudes do.

How the recipe was chosen, so the figures are read as they should be: eight variants
(forests per top class or per class, raw or rank space, with or without the entropy)
were compared on this evaluation with seed {SELECTION_SEED}; the chosen one (per class,
rank space, no entropy) was then corrected where unit tests showed it wrong (each class
its own rank points, linear tails beyond them, a missing value at the class median) and
is reported here with seed {REPORT_SEED} (new folds, new trees). The choice was still made
on these 248 objects, so the figures are optimistic by that selection.

## Simulated active learning: two users teaching a forest

Real labels as the oracle ({card['active_learning']['queries']} queries; coniferest's
`OracleSession`), on all {card['active_learning']['n_rows']} labelled objects in rank space;
{card['active_learning']['n_trees']} trees; objects found after so many queries, mean
[min-max] over seeds {card['active_learning']['seeds']}:

{active_learning_table(card['active_learning'])}
This is the evidence behind the per-user models (`ml/anomaly/users.py`): AAD's idea,
leaf weights over the shared forests refitted from each user's labels (coniferest's
AADForest cannot weigh forests it did not grow itself).

{_audit(card.get('dr5_audit'))}
## Limits

* Dense classes (E, Periodic-Other, ~15 % of the rows each) are not "rare" here: an
  isolation forest finds isolated points, and a held-out class this common forms its own
  cluster. Real anomalies are far rarer; precision at the top is the figure that
  matters.
* The rows come from two ALeRCE extractors and Nightjar's; a feature the 2020 extractor
  lacks sits at each class's median, which makes those rows look typical in it.
* The reference distribution is {card['n_reference']} objects: percentiles move in steps
  of ~0.3 %. LSST objects are scored by `lsst_anomaly` (grown on simulations:
  `ml/anomaly/lsst.py`), never by this model.
"""


def build(shared: Path, version: str, seed: int, out_root: Path,
          evaluation_seed: int = REPORT_SEED) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    sets = labelled_sets(shared)
    x = pd.concat([s[0] for s in sets.values()])
    y = pd.concat([s[1] for s in sets.values()])
    classifier = HierarchicalModel.load(ModelRegistry([SHIPPED_ROOT]).get(FULL_CLASSIFIER).path)
    probabilities = classifier.predict(x).full
    model = train_model(x, y, probabilities, seed=seed)
    print(f"trained on {len(x)} objects ({time.perf_counter() - start:.0f} s)")
    evaluation = evaluate_held_out(*alerce_rows(shared), seed=evaluation_seed)
    print(f"evaluated ({time.perf_counter() - start:.0f} s)")
    active = evaluate_active_learning(x, y)
    print(f"active learning simulated ({time.perf_counter() - start:.0f} s)")
    model.card.update({
        "name": NAME, "version": version, "survey": "ZTF",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classifier": f"{FULL_CLASSIFIER} {classifier.version}", "seed": seed,
        "n_trees": N_TREES, "n_train": len(x),
        "train_class_counts": {str(k): int(v) for k, v in y.value_counts().items()},
        "training_data": (
            f"{len(sets['alerce_100'][0])} + {len(sets['alerce_2020'][0])} ALeRCE-labelled "
            "objects with ALeRCE-computed features (data_examples/100_objects, "
            "late_classifier_tests_data/some_features) and "
            f"{len(sets['real_lightcurves'][0])} real labelled light curves (30 "
            "spectroscopic SNe, 25 catalogue periodic stars) with Nightjar's features; "
            "no simulations"),
        "library_versions": library_versions(LIBRARIES),
        "serving_us_per_object": serving_time(model, x, probabilities),
        "evaluation": evaluation, "active_learning": active,
    })
    save_shipped(model, out_root / NAME / version, model_card, evaluation, start)
    return evaluation


def save_shipped(model: AnomalyModel, out_dir: Path,
                 model_card: Callable[[dict[str, Any]], str], evaluation: dict[str, Any],
                 started: float) -> None:
    """Write a built anomaly model and MODEL_CARD.md (from the saved card), and print
    the evaluation's summary."""
    model.save(out_dir)
    saved = json.loads((out_dir / "model.json").read_text())
    (out_dir / "MODEL_CARD.md").write_text(model_card(saved))
    print(json.dumps(evaluation["summary"], indent=1))
    print(f"model {model.version} written to {out_dir} in "
          f"{time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--version", default="1.2.0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHIPPED_ROOT)
    args = parser.parse_args()
    build(args.shared, args.version, args.seed, args.out)


if __name__ == "__main__":
    main()
