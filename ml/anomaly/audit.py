"""Audit the anomaly score on unlabelled real data: the top 50 of ZTF DR5 light curves.

``python -m ml.anomaly.audit --shared ../shared/data`` writes, beside the shipped model,
``dr5_top50.csv`` (rank, object, score, the classifier's best class, the nearest VSX and
GCVS star within 2 arcsec and its type, the number of good epochs, the top features) and
``dr5_top50.png`` (the 50 light curves, for the by-eye audit: ``dr5_by_eye.csv``, one
category and note per object, written by a person looking at the plots) and adds the
summary to the model card.

Data: 5,449 DR5 g-band light curves of one CCD quadrant (field 250, readout channel 0;
apparent PSF magnitudes, ``catflags == 0`` epochs only).  DR5 light curves are of
sources in the reference images, so most are constant stars; the shipped model was
trained on alert light curves (difference photometry of variable objects), so DR5 is
far from its training data and the audit says what the score does there.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.anomaly import NAME
from ml.anomaly.model import AnomalyModel
from ml.features.table import features_table
from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.taxonomy import CLASSES, FULL_CLASSIFIER
from ml.registry import SHIPPED_ROOT, ModelRegistry

DR5 = Path("lightcurves") / "ztf_000250_zg_c01_q1_dr5.parquet"
MATCH_ARCSEC = 2.0
TOP = 50


def dr5_detections(shared: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DR5 epochs as a detections table (good epochs only) and per-object positions."""
    table = pd.read_parquet(shared / DR5)
    rows = []
    for obj in table.itertuples():
        good = np.asarray(obj.catflags) == 0
        n = int(good.sum())
        if n == 0:
            continue
        rows.append(pd.DataFrame({
            "oid": str(obj.objectid), "mjd": np.asarray(obj.hmjd, dtype=float)[good],
            "fid": 1, "magpsf_corr": np.asarray(obj.mag, dtype=float)[good],
            "sigmapsf_corr": np.asarray(obj.magerr, dtype=float)[good],
            "magpsf": np.asarray(obj.mag, dtype=float)[good],
            "sigmapsf": np.asarray(obj.magerr, dtype=float)[good],
            "corrected": True, "isdiffpos": 1}))
    objects = pd.DataFrame({"oid": table.objectid.astype(str), "meanra": table.objra,
                            "meandec": table.objdec, "corrected": True})
    return pd.concat(rows, ignore_index=True), objects


