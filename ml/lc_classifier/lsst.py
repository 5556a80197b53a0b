"""Labelled LSST-like light curves, and the LSST light-curve classifier built on them.

No labelled real LSST light curve exists here (the operations-rehearsal alerts' SIMBAD
cross-match says "Unknown" for all 50, the 25 real Rubin alerts carry no labels and
ELAsTiCC's sample no truth table), so the LSST model is trained *and* evaluated on
simulations; its card says so.  Each simulated object is one of the 15 class models of
:mod:`ml.lc_classifier.simulate` (the same physics as the ZTF training set, colours run
to Rubin's six bands by ``simulate.REDNESS``) placed 2-5 mag fainter (LSST reaches ~24.5
where ZTF stops at ~20.5) and observed on an LSST cadence:

* **wide-fast-deep** (80 %): a field visited on ~1 night in 3 in its ~6-month season,
  two visits per night ~30 min apart in two different filters (Rubin's pairs: ug, gr,
  ri, iz, zy, ...), 12 months of history as the alerts carry it;
* **deep drilling** (20 %): ~nightly sequences in four to five filters for a season.

Single-visit 5-sigma depths per band are the LSST Science Requirements' design values
(u 23.9, g 25.0, r 24.7, i 24.0, z 23.3, y 22.1) less 0.3 mag for typical seeing and
moon, with 0.35 mag of scatter; sources brighter than 16.5 mag saturate.  A point is a
detection when the difference flux exceeds 5 sigma, as in Rubin's DIA; detections carry
the difference flux [nJy] with its sign, the apparent flux on the science image, and a
``reliability`` score; the rest are upper limits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.features.extract import LightCurve, extract, preprocess
from ml.features.names import LSST_BANDS, LSST_FEATURE_NAMES
from ml.lc_classifier.evaluate import evaluate, save_shipped
from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.simulate import Cadence, _position, class_model
from ml.lc_classifier.taxonomy import CLASSES, LSST_CLASSIFIER
from ml.lc_classifier.train import library_versions
from ml.registry import SHIPPED_ROOT

#: Nightjar's LSST fids in wavelength order (g r i z y = 1..5, u = 6)
WAVELENGTH_ORDER = (6, 1, 2, 3, 4, 5)
#: single-visit 5-sigma depth per fid [AB mag] (SRD design values less 0.3 mag)
DEPTH = {6: 23.6, 1: 24.7, 2: 24.4, 3: 23.7, 4: 23.0, 5: 21.8}
SATURATION_MAG = 16.5
#: nJy zero point: m = -2.5 log10(f / nJy) + 31.4
NJY_ZERO_POINT = 31.4
DDF_FRACTION = 0.2
#: the alert packet's history window [days]
HISTORY_DAYS = 365.0


def _nightly_pairs(rng: np.random.Generator) -> tuple[int, int]:
    i = int(rng.integers(len(WAVELENGTH_ORDER) - 1))
    return WAVELENGTH_ORDER[i], WAVELENGTH_ORDER[i + 1]


def wfd_cadence(rng: np.random.Generator) -> Cadence:
    """A wide-fast-deep field: ~1 night in 3 within a 6-month season, two visits a night
    in adjacent filters, up to a year of history."""
    start = 60600.0 + rng.uniform(0, 365)
    span = rng.uniform(60, HISTORY_DAYS)
    nights = np.arange(start, start + span)
    season = np.mod(nights - start + rng.uniform(0, 365), 365.0) < 180
    visited = season & (rng.random(len(nights)) < rng.uniform(0.2, 0.45))
    mjd, fid = [], []
    for night in nights[visited]:
        first, second = _nightly_pairs(rng)
        t = night + 0.1 + rng.uniform(0, 0.3)
        mjd += [t, t + rng.uniform(0.015, 0.04)]
        fid += [first, second]
    return _with_depth(np.array(mjd), np.array(fid, dtype=float), rng)


def ddf_cadence(rng: np.random.Generator) -> Cadence:
    """A deep-drilling field: sequences in four or five filters on most nights of a
    season (each visit as deep as a WFD one; the nightly stacks are not modelled)."""
    start = 60600.0 + rng.uniform(0, 365)
    span = rng.uniform(60, 200)
    nights = np.arange(start, start + span)
    visited = rng.random(len(nights)) < rng.uniform(0.4, 0.8)
    mjd, fid = [], []
    for night in nights[visited]:
        bands = rng.choice(WAVELENGTH_ORDER, size=int(rng.integers(4, 6)), replace=False)
        t = night + 0.1 + rng.uniform(0, 0.2)
        for k, band in enumerate(bands):
            mjd.append(t + 0.01 * k)
            fid.append(int(band))
    return _with_depth(np.array(mjd), np.array(fid, dtype=float), rng)


def _with_depth(mjd: np.ndarray, fid: np.ndarray, rng: np.random.Generator) -> Cadence:
    depth = np.array([DEPTH[int(f)] for f in fid])
    return Cadence(mjd, fid, depth + rng.normal(0, 0.35, len(mjd)))


def lsst_cadence(rng: np.random.Generator) -> tuple[Cadence, str]:
    """A cadence of either kind ("wfd" or "ddf") with at least six visits."""
    while True:
        kind = "ddf" if rng.random() < DDF_FRACTION else "wfd"
        cadence = ddf_cadence(rng) if kind == "ddf" else wfd_cadence(rng)
        if len(cadence.mjd) >= 6:
            return cadence, kind


def _njy(mag: np.ndarray) -> np.ndarray:
    return np.asarray(10 ** (-0.4 * (mag - NJY_ZERO_POINT)))


def _mag(flux: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(-2.5 * np.log10(flux) + NJY_ZERO_POINT)


def observe_lsst(label: str, cadence: Cadence, rng: np.random.Generator) -> LightCurve:
    """One object of class ``label`` on an LSST cadence, as a light curve of
    :func:`nightjar.runner.classify.lsst_light_curve_of`'s shape (fluxes in mJy)."""
    t = cadence.mjd + rng.uniform(-30, 30)
    model = class_model(label, rng, float(t.min()))
    fainter = rng.uniform(2.0, 5.0)
    mag = model.magnitude(t, cadence.fid) + fainter
    sigma = _njy(cadence.limit) / 5.0
    ref = np.array([np.inf if model.reference[int(f)] is None
                    else float(model.reference[int(f)]) + fainter  # type: ignore[arg-type]
                    for f in cadence.fid])
    ref_flux = np.where(np.isfinite(ref), _njy(np.where(np.isfinite(ref), ref, 0.0)), 0.0)
    total = _njy(mag) + rng.normal(0, 1, len(t)) * np.hypot(sigma, 0.005 * _njy(mag))
    diff = total - ref_flux
    detected = (np.abs(diff) > 5 * sigma) & (mag > SATURATION_MAG)
    ra, dec = _position(model.galactic, rng)
    d = detected
    apparent_err = 1.0857 * sigma[d] / np.clip(total[d], 1e-3, None)
    return LightCurve(
        mjd=t[d], fid=cadence.fid[d].astype(np.int64),
        mag=_mag(np.clip(total[d], 1e-3, None)), err=apparent_err,
        magpsf=_mag(np.abs(diff[d])), sigmapsf=1.0857 * sigma[d] / np.abs(diff[d]),
        isdiffpos=np.where(diff[d] > 0, 1.0, -1.0),
        rb=rng.uniform(0.6, 1.0, int(d.sum())), ra=ra, dec=dec,
        nd_mjd=t[~d], nd_fid=cadence.fid[~d].astype(np.int64),
        nd_diffmaglim=cadence.limit[~d],
        diff_flux=diff[d] / 1e6, diff_flux_err=sigma[d] / 1e6)