def nearest(ra: np.ndarray, dec: np.ndarray, catalogue: pd.DataFrame, ra_col: str,
            dec_col: str, type_col: str) -> tuple[np.ndarray, list[str | None]]:
    """Distance [arcsec] to the nearest catalogue star and its type (None beyond
    MATCH_ARCSEC)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    box = catalogue[(catalogue[ra_col].between(ra.min() - 1, ra.max() + 1))
                    & (catalogue[dec_col].between(dec.min() - 1, dec.max() + 1))]
    if box.empty:
        return np.full(ra.shape, np.inf), [None] * len(ra)
    stars = SkyCoord(box[ra_col].to_numpy() * u.deg, box[dec_col].to_numpy() * u.deg)
    idx, sep, _ = SkyCoord(ra * u.deg, dec * u.deg).match_to_catalog_sky(stars)
    arcsec = sep.arcsec
    types = [str(box[type_col].iloc[i]).strip() if d <= MATCH_ARCSEC else None
             for i, d in zip(idx, arcsec, strict=True)]
    return arcsec, types


def audit(shared: Path, out_dir: Path) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    registry = ModelRegistry([SHIPPED_ROOT])
    model = AnomalyModel.load(registry.get(NAME).path)
    classifier = HierarchicalModel.load(registry.get(FULL_CLASSIFIER).path)
    detections, objects = dr5_detections(shared)
    epochs = detections.groupby("oid").size()
    features = features_table(detections, objects=objects)
    scored = features[features.index.isin(epochs[epochs >= 6].index)]
    probabilities = classifier.predict(scored).full
    scores = model.score(scored, probabilities)
    order = np.argsort(-scores.raw, kind="stable")[:TOP]
    positions = objects.set_index("oid").loc[scored.index[order]]
    ra, dec = positions.meanra.to_numpy(float), positions.meandec.to_numpy(float)
    vsx_d, vsx_t = nearest(ra, dec, pd.read_parquet(shared / "catalogs" / "vsx.parquet"),
                           "RAJ2000", "DEJ2000", "VType")
    _, gcvs_t = nearest(ra, dec, pd.read_parquet(shared / "catalogs" / "gcvs.parquet"),
                        "ra", "dec", "VarType")
    rows = []
    for rank, i in enumerate(order, start=1):
        oid = scored.index[i]
        rows.append({
            "rank": rank, "oid": oid, "score": float(scores.score[i]),
            "raw": float(scores.raw[i]), "epochs": int(epochs[oid]),
            "best_class": CLASSES[int(np.argmax(probabilities[i]))],
            "vsx_type": vsx_t[rank - 1], "vsx_arcsec": float(vsx_d[rank - 1]),
            "gcvs_type": gcvs_t[rank - 1],
            "top_features": ", ".join(f["name"] for f in scores.top_features(int(i)))})
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "dr5_top50.csv", index=False)
    _plot(detections, table, out_dir / "dr5_top50.png")
    all_pos = objects.set_index("oid").loc[scored.index]
    _, every_vsx = nearest(all_pos.meanra.to_numpy(float), all_pos.meandec.to_numpy(float),
                           pd.read_parquet(shared / "catalogs" / "vsx.parquet"), "RAJ2000",
                           "DEJ2000", "VType")
    summary = {"n_curves": len(epochs), "n_scored": len(scored), "top": TOP,
               "top_in_vsx": int(table.vsx_type.notna().sum()),
               "top_in_gcvs": int(table.gcvs_type.notna().sum()),
               "scored_in_vsx": int(sum(t is not None for t in every_vsx)),
               "match_arcsec": MATCH_ARCSEC}
    (out_dir / "dr5_audit.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _plot(detections: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(10, 5, figsize=(20, 28))
    groups = dict(tuple(detections.groupby("oid")))
    for ax, row in zip(axes.flat, table.itertuples(), strict=False):
        lc = groups[row.oid]
        ax.errorbar(lc.mjd, lc.magpsf_corr, lc.sigmapsf_corr, fmt=".", ms=3, lw=0.5)
        ax.invert_yaxis()
        tag = row.vsx_type or "not in VSX"
        ax.set_title(f"#{row.rank} {row.oid} s={row.score:.3f}\n{row.best_class}; {tag}",
                     fontsize=8)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


BY_EYE = "dr5_by_eye.csv"
#: what the person who audited the plots read in them (prose, for the card)
READING = "dr5_reading.md"


def record_in_card(model_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Add the audit (with the by-eye categories of ``dr5_by_eye.csv`` when they are of
    this top 50, and the reading in ``dr5_reading.md``) to the model's card and
    regenerate MODEL_CARD.md."""
    from ml.anomaly.shipped import model_card

    top = pd.read_csv(model_dir / "dr5_top50.csv", dtype={"oid": str})
    by_eye_path = model_dir / BY_EYE
    if by_eye_path.exists():
        by_eye = pd.read_csv(by_eye_path, dtype={"oid": str})
        if list(by_eye.oid) == list(top.oid):
            summary = {**summary, "by_eye": {str(k): int(v) for k, v in
                                             by_eye.by_eye.value_counts().items()}}
        else:
            print(f"{BY_EYE} is of another top 50: look at dr5_top50.png again")
    reading = model_dir / READING
    if reading.exists():
        summary = {**summary, "reading": reading.read_text().strip()}
    card = json.loads((model_dir / "model.json").read_text())
    card["dr5_audit"] = summary
    (model_dir / "model.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(model_card(card))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    shipped = ModelRegistry([SHIPPED_ROOT]).get(NAME).path
    out = args.out or shipped
    summary = audit(args.shared, out)
    if out == shipped:
        summary = record_in_card(out, summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