def simulate_lsst(per_class: int, seed: int = 0, min_detections: int = 6,
                  classes: tuple[str, ...] = CLASSES
                  ) -> tuple[list[LightCurve], pd.DataFrame]:
    """``per_class`` objects of each class with at least ``min_detections`` detections in
    one band: (light curves, ``oid, classALeRCE, cadence`` table in the same order)."""
    rng = np.random.default_rng(seed)
    curves: list[LightCurve] = []
    rows: list[tuple[str, str, str]] = []
    for label in classes:
        made = tries = 0
        while made < per_class and tries < per_class * 40:
            tries += 1
            cadence, kind = lsst_cadence(rng)
            lc = observe_lsst(label, cadence, rng)
            counts = [int(np.sum(lc.fid == f)) for f in WAVELENGTH_ORDER]
            if max(counts) < min_detections:
                continue
            curves.append(lc)
            rows.append((f"SIMLSST{label.replace('/', '')}{tries:06d}", label, kind))
            made += 1
    return curves, pd.DataFrame(rows, columns=["oid", "classALeRCE", "cadence"])


def features_lsst(curves: list[LightCurve], oids: list[str]) -> pd.DataFrame:
    """The LSST feature table (``LSST_FEATURE_NAMES``) of light curves, indexed by oid."""
    rows = [extract(preprocess(lc, LSST_BANDS), preprocessed=True,
                    scheme=LSST_BANDS).as_array(LSST_FEATURE_NAMES) for lc in curves]
    return pd.DataFrame(rows, index=pd.Index(oids, name="oid"),
                        columns=list(LSST_FEATURE_NAMES)).astype(np.float64)


def detections_per_band(lc: LightCurve) -> dict[str, int]:
    return {LSST_BANDS.band_names[f]: int(np.sum(lc.fid == f)) for f in WAVELENGTH_ORDER}

def _by_cadence(model: HierarchicalModel, x: pd.DataFrame, y: pd.Series,
                cadence: pd.Series) -> dict[str, Any]:
    return {f"simulated_held_out_{kind}": evaluate(model, x[cadence == kind],
                                                   y[cadence == kind])
            for kind in ("wfd", "ddf") if (cadence == kind).sum() > 0}


def model_card(card: dict[str, Any]) -> str:
    """MODEL_CARD.md of the LSST light-curve classifier from its JSON card."""
    evaluations = card["metrics"]
    held = evaluations["simulated_held_out"]["full"]
    recall = ", ".join(f"{c} {r:.2f}" for c, r in held["recall"].items())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(card["train_class_counts"].items()))
    lines = ["| evaluation set | n | top-level balanced accuracy | 15-class balanced accuracy "
             "| 15-class macro F1 |", "|---|---|---|---|---|"]
    for name, m in evaluations.items():
        lines.append(f"| {name} | {m['full']['n']} | {m['top']['balanced_accuracy']:.2f} | "
                     f"{m['full']['balanced_accuracy']:.2f} | {m['full']['macro_f1']:.2f} |")
    table = "\n".join(lines)
    return f"""# {card['name']} {card['version']}: model card

Hierarchical light-curve classifier for **Rubin LSST** objects (ALeRCE's 15-class
taxonomy): LightGBM over Transient / Stochastic / Periodic and one per branch, as the
ZTF model, over ALeRCE's feature families computed on LSST's six bands (per-band features
suffixed `_u` ... `_y`, the multiband period over all bands, colours between adjacent
bands; {len(card['features'])} features, `ml.features.names.LSST_FEATURE_NAMES`).
Created {card['created']}, seed {card['seed']}, libraries {card['library_versions']}.

**Read this first: trained and evaluated on simulations only.** No labelled real LSST
light curve was at hand: the 50 operations-rehearsal alerts' SIMBAD cross-match is
"Unknown" for every one, the 25 real Rubin alerts (schema 10.0) carry no labels, and
ELAsTiCC's 89-alert sample has no truth table. Every figure below is on *fresh
simulations* from the same generator, so it measures what the features can separate
under the simulator's assumptions, not how the model does on the sky: the ZTF model, built
the same way, scores 0.99 (top level) and 0.88 (15 classes) on its simulations but
0.62-0.79 and 0.33-0.55 on real ZTF data (its card). Expect no better here. Use its
probabilities as a first sort, not as a classification; replace it as soon as labelled
Rubin light curves exist (`python -m ml.lc_classifier.lsst --help`).

## Training data

{card['training_data']}.

Objects per class: {counts}.

## Evaluation (fresh simulations, seed {card['seed'] + 1})

{table}

Per-class recall (15 classes, all held-out simulations): {recall}.

Confusion matrices: `confusion_<set>_<level>.png` beside this card.

## Threshold

An LSST object is classified once it has 6 detections in any one of its six bands
(ALeRCE's rule, applied per band; not tuned: with no labelled Rubin light curves there
is nothing to tune it on). The training set is cut at the same threshold, so the model
has seen objects as sparse as it will be asked about; the multiband period uses all
bands together.

## Limits

* The class models are the ZTF training set's, placed 2-5 mag fainter and coloured into
  u, i, z, y by a fixed run of colours per class; real LSST transients (host light,
  redshifted SEDs, K-corrections), faint variable stars and artefacts are richer.
* Cadences are synthetic (WFD pairs, DDF sequences), not OpSim's; no rolling cadence.
* No AllWISE colours, no host-galaxy information.
"""


def build(version: str, per_class: int, seed: int, out_root: Path) -> dict[str, Any]:
    """Simulate, extract, train, evaluate on fresh simulations and write the model with
    its card under ``out_root/lsst_lc_classifier/VERSION``."""
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    curves, labels = simulate_lsst(per_class, seed=seed)
    x = features_lsst(curves, list(labels.oid))
    y = labels.set_index("oid")["classALeRCE"]
    print(f"simulated and extracted {len(x)} LSST objects ({time.perf_counter() - start:.0f} s)")
    model = HierarchicalModel.train(x, y, seed=seed)
    test_curves, test_labels = simulate_lsst(max(10, per_class // 4), seed=seed + 1)
    x_test = features_lsst(test_curves, list(test_labels.oid))
    y_test = test_labels.set_index("oid")["classALeRCE"]
    cadence = test_labels.set_index("oid")["cadence"]
    evaluations = {"simulated_held_out": evaluate(model, x_test, y_test),
                   **_by_cadence(model, x_test, y_test, cadence)}
    out_dir = out_root / LSST_CLASSIFIER / version
    model.card = {
        "name": LSST_CLASSIFIER, "version": version, "survey": "LSST",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": sorted(set(y)), "n_train": len(x),
        "train_class_counts": {str(k): int(v) for k, v in y.value_counts().items()},
        "training_data": (
            f"{len(x)} simulated LSST light curves ({per_class} per class, seed {seed}; "
            f"{int((labels.cadence == 'wfd').sum())} on wide-fast-deep cadences, "
            f"{int((labels.cadence == 'ddf').sum())} on deep-drilling ones; "
            "ml/lc_classifier/lsst.py); no real data"),
        "evaluation_data": {
            "simulated_held_out": f"{len(x_test)} fresh simulations (seed {seed + 1}; "
                                  "not real data)"},
        "seed": seed, "library_versions": library_versions(), "metrics": evaluations,
    }
    save_shipped(model, evaluations, out_dir, model_card, start)
    return evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the shipped LSST light-curve "
                                                 "classifier from simulations")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHIPPED_ROOT)
    args = parser.parse_args()
    build(args.version, args.per_class, args.seed, args.out)


if __name__ == "__main__":
    main()
